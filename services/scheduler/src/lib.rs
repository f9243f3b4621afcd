//! `iap-scheduler`: the background jobs (sweeps, store confirmation deadlines, reconciliation,
//! subscriptions, refunds). Any number of replicas may run. It serves only its operations HTTP
//! port (`/metrics`, `/healthz`, `/readyz`).

mod sweep;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use sweep::{OrderSweep, SweepPass};

use iap_runtime::http::ReadinessCheck;
use iap_runtime::{Settings, Shutdown, StartupError};
use iap_storage::Storage;

/// The scheduler role, wired to its adapters.
#[derive(Debug, Clone)]
pub struct Scheduler {
    storage: Storage,
    sweep: Option<(OrderSweep, Duration)>,
}

impl Scheduler {
    /// Wires the role over a database.
    pub fn new(storage: Storage) -> Self {
        Self {
            storage,
            sweep: None,
        }
    }

    /// Adds the order sweep, run every `interval`.
    pub fn with_sweep(mut self, sweep: OrderSweep, interval: Duration) -> Self {
        self.sweep = Some((sweep, interval));
        self
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
        match &self.sweep {
            Some((sweep, interval)) => sweep.clone().run(*interval, shutdown).await,
            None => shutdown.wait().await,
        }
    }
}

/// Runs `iap-scheduler` until the shutdown.
pub async fn run(settings: Settings, shutdown: Shutdown) -> Result<(), StartupError> {
    let url = settings.database_url()?.to_owned();
    let storage = iap_runtime::database::open(&settings, &url).await?;
    let http = iap_runtime::http::bind("HTTP", settings.scheduler.http_listen).await?;
    let mut scheduler = Scheduler::new(storage.clone());
    match &settings.scheduler.delivery_url {
        Some(url) => {
            let client =
                iap_runtime::delivery_client::DeliveryClient::with_auth(url, &settings.auth)
                    .map_err(|e| StartupError::Config(iap_runtime::ConfigError::Invalid(e)))?;
            let sweep = OrderSweep::new(storage, Arc::new(client), &settings.scheduler);
            let interval = Duration::from_millis(settings.scheduler.sweep_interval_ms.max(50));
            scheduler = scheduler.with_sweep(sweep, interval);
        }
        None => tracing::info!("order sweep off: scheduler.delivery_url is not set"),
    }
    serve(scheduler, http, shutdown).await
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
