//! Google Play: service-account OAuth, Play Developer API v3 and purchase signatures.
