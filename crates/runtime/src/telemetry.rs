//! Logging (pretty for a terminal, JSON for a collector) and the process-wide Prometheus
//! recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{
    BuildError, Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, TelemetrySettings};

/// Installs the tracing subscriber. `RUST_LOG`, when set, overrides the configured filter.
/// Calling it twice is harmless (the first subscriber stays).
pub fn init_logging(settings: &TelemetrySettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// Latency buckets in seconds, from 1 ms (a cached read) to 30 s (a store timeout).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Waiting-time buckets in seconds, from 50 ms (the fast path) to a day (a game server or a
/// notification processor down overnight): what a player or a store waits, not one call.
const WAIT_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
];

/// Histograms measuring a wait across processes rather than one call.
const WAIT_HISTOGRAMS: &[&str] = &[
    "iap_delivery_latency_seconds",
    "iap_notification_lag_seconds",
];

/// A Prometheus recorder with this system's histogram buckets (not yet installed).
pub fn build_recorder() -> PrometheusRecorder {
    // Bucket lists are constants and never empty, the one thing the builder refuses.
    with_buckets()
        .unwrap_or_else(|_| PrometheusBuilder::new())
        .build_recorder()
}

fn with_buckets() -> Result<PrometheusBuilder, BuildError> {
    let mut builder = PrometheusBuilder::new();
    // Full-name matchers take precedence over suffix matchers in the exporter.
    for name in WAIT_HISTOGRAMS {
        builder = builder.set_buckets_for_metric(Matcher::Full((*name).into()), WAIT_BUCKETS)?;
    }
    builder.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
}

/// The process-wide Prometheus recorder, installed on first use with every metric described
/// (see [`crate::metrics_catalog`]). Several services in one process (iapd, tests) share it,
/// which is what a single `/metrics` endpoint needs.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness); this handle then
            // renders an empty page instead of failing the process.
            if metrics::set_global_recorder(recorder).is_ok() {
                crate::metrics_catalog::describe_all();
            }
            handle
        })
        .clone()
}
