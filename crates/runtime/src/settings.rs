//! Typed configuration, read in layers: built-in defaults, then a TOML file (`--config` or
//! `IAP_CONFIG`), then `IAP_*` environment variables. Environment names take the section and
//! the key, joined by `_` (`IAP_DATABASE_URL`, `IAP_VERIFIER_GRPC_LISTEN`) or by `__` for deeper
//! paths (`IAP_APPS__COM_EXAMPLE__SANDBOX__ALLOW_ALL` is awkward, so apps live in the file).
//! Unknown keys are errors: a typo must not silently fall back to a default.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use iap_domain::{
    AppId, AppPolicy, Catalog, ProductId, ProductKind, ProductPolicy, SandboxPolicy, UserId,
};

mod jobs;

pub use jobs::{
    ENTITLEMENT_SYNC, GAUGES, JOB_NAMES, JobSettings, NOTIFICATION_INBOX, ORDER_SWEEP,
    RECONCILIATION, ResolvedJob, SUBSCRIPTION_CHECKS,
};

/// Every setting of every process. Each binary reads the sections it needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The system of record.
    pub database: DatabaseSettings,
    /// Locks (optional: without Redis, delivery relies on the database fence alone).
    pub redis: RedisSettings,
    /// `iap-verifier` (and iapd's gRPC and HTTP ports).
    pub verifier: VerifierSettings,
    /// `iap-delivery`.
    pub delivery: DeliverySettings,
    /// `iap-scheduler`.
    pub scheduler: SchedulerSettings,
    /// `iap-emulator`.
    pub emulator: EmulatorSettings,
    /// Logs.
    pub telemetry: TelemetrySettings,
    /// Bearer tokens and TLS of the gRPC servers and clients.
    pub auth: AuthSettings,
    /// The studio's apps, by app id.
    pub apps: BTreeMap<String, AppSettings>,
    /// The background jobs' intervals and batches, by job name (see [`Settings::job`]).
    pub jobs: BTreeMap<String, JobSettings>,
}

/// `[database]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `postgres://user@host:5432/db` or `sqlite://path?mode=rwc`. Required by the standalone
    /// services; iapd defaults to a SQLite file.
    pub url: Option<String>,
    /// Pool size per process (PostgreSQL; SQLite always uses one connection).
    pub max_connections: u32,
    /// Longest wait for a pooled connection before a call fails with UNAVAILABLE.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// Longest wait for the server when opening a connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Apply pending migrations at startup (the embedded default does; a fleet usually runs
    /// `iap-migrate up` once as a deployment step instead).
    pub migrate_on_start: bool,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            migrate_on_start: false,
        }
    }
}

/// `[redis]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// `redis://host:6379/0`. Unset: an in-process lock (one process only).
    pub url: Option<String>,
    /// Prefix of every key written, so several deployments can share a server.
    pub key_prefix: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "iap:".to_owned(),
        }
    }
}

/// `[verifier]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifierSettings {
    /// gRPC: OrderService, VerificationService, AdminService.
    pub grpc_listen: SocketAddr,
    /// HTTP: store notifications, `/healthz`, `/readyz`. It faces the stores (the internet).
    pub http_listen: SocketAddr,
    /// HTTP: `/metrics` alone, on its own listener so the port the stores reach does not show
    /// the process's counters to the internet.
    pub metrics_listen: SocketAddr,
    /// `iap-delivery`'s gRPC address (`http://host:port`) for the fast path right after a
    /// payment is recorded. Unset: the sweeper alone delivers (iapd delivers in process).
    pub delivery_url: Option<String>,
    /// How long VerifyPurchase waits for the fast path before answering (ms). The delivery
    /// goes on after the reply either way.
    pub fast_path_wait_ms: u64,
}

impl Default for VerifierSettings {
    fn default() -> Self {
        Self {
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
            delivery_url: None,
            fast_path_wait_ms: 2_000,
        }
    }
}

/// `[delivery]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// gRPC: DeliveryService.
    pub grpc_listen: SocketAddr,
    /// HTTP: `/metrics`, `/healthz`, `/readyz`.
    pub http_listen: SocketAddr,
    /// The studio's game server (`GameServerService`), e.g. `http://127.0.0.1:50070`.
    pub game_server_url: Option<String>,
    /// Failed grant attempts before an order becomes DEAD.
    pub max_attempts: u32,
    /// Deadline of one GrantItems or RevokeItems call, in milliseconds.
    pub call_deadline_ms: u64,
    /// GrantItems calls within one attempt before the order is left to the sweeper.
    pub calls_per_attempt: u32,
    /// First backoff between attempts (doubled per attempt, with jitter), in milliseconds.
    pub backoff_base_ms: u64,
    /// Longest backoff, in milliseconds.
    pub backoff_max_ms: u64,
    /// Redis lock TTL, renewed every third of it while a call runs, in milliseconds.
    pub lock_ttl_ms: u64,
    /// How often the sweeper looks for paid orders not yet delivered or confirmed (ms; 0 = off).
    pub sweep_interval_ms: u64,
    /// Orders one sweep takes at most.
    pub sweep_batch: u32,
    /// Orders delivered at once by one sweep.
    pub sweep_concurrency: usize,
    /// How long the inbox worker holds a store notification it took (ms), renewed every third
    /// of it while the worker is busy; if the process dies, another takes it after this.
    pub notification_lease_ms: u64,
    /// First wait before a notification that failed (store or database down) is tried again
    /// (ms), doubled per attempt.
    pub notification_backoff_base_ms: u64,
    /// Longest wait between two tries of a notification (ms).
    pub notification_backoff_max_ms: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 50052)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 9101)),
            game_server_url: None,
            max_attempts: 12,
            call_deadline_ms: 5_000,
            calls_per_attempt: 3,
            backoff_base_ms: 2_000,
            backoff_max_ms: 600_000,
            lock_ttl_ms: 15_000,
            sweep_interval_ms: 2_000,
            sweep_batch: 200,
            sweep_concurrency: 16,
            notification_lease_ms: 15_000,
            notification_backoff_base_ms: 5_000,
            notification_backoff_max_ms: 3_600_000,
        }
    }
}

impl DeliverySettings {
    /// How the notification inbox retries, from these settings.
    pub fn inbox_policy(&self) -> iap_domain::usecases::handle_notifications::InboxPolicy {
        use std::time::Duration;
        let base = Duration::from_millis(self.notification_backoff_base_ms.max(1));
        iap_domain::usecases::handle_notifications::InboxPolicy {
            lease: Duration::from_millis(self.notification_lease_ms.max(1_000)),
            backoff_base: base,
            backoff_max: Duration::from_millis(self.notification_backoff_max_ms).max(base),
        }
    }

    /// The delivery policy these settings describe.
    pub fn policy(&self) -> iap_domain::usecases::deliver::DeliveryPolicy {
        use std::time::Duration;
        iap_domain::usecases::deliver::DeliveryPolicy {
            max_attempts: self.max_attempts.max(1),
            call_deadline: Duration::from_millis(self.call_deadline_ms.max(1)),
            calls_per_attempt: self.calls_per_attempt.max(1),
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms.max(self.backoff_base_ms)),
            lock_ttl: Duration::from_millis(self.lock_ttl_ms.max(100)),
        }
    }
}

/// `[scheduler]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSettings {
    /// HTTP: `/metrics`, `/healthz`, `/readyz`.
    pub http_listen: SocketAddr,
    /// `iap-delivery`'s gRPC address: the sweep asks it to deliver each due order. Unset: this
    /// replica does not sweep orders.
    pub delivery_url: Option<String>,
    /// How often the order sweep runs (ms).
    pub sweep_interval_ms: u64,
    /// Orders one pass takes at most.
    pub sweep_batch: u32,
    /// Deliver calls in flight at once.
    pub sweep_concurrency: usize,
    /// How long a pass keeps its orders from other replicas (ms); if this replica dies, they
    /// come due again after it. Subscription checks use the same hold.
    pub sweep_hold_ms: u64,
    /// How often the subscription job looks for subscriptions to check at the store (ms):
    /// periods about to end, grace periods ending, suspended subscriptions.
    pub subscription_interval_ms: u64,
    /// Subscriptions one pass checks at most.
    pub subscription_batch: u32,
    /// How often the stores' histories are read for what the live path missed (ms; 0 = off):
    /// Apple notification history, Google voided purchases, Huawei cancelled purchases.
    pub reconcile_interval_ms: u64,
    /// How far back the first reconciliation reads (hours).
    pub reconcile_lookback_hours: u64,
    /// How much each reconciliation re-reads before the previous one's end (ms), since stores
    /// record late.
    pub reconcile_overlap_ms: u64,
    /// How often the operations gauges (orders by state, oldest waiting order, notification
    /// backlog) are read from the database (ms; 0 = never).
    pub gauges_interval_ms: u64,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            http_listen: SocketAddr::from(([127, 0, 0, 1], 9102)),
            delivery_url: None,
            sweep_interval_ms: 2_000,
            sweep_batch: 200,
            sweep_concurrency: 16,
            sweep_hold_ms: 30_000,
            subscription_interval_ms: 30_000,
            subscription_batch: 100,
            reconcile_interval_ms: 300_000,
            reconcile_lookback_hours: 72,
            reconcile_overlap_ms: 600_000,
            gauges_interval_ms: 15_000,
        }
    }
}

/// `[emulator]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmulatorSettings {
    /// HTTP: the three stores' APIs, the control API and `/metrics`.
    pub listen: SocketAddr,
    /// Run an emulator inside iapd (the embedded default does; ignored by other processes).
    pub embedded: bool,
}

impl Default for EmulatorSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            embedded: false,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    #[default]
    Pretty,
    /// One JSON object per line, for a log collector.
    Json,
}

/// `[telemetry]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// `pretty` or `json`.
    pub log_format: LogFormat,
    /// `tracing` filter directives; `RUST_LOG` overrides.
    pub log_filter: String,
    /// OpenTelemetry collector (OTLP over gRPC, e.g. `http://otel-collector:4317`) to export
    /// spans to. Needs a build with the `otel` feature; unset: no export.
    pub otlp_endpoint: Option<String>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Pretty,
            log_filter: "info".to_owned(),
            otlp_endpoint: None,
        }
    }
}

/// A secret token: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token itself, for the one place that sends or checks it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(redacted)")
    }
}

/// Shortest token accepted: long enough that guessing is hopeless.
const MIN_TOKEN_LEN: usize = 16;

/// `[auth]`: who may call the gRPC services. Unset tokens leave their audience open (with a
/// warning at startup); see `docs/operations.md`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Bearer token `AdminService` requires.
    pub admin_token: Option<Token>,
    /// Bearer token `OrderService`, `VerificationService` and `DeliveryService` require; our own
    /// processes send it to one another (verifier and scheduler → delivery).
    pub service_token: Option<Token>,
    /// Bearer token delivery sends to the game server's `GameServerService`.
    pub game_server_token: Option<Token>,
    /// PEM certificate (chain) of this process's gRPC server; with the key, turns TLS on.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of that certificate.
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA that client certificates must chain to: set, the gRPC servers require one (mTLS).
    pub tls_client_ca_file: Option<PathBuf>,
    /// PEM CA our own clients trust when calling `https://` gRPC URLs (verifier and scheduler →
    /// delivery).
    pub tls_server_ca_file: Option<PathBuf>,
}

impl AuthSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        for (key, token) in [
            ("auth.admin_token", &self.admin_token),
            ("auth.service_token", &self.service_token),
            ("auth.game_server_token", &self.game_server_token),
        ] {
            if let Some(token) = token {
                let t = token.expose();
                if t.len() < MIN_TOKEN_LEN {
                    return Err(ConfigError::value(
                        key,
                        format!(
                            "must be at least {MIN_TOKEN_LEN} characters (unset it to run open)"
                        ),
                    ));
                }
                if t.trim() != t || !t.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
                    return Err(ConfigError::value(
                        key,
                        "must be printable ASCII without surrounding spaces",
                    ));
                }
            }
        }
        if self.admin_token.is_some() && self.admin_token == self.service_token {
            return Err(ConfigError::value(
                "auth.admin_token",
                "must differ from auth.service_token",
            ));
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err(ConfigError::value(
                "auth.tls_key_file",
                "auth.tls_cert_file and auth.tls_key_file go together",
            ));
        }
        if self.tls_client_ca_file.is_some() && self.tls_cert_file.is_none() {
            return Err(ConfigError::value(
                "auth.tls_client_ca_file",
                "needs auth.tls_cert_file and auth.tls_key_file (mutual TLS is TLS first)",
            ));
        }
        Ok(())
    }
}

/// `[apps.<app_id>]`: one game.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    /// Catalog, by store product id.
    #[serde(default)]
    pub products: BTreeMap<String, ProductSettings>,
    /// Who may redeem sandbox/test purchases.
    #[serde(default)]
    pub sandbox: SandboxSettings,
    /// Flag repeated free trials in replies and metrics.
    #[serde(default = "default_true")]
    pub flag_repeat_trials: bool,
    /// Most unpaid orders one user may hold (0 = unlimited).
    #[serde(default = "default_max_open_orders")]
    pub max_open_orders_per_user: u32,
    /// Seconds a purchase that names no order looks back for support's compensation of the same
    /// user and product, to be recorded against it instead of granted again (0 = never).
    #[serde(default = "default_compensation_match_window")]
    pub compensation_match_window_secs: u64,
    /// How a prorated refund's share becomes whole units to take back: `down`, `up` or
    /// `nearest` (the default; see docs/configuration.md).
    #[serde(default)]
    pub partial_refund_rounding: iap_domain::refunds::PartialRefundRounding,
    /// App Store settings (bundle id, trusted roots); absent: no App Store purchases.
    #[serde(default)]
    pub apple: Option<iap_platform_apple::AppleAppConfig>,
    /// Google Play settings (package, service account, licence key); absent: no Google Play
    /// purchases.
    #[serde(default)]
    pub google: Option<iap_platform_google::GoogleAppConfig>,
    /// Huawei IAP settings (app id, client secret, IAP public key); absent: no Huawei purchases.
    #[serde(default)]
    pub huawei: Option<iap_platform_huawei::HuaweiAppConfig>,
}

/// Three days: a lost purchase is reported, compensated and then restored within days.
fn default_compensation_match_window() -> u64 {
    3 * 24 * 3600
}

fn default_true() -> bool {
    true
}

fn default_max_open_orders() -> u32 {
    20
}

/// `[apps.<app_id>.products.<product_id>]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductSettings {
    /// `consumable`, `non_consumable`, `auto_renewable` or `non_renewing`.
    pub kind: String,
    /// Most units per order.
    #[serde(default = "default_max_quantity")]
    pub max_quantity: u32,
    /// Subscription group, for repeated-trial detection.
    #[serde(default)]
    pub subscription_group: Option<String>,
}

fn default_max_quantity() -> u32 {
    1
}

/// `[apps.<app_id>.sandbox]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxSettings {
    /// Accept sandbox purchases from everyone (development, staging).
    pub allow_all: bool,
    /// Accept them from these users (App Review, QA).
    pub users: Vec<String>,
}

/// A configuration problem, in one line naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or a variable could not be read or has the wrong type.
    #[error("{0}")]
    Invalid(String),
    /// A value is well-typed but unusable.
    #[error("{key}: {problem}")]
    Value {
        /// Dotted key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

impl ConfigError {
    fn value(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError::Value {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// Top-level sections, for reading `IAP_<SECTION>_<KEY>` variables.
const SECTIONS: &[&str] = &[
    "database",
    "redis",
    "verifier",
    "delivery",
    "scheduler",
    "emulator",
    "telemetry",
    "auth",
    "apps",
    "jobs",
];

impl Settings {
    /// Reads defaults, then `file` (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, Env::prefixed("IAP_"))
    }

    /// Like [`Settings::load`], with `defaults` as the base layer (iapd's embedded defaults).
    pub fn load_with_defaults(
        defaults: &Settings,
        file: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let figment = Figment::from(Serialized::defaults(defaults));
        Self::extract(figment, file, Env::prefixed("IAP_"))
    }

    /// Settings from TOML text over the defaults, without the environment (tests, embedding).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let figment =
            Figment::from(Serialized::defaults(Settings::default())).merge(Toml::string(text));
        let settings: Settings = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(one_line(&e)))?;
        settings.validate()?;
        Ok(settings)
    }

    fn load_from(file: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        Self::extract(
            Figment::from(Serialized::defaults(Settings::default())),
            file,
            env,
        )
    }

    fn extract(mut figment: Figment, file: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Invalid(format!(
                    "configuration file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        let env = env.filter_map(|key| env_key_path(key.as_str()).map(Into::into));
        figment = figment.merge(env);
        let settings: Settings = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(one_line(&e)))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let known_scheme = |url: &str| {
            ["postgres://", "postgresql://", "sqlite:"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
        };
        if self
            .database
            .url
            .as_deref()
            .is_some_and(|url| !known_scheme(url))
        {
            return Err(ConfigError::value(
                "database.url",
                "must start with postgres://, postgresql:// or sqlite:",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::value(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        if let Some(url) = &self.redis.url {
            let parsed = url::Url::parse(url)
                .map_err(|e| ConfigError::value("redis.url", format!("not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "redis" | "rediss") {
                return Err(ConfigError::value(
                    "redis.url",
                    "must start with redis:// or rediss://",
                ));
            }
        }
        self.auth.validate()?;
        self.validate_jobs()?;
        self.catalog()?;
        self.apple_verifier()?;
        self.google_verifier()?;
        self.huawei_verifier().map(|_| ())
    }

    /// The three stores' clients, built once: each holds its HTTP client (TLS roots loaded
    /// once) and keys, and serves as verifier, confirmer, notification decoder and history.
    pub fn store_clients(&self) -> Result<StoreClients, ConfigError> {
        Ok(StoreClients {
            apple: std::sync::Arc::new(self.apple_verifier()?),
            google: std::sync::Arc::new(self.google_verifier()?),
            huawei: std::sync::Arc::new(self.huawei_verifier()?),
        })
    }

    /// Every store's purchase verifier, for the apps that configure it.
    pub fn purchase_verifiers(
        &self,
    ) -> Result<Vec<std::sync::Arc<dyn iap_domain::ports::PurchaseVerifier>>, ConfigError> {
        Ok(self.store_clients()?.verifiers())
    }

    /// The store-notification decoders: App Store Server Notifications V2, Google Play
    /// real-time developer notifications and Huawei IAP notifications v2.
    pub fn notification_decoders(
        &self,
    ) -> Result<Vec<std::sync::Arc<dyn iap_domain::notifications::NotificationDecoder>>, ConfigError>
    {
        Ok(self.store_clients()?.decoders())
    }

    /// The reconciliation job's timing from `[scheduler]` (and its hold from
    /// `[jobs.reconciliation]`).
    pub fn reconcile_policy(&self) -> iap_domain::usecases::reconcile::ReconcilePolicy {
        iap_domain::usecases::reconcile::ReconcilePolicy {
            first_lookback: std::time::Duration::from_secs(
                self.scheduler.reconcile_lookback_hours.saturating_mul(3600),
            ),
            overlap: std::time::Duration::from_millis(self.scheduler.reconcile_overlap_ms),
            hold: self.job(RECONCILIATION).hold,
        }
    }

    /// The App Store verifier for every app with `[apps.<id>.apple]`.
    pub fn apple_verifier(&self) -> Result<iap_platform_apple::AppleVerifier, ConfigError> {
        let mut configured = Vec::new();
        for (key, app) in &self.apps {
            if let Some(apple) = &app.apple {
                let id = AppId::parse(key.as_str())
                    .map_err(|e| ConfigError::value(format!("apps.{key}"), e.to_string()))?;
                configured.push((id, apple.clone(), app.partial_refund_rounding));
            }
        }
        let verifier =
            iap_platform_apple::AppleVerifier::new(configured.iter().map(|(id, c, _)| (id, c)))
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(configured
            .iter()
            .fold(verifier, |verifier, (id, _, rounding)| {
                verifier.with_partial_refund_rounding(id, *rounding)
            }))
    }

    /// The Google Play verifier for every app with `[apps.<id>.google]`.
    pub fn google_verifier(&self) -> Result<iap_platform_google::GoogleVerifier, ConfigError> {
        let mut configured = Vec::new();
        for (key, app) in &self.apps {
            if let Some(google) = &app.google {
                let id = AppId::parse(key.as_str())
                    .map_err(|e| ConfigError::value(format!("apps.{key}"), e.to_string()))?;
                configured.push((id, google.clone()));
            }
        }
        iap_platform_google::GoogleVerifier::new(configured.iter().map(|(id, c)| (id, c)))
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// The Huawei verifier for every app with `[apps.<id>.huawei]`.
    pub fn huawei_verifier(&self) -> Result<iap_platform_huawei::HuaweiVerifier, ConfigError> {
        let mut configured = Vec::new();
        for (key, app) in &self.apps {
            if let Some(huawei) = &app.huawei {
                let id = AppId::parse(key.as_str())
                    .map_err(|e| ConfigError::value(format!("apps.{key}"), e.to_string()))?;
                configured.push((id, huawei.clone()));
            }
        }
        iap_platform_huawei::HuaweiVerifier::new(configured.iter().map(|(id, c)| (id, c)))
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// The database URL, or the error a standalone service reports when it is missing.
    pub fn database_url(&self) -> Result<&str, ConfigError> {
        self.database.url.as_deref().ok_or_else(|| {
            ConfigError::value(
                "database.url",
                "is not set (set IAP_DATABASE_URL or [database] url)",
            )
        })
    }

    /// The apps' policies, validated.
    pub fn catalog(&self) -> Result<Catalog, ConfigError> {
        let mut apps = Vec::with_capacity(self.apps.len());
        for (app_key, app) in &self.apps {
            let at = |rest: &str| format!("apps.{app_key}.{rest}");
            let app_id = AppId::parse(app_key.as_str())
                .map_err(|e| ConfigError::value(format!("apps.{app_key}"), e.to_string()))?;
            let mut products = HashMap::with_capacity(app.products.len());
            for (product_key, product) in &app.products {
                let key = at(&format!("products.{product_key}"));
                let id = ProductId::parse(product_key.as_str())
                    .map_err(|e| ConfigError::value(&key, e.to_string()))?;
                let kind: ProductKind = product.kind.parse().map_err(|_| {
                    ConfigError::value(
                        format!("{key}.kind"),
                        "must be consumable, non_consumable, auto_renewable or non_renewing",
                    )
                })?;
                if product.max_quantity == 0 {
                    return Err(ConfigError::value(
                        format!("{key}.max_quantity"),
                        "must be at least 1",
                    ));
                }
                let policy = ProductPolicy {
                    kind,
                    max_quantity: product.max_quantity,
                    subscription_group: product.subscription_group.clone(),
                };
                products.insert(id, policy);
            }
            let allowed_users = app
                .sandbox
                .users
                .iter()
                .map(|u| UserId::parse(u.as_str()))
                .collect::<Result<HashSet<_>, _>>()
                .map_err(|e| ConfigError::value(at("sandbox.users"), e.to_string()))?;
            apps.push(AppPolicy {
                app_id,
                products,
                sandbox: SandboxPolicy {
                    allow_all: app.sandbox.allow_all,
                    allowed_users,
                },
                flag_repeat_trials: app.flag_repeat_trials,
                max_open_orders_per_user: app.max_open_orders_per_user,
                compensation_match_window: std::time::Duration::from_secs(
                    app.compensation_match_window_secs,
                ),
            });
        }
        Ok(Catalog::new(apps))
    }
}

/// Maps an environment key (prefix removed, lowercased) to a dotted settings path:
/// `database_url` → `database.url`, `verifier__grpc_listen` → `verifier.grpc_listen`.
/// Variables that name no section (`IAP_CONFIG`, test harness variables) are not settings.
fn env_key_path(key: &str) -> Option<String> {
    let key = key.to_ascii_lowercase();
    if key.contains("__") {
        let path = key.replace("__", ".");
        let section = path.split('.').next()?;
        return SECTIONS.contains(&section).then_some(path);
    }
    SECTIONS.iter().find_map(|section| {
        key.strip_prefix(section)
            .and_then(|rest| rest.strip_prefix('_'))
            .filter(|rest| !rest.is_empty())
            .map(|rest| format!("{section}.{rest}"))
    })
}

fn one_line(err: &figment::Error) -> String {
    // figment's Display spans lines for nested errors and names the source; one line is what
    // an operator reads in a crash loop.
    err.clone()
        .into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!("{}: ", e.path.join("."))
            };
            let from = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            format!("{key}{}{from}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
// figment's Jail closures return figment::Error, which is large; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn env_keys_map_to_sections() {
        assert_eq!(
            env_key_path("database_url").as_deref(),
            Some("database.url")
        );
        assert_eq!(
            env_key_path("DATABASE_MAX_CONNECTIONS").as_deref(),
            Some("database.max_connections")
        );
        assert_eq!(
            env_key_path("verifier__grpc_listen").as_deref(),
            Some("verifier.grpc_listen")
        );
        assert_eq!(env_key_path("config"), None);
        assert_eq!(env_key_path("test_postgres_url"), None);
        assert_eq!(env_key_path("database"), None);
    }

    #[test]
    fn defaults_are_valid_and_name_the_design_ports() {
        let settings = Settings::default();
        settings.validate().unwrap();
        assert_eq!(settings.verifier.grpc_listen.port(), 50051);
        assert_eq!(settings.delivery.grpc_listen.port(), 50052);
        assert_eq!(settings.scheduler.http_listen.port(), 9102);
        assert_eq!(settings.emulator.listen.port(), 9090);
        assert!(settings.database_url().is_err());
    }

    // figment's Jail serialises tests that touch the environment and restores it afterwards.
    #[test]
    fn file_then_environment_override() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "iap.toml",
                r#"
                [database]
                url = "postgres://file@127.0.0.1/iap"
                acquire_timeout = "2s"
                [apps."com.example.game".products.gems_100]
                kind = "consumable"
                max_quantity = 10
                "#,
            )?;
            jail.set_env("IAP_DATABASE_URL", "postgres://env@127.0.0.1/iap");
            jail.set_env("IAP_VERIFIER_GRPC_LISTEN", "127.0.0.1:6000");
            jail.set_env("IAP_CONFIG", "ignored.toml");
            let settings = Settings::load(Some(Path::new("iap.toml"))).expect("valid");
            assert_eq!(
                settings.database.url.as_deref(),
                Some("postgres://env@127.0.0.1/iap")
            );
            assert_eq!(settings.database.acquire_timeout, Duration::from_secs(2));
            assert_eq!(settings.verifier.grpc_listen.port(), 6000);
            let catalog = settings.catalog().expect("catalog");
            let app = catalog
                .app(&AppId::parse("com.example.game").unwrap())
                .expect("app");
            let gems = app
                .product(&ProductId::parse("gems_100").unwrap())
                .expect("product");
            assert_eq!(gems.kind, ProductKind::Consumable);
            assert_eq!(gems.max_quantity, 10);
            Ok(())
        });
    }

    #[test]
    fn partial_refund_rounding_is_read_per_app_and_checked() {
        use iap_domain::refunds::PartialRefundRounding;
        Jail::expect_with(|jail| {
            jail.create_file(
                "rounding.toml",
                "[apps.a]\npartial_refund_rounding = \"down\"\n[apps.b]\n",
            )?;
            let settings = Settings::load(Some(Path::new("rounding.toml"))).unwrap();
            assert_eq!(
                settings.apps["a"].partial_refund_rounding,
                PartialRefundRounding::Down
            );
            assert_eq!(
                settings.apps["b"].partial_refund_rounding,
                PartialRefundRounding::Nearest,
                "the default"
            );
            jail.create_file(
                "floor.toml",
                "[apps.a]\npartial_refund_rounding = \"floor\"\n",
            )?;
            let err = Settings::load(Some(Path::new("floor.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("apps.a.partial_refund_rounding"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn mistakes_are_reported_by_key() {
        Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "[database]\nurll = \"postgres://x\"\n")?;
            let err = Settings::load(Some(Path::new("typo.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("urll"), "{err}");
            assert!(!err.contains('\n'), "one line: {err}");

            jail.create_file("kind.toml", "[apps.a.products.p]\nkind = \"gem\"\n")?;
            let err = Settings::load(Some(Path::new("kind.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("apps.a.products.p.kind"), "{err}");

            jail.set_env("IAP_DATABASE_MAX_CONNECTIONS", "many");
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("max_connections"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("IAP_DATABASE_URL", "mysql://x");
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.starts_with("database.url"), "{err}");
            let err = Settings::load(Some(Path::new("missing.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("does not exist"), "{err}");
            Ok(())
        });
    }
}

/// The three stores' clients of one process (see [`Settings::store_clients`]).
#[derive(Debug, Clone)]
pub struct StoreClients {
    /// App Store.
    pub apple: std::sync::Arc<iap_platform_apple::AppleVerifier>,
    /// Google Play.
    pub google: std::sync::Arc<iap_platform_google::GoogleVerifier>,
    /// Huawei IAP.
    pub huawei: std::sync::Arc<iap_platform_huawei::HuaweiVerifier>,
}

impl StoreClients {
    /// As purchase verifiers.
    pub fn verifiers(&self) -> Vec<std::sync::Arc<dyn iap_domain::ports::PurchaseVerifier>> {
        vec![self.apple.clone(), self.google.clone(), self.huawei.clone()]
    }

    /// As store confirmers (Apple answers NotApplicable).
    pub fn confirmers(&self) -> Vec<std::sync::Arc<dyn iap_domain::ports::StoreConfirmer>> {
        vec![self.apple.clone(), self.google.clone(), self.huawei.clone()]
    }

    /// As notification decoders.
    pub fn decoders(
        &self,
    ) -> Vec<std::sync::Arc<dyn iap_domain::notifications::NotificationDecoder>> {
        vec![self.apple.clone(), self.google.clone(), self.huawei.clone()]
    }

    /// As the stores' histories for reconciliation (Apple notification history, Google voided
    /// purchases, Huawei cancelled purchases).
    pub fn histories(&self) -> Vec<std::sync::Arc<dyn iap_domain::reconciliation::StoreHistory>> {
        vec![self.apple.clone(), self.google.clone(), self.huawei.clone()]
    }
}
