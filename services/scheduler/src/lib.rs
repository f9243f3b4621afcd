//! `iap-scheduler`: the background jobs (sweeps, store confirmation deadlines, reconciliation,
//! subscriptions, refunds). Any number of replicas may run. It serves only its operations HTTP
//! port (`/metrics`, `/healthz`, `/readyz`).

use std::sync::Arc;

use tokio::net::TcpListener;

use iap_runtime::http::ReadinessCheck;
use iap_runtime::{Settings, Shutdown, StartupError};
use iap_storage::Storage;

/// The scheduler role, wired to its adapters.
#[derive(Debug, Clone)]
pub struct Scheduler {
    storage: Storage,
}

impl Scheduler {
    /// Wires the role over a database.
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }

    /// Ready when the database answers.
    pub fn readiness(&self) -> ReadinessCheck {
        let storage = self.storage.clone();
        Arc::new(move || {
            let storage = storage.clone();
            Box::pin(async move {
                storage.ping().await.map_err(|e| format!("database: {e}"))?;
                Ok("database ok".to_owned())
            })
        })
    }

    /// Runs the job loops until the shutdown.
    pub async fn run_jobs(&self, shutdown: Shutdown) {
        shutdown.wait().await;
    }
}

/// Runs `iap-scheduler` until the shutdown.
pub async fn run(settings: Settings, shutdown: Shutdown) -> Result<(), StartupError> {
    let url = settings.database_url()?.to_owned();
    let storage = iap_runtime::database::open(&settings, &url).await?;
    let http = iap_runtime::http::bind("HTTP", settings.scheduler.http_listen).await?;
    serve(Scheduler::new(storage), http, shutdown).await
}

/// Serves a wired scheduler until the shutdown.
pub async fn serve(
    scheduler: Scheduler,
    http: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartupError> {
    let ops = iap_runtime::http::ops_router(Some(scheduler.readiness()));
    let jobs = scheduler.run_jobs(shutdown.clone());
    let server = iap_runtime::process::serve("iap-scheduler", None, (http, ops), shutdown);
    let ((), result) = tokio::join!(jobs, server);
    result
}
