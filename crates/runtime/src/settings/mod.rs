//! Typed configuration, read in layers: built-in defaults, then a TOML file (`--config` or
//! `IAP_CONFIG`), then `IAP_*` environment variables. Environment names take the section and
//! the key, joined by `_` (`IAP_DATABASE_URL`, `IAP_VERIFIER_GRPC_LISTEN`) or by `__` for deeper
//! paths (`IAP_APPS__COM_EXAMPLE__SANDBOX__ALLOW_ALL` is awkward, so apps live in the file).
//! Unknown keys are errors: a typo must not silently fall back to a default.
//!
//! One file per question: `schema` (the sections and their defaults), `load` (the layers),
//! `validate` (what the types cannot say), `catalog` (the apps' policies for the domain),
//! `policies` (the domain's delivery, inbox and reconciliation policies), `stores` (the stores'
//! clients) and `jobs` (each background job's interval and batch).

mod catalog;
mod error;
mod jobs;
mod load;
mod policies;
mod schema;
mod stores;
mod validate;

pub use error::ConfigError;
pub use jobs::{
    ENTITLEMENT_SYNC, GAUGES, JOB_NAMES, JobSettings, NOTIFICATION_INBOX, ORDER_SWEEP,
    RECONCILIATION, ResolvedJob, SUBSCRIPTION_CHECKS,
};
pub use schema::{
    AppSettings, AuthSettings, DatabaseSettings, DeliverySettings, EmulatorSettings, LogFormat,
    ProductSettings, RedisSettings, SandboxSettings, SchedulerSettings, Settings,
    TelemetrySettings, Token, VerifierSettings,
};
pub use stores::StoreClients;
