//! The operations HTTP endpoints every process serves: `/metrics` (Prometheus), `/healthz`
//! (alive) and `/readyz` (dependencies answer). Services merge their own routes into them; a
//! process whose HTTP port faces the internet (the store notifications) serves `/metrics` on a
//! listener of its own ([`metrics_router`]) and only the health routes on the public one.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::shutdown::Shutdown;
use crate::telemetry::metrics_handle;

/// A readiness check: `Ok(status line)` when the process can serve, `Err(why)` when not.
pub type ReadinessCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send + Sync>;

/// `/metrics`, `/healthz` and `/readyz`.
pub fn ops_router(readiness: Option<ReadinessCheck>) -> Router {
    health_router(readiness).merge(metrics_router())
}

/// `/healthz` and `/readyz` alone.
pub fn health_router(readiness: Option<ReadinessCheck>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(readiness)
}

/// `/metrics` alone.
pub fn metrics_router() -> Router {
    // Installing the recorder here, before any request is served, keeps the first metrics of
    // the process from being recorded into nothing.
    let _ = metrics_handle();
    Router::new().route("/metrics", get(render_metrics))
}

async fn render_metrics() -> impl IntoResponse {
    let handle = metrics_handle();
    handle.run_upkeep();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        handle.render(),
    )
}

async fn ready(State(check): State<Option<ReadinessCheck>>) -> impl IntoResponse {
    match check {
        None => (StatusCode::OK, "ready".to_owned()),
        Some(check) => match check().await {
            Ok(status) => (StatusCode::OK, status),
            Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e),
        },
    }
}

/// Serves `router` on `listener` until the shutdown, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    axum::serve(without_nagle(listener), router)
        .with_graceful_shutdown(shutdown.wait_owned())
        .await
}

/// `listener` with `TCP_NODELAY` on every accepted connection. axum leaves Nagle's algorithm
/// on, and a reply written in two pieces then waits for the peer's delayed ACK (40 ms on
/// Linux): that alone made every store call to the emulator take 40 ms more.
pub fn without_nagle(
    listener: TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    })
}

/// Binds a listener, naming the address in the error (ports in use are a common first-run
/// problem).
pub async fn bind(what: &str, addr: SocketAddr) -> Result<TcpListener, crate::StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| crate::StartupError::Bind {
            what: what.to_owned(),
            addr,
            source: e,
        })
}
