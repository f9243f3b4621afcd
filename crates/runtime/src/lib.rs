//! What every binary shares: typed settings (file + `IAP_*` environment), logging, the
//! Prometheus endpoint, the one shutdown path, and a gRPC server that always carries health and
//! reflection. Depends on `iap-domain` (to build the catalog) and `iap-proto` (descriptors).

pub mod auth;
pub mod database;
pub mod delivery_client;
pub mod grpc;
pub mod http;
pub mod jobs;
pub mod lock;
pub mod metrics_catalog;
pub mod process;
pub mod settings;
pub mod shutdown;
pub mod startup;
pub mod status;
pub mod telemetry;
pub mod wire;

pub use settings::{ConfigError, Settings};
pub use shutdown::Shutdown;
pub use startup::{StartupError, run_main};
