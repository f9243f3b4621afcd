//! What the settings are: one struct per section, with its defaults. Serde reads them;
//! loading, validation and what the processes build from them live next door.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::JobSettings;

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

#[cfg(test)]
// figment's Jail closures return figment::Error, which is large; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;
    use std::path::Path;

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
}
