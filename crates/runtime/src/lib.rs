//! Settings loading, telemetry, metrics endpoint, shutdown signal and gRPC server plumbing shared by the binaries.
