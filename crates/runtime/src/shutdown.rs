//! The one shutdown path: a token cancelled by SIGTERM/SIGINT (or by a test), which every server
//! and job loop watches. Servers stop accepting, finish what is in flight, then return.

use tokio_util::sync::CancellationToken;

/// A cloneable handle to the process-wide shutdown.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A shutdown that only [`Shutdown::trigger`] fires (tests, embedded use).
    pub fn new() -> Self {
        Self::default()
    }

    /// A shutdown fired by SIGTERM or SIGINT as well.
    pub fn on_signals() -> Self {
        let shutdown = Self::new();
        let token = shutdown.token.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received, draining");
            token.cancel();
        });
        shutdown
    }

    /// Starts the shutdown.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether the shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once the shutdown has started.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }

    /// A future for APIs that take `impl Future<Output = ()> + Send + 'static`.
    pub fn wait_owned(&self) -> impl Future<Output = ()> + Send + 'static {
        self.token.clone().cancelled_owned()
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the process");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
