//! Database schema migrations (sea-orm-migration) and the iap-migrate CLI.
