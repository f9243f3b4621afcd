//! Logging (pretty for a terminal, JSON for a collector), optional OpenTelemetry span export
//! (the `otel` feature), and the process-wide Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{
    BuildError, Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::settings::{LogFormat, TelemetrySettings};

/// A layer over the bare registry; the filter applies to all of them.
type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the tracing subscriber: logs on stderr and, when built with the `otel` feature and
/// `telemetry.otlp_endpoint` is set, spans exported over OTLP as `service`. `RUST_LOG`, when set,
/// overrides the configured filter. Calling it twice is harmless (the first subscriber stays).
/// Call it inside a tokio runtime: the exporter's gRPC channel needs one.
pub fn init_logging(service: &str, settings: &TelemetrySettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs: BoxedLayer = match settings.log_format {
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
        LogFormat::Pretty => logs.compact().boxed(),
    };
    let mut layers = vec![logs];
    layers.extend(span_export(service, settings));
    let _ = tracing_subscriber::registry()
        .with(layers)
        .with(filter)
        .try_init();
}

/// Sends the spans still buffered for export; call once before the process exits.
pub fn flush() {
    #[cfg(feature = "otel")]
    if let Some(provider) = otel::PROVIDER.get()
        && let Err(e) = provider.shutdown()
    {
        eprintln!("OpenTelemetry: spans not flushed: {e}");
    }
}

#[cfg(not(feature = "otel"))]
fn span_export(service: &str, settings: &TelemetrySettings) -> Option<BoxedLayer> {
    if settings.otlp_endpoint.is_some() {
        // Printed, not logged: the subscriber is not installed yet.
        eprintln!(
            "{service}: telemetry.otlp_endpoint is set, but this build has no `otel` feature; \
             spans are not exported"
        );
    }
    None
}

#[cfg(feature = "otel")]
fn span_export(service: &str, settings: &TelemetrySettings) -> Option<BoxedLayer> {
    let endpoint = settings.otlp_endpoint.as_deref()?;
    match otel::layer(service, endpoint) {
        Ok(layer) => Some(layer),
        Err(e) => {
            eprintln!("{service}: OpenTelemetry export to {endpoint} unavailable: {e}");
            None
        }
    }
}

#[cfg(feature = "otel")]
mod otel {
    use std::sync::OnceLock;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::Layer as _;

    use super::BoxedLayer;

    /// The provider whose batches `flush` sends at exit.
    pub(super) static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// A layer exporting spans in batches over OTLP/gRPC to `endpoint`.
    pub(super) fn layer(
        service: &str,
        endpoint: &str,
    ) -> Result<BoxedLayer, opentelemetry_otlp::ExporterBuildError> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(service.to_owned())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer(service.to_owned());
        let _ = PROVIDER.set(provider);
        Ok(tracing_opentelemetry::layer().with_tracer(tracer).boxed())
    }
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
