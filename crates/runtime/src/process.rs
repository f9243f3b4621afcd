//! Serving a process's endpoints together: an optional gRPC server and the HTTP port, stopped by
//! the same shutdown. If one server fails, the other is told to stop as well.

use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::shutdown::Shutdown;
use crate::startup::StartupError;

/// A gRPC endpoint: its listener, routes and the service names health reports.
#[derive(Debug)]
pub struct GrpcEndpoint {
    /// Bound listener.
    pub listener: TcpListener,
    /// Services.
    pub routes: Routes,
    /// Names reported SERVING.
    pub services: Vec<&'static str>,
    /// TLS (see [`crate::auth::server_tls`]); plaintext when `None`.
    pub tls: Option<tonic::transport::ServerTlsConfig>,
}

/// Serves `grpc` (if any) and `http` until the shutdown, then waits for both to drain.
pub async fn serve(
    name: &str,
    grpc: Option<GrpcEndpoint>,
    http: (TcpListener, axum::Router),
    shutdown: Shutdown,
) -> Result<(), StartupError> {
    serve_with_metrics(name, grpc, http, None, shutdown).await
}

/// [`serve`], with `/metrics` on `metrics` (if any) instead of the HTTP port.
pub async fn serve_with_metrics(
    name: &str,
    grpc: Option<GrpcEndpoint>,
    http: (TcpListener, axum::Router),
    metrics: Option<TcpListener>,
    shutdown: Shutdown,
) -> Result<(), StartupError> {
    let local = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(
        grpc = grpc
            .as_ref()
            .map(|g| local(&g.listener))
            .unwrap_or_default(),
        http = local(&http.0),
        metrics = metrics.as_ref().map(local).unwrap_or_default(),
        "{name} listening"
    );
    let metrics_task = {
        let shutdown = shutdown.clone();
        async move {
            let Some(listener) = metrics else {
                return Ok(());
            };
            let result =
                crate::http::serve(listener, crate::http::metrics_router(), shutdown.clone())
                    .await
                    .map_err(|e| StartupError::Server(format!("metrics server: {e}")));
            if result.is_err() {
                shutdown.trigger();
            }
            result
        }
    };
    let grpc_task = {
        let shutdown = shutdown.clone();
        async move {
            let result = match grpc {
                Some(g) => {
                    crate::grpc::serve(g.listener, g.routes, &g.services, g.tls, shutdown.clone())
                        .await
                        .map_err(|e| StartupError::Server(format!("gRPC server: {e}")))
                }
                None => Ok(()),
            };
            if result.is_err() {
                shutdown.trigger();
            }
            result
        }
    };
    let http_task = {
        let shutdown = shutdown.clone();
        async move {
            let result = crate::http::serve(http.0, http.1, shutdown.clone())
                .await
                .map_err(|e| StartupError::Server(format!("HTTP server: {e}")));
            if result.is_err() {
                shutdown.trigger();
            }
            result
        }
    };
    let servers = async {
        let (grpc, http, metrics) = tokio::join!(grpc_task, http_task, metrics_task);
        (grpc, http.and(metrics))
    };
    tokio::pin!(servers);
    let drain_deadline = async {
        shutdown.wait().await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        (grpc, http) = &mut servers => grpc.and(http),
        () = drain_deadline => {
            // A client that ignores GOAWAY must not keep the process (and a rolling deploy)
            // hanging; whatever is still open is cut, and callers retry elsewhere.
            tracing::warn!(timeout = ?DRAIN_TIMEOUT, "drain timed out; closing remaining connections");
            Ok(())
        }
    }
}

/// Longest wait for in-flight calls after a shutdown signal: below Kubernetes' default 30 s
/// termination grace period, so the process exits on its own before it is killed.
pub const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
