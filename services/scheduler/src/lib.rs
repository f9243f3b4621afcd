//! `iap-scheduler`: the background jobs (sweeps, store confirmation deadlines, reconciliation,
//! subscriptions, refunds). Any number of replicas may run. It serves only its operations HTTP
//! port (`/metrics`, `/healthz`, `/readyz`).

mod gauges;
mod sweep;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use gauges::OrderGauges;
pub use sweep::{OrderSweep, SweepPass};

use iap_domain::delivery::DeliveryTrigger;
use iap_domain::usecases::reconcile::Reconciliation;
use iap_domain::usecases::refresh_subscription::SubscriptionRefresh;
use iap_domain::usecases::verify_purchase::PurchaseVerification;
use iap_runtime::http::ReadinessCheck;
use iap_runtime::settings::StoreClients;
use iap_runtime::{Settings, Shutdown, StartupError};
use iap_storage::Storage;

/// The scheduler role, wired to its adapters.
#[derive(Clone)]
pub struct Scheduler {
    storage: Storage,
    sweep: Option<(OrderSweep, Duration)>,
    gauges: Option<(OrderGauges, Duration)>,
    subscriptions: Option<(Arc<SubscriptionRefresh<Storage>>, SubscriptionJob)>,
    reconciliation: Option<ScheduledReconciliation>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("sweep", &self.sweep)
            .field("gauges", &self.gauges)
            .field(
                "subscriptions",
                &self.subscriptions.as_ref().map(|(_, job)| job),
            )
            .finish_non_exhaustive()
    }
}

/// How the subscription job runs.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionJob {
    /// Pause between passes.
    pub interval: Duration,
    /// Subscriptions one pass takes at most.
    pub batch: u32,
    /// How long a pass keeps its subscriptions from other replicas.
    pub hold: Duration,
}

impl Scheduler {
    /// Wires the role over a database, with the operations gauges at their default interval.
    pub fn new(storage: Storage) -> Self {
        let interval = iap_runtime::settings::SchedulerSettings::default().gauges_interval_ms;
        Self {
            gauges: Some((
                OrderGauges::new(storage.clone()),
                Duration::from_millis(interval),
            )),
            storage,
            sweep: None,
            subscriptions: None,
            reconciliation: None,
        }
    }

    /// Refreshes the operations gauges every `interval` (zero: never).
    pub fn with_gauges_interval(mut self, interval: Duration) -> Self {
        self.gauges =
            (!interval.is_zero()).then(|| (OrderGauges::new(self.storage.clone()), interval));
        self
    }

    /// Adds the reconciliation job, run every `interval`.
    pub fn with_reconciliation(
        mut self,
        reconciliation: Arc<Reconciliation<Storage>>,
        interval: Duration,
    ) -> Self {
        self.reconciliation = Some((reconciliation, interval));
        self
    }

    /// Adds the subscription job: subscriptions whose period or grace period is ending (or
    /// that are suspended) are refreshed from the store.
    pub fn with_subscriptions(
        mut self,
        refresh: Arc<SubscriptionRefresh<Storage>>,
        job: SubscriptionJob,
    ) -> Self {
        self.subscriptions = Some((refresh, job));
        self
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

    /// Runs the scheduler's jobs on the one runner until the shutdown.
    pub async fn run_jobs(&self, shutdown: Shutdown) {
        use iap_runtime::jobs::{self, ReconciliationJob, SubscriptionCheckJob};
        let sweep = async {
            if let Some((sweep, interval)) = &self.sweep {
                jobs::run(sweep.clone(), *interval, shutdown.clone()).await;
            }
        };
        let subscriptions = async {
            if let Some((refresh, timing)) = &self.subscriptions {
                let job = SubscriptionCheckJob {
                    refresh: refresh.clone(),
                    batch: timing.batch,
                    hold: timing.hold,
                };
                jobs::run(job, timing.interval, shutdown.clone()).await;
            }
        };
        let reconciliation = async {
            if let Some((reconciliation, interval)) = &self.reconciliation {
                let job = ReconciliationJob {
                    reconciliation: reconciliation.clone(),
                };
                jobs::run(job, *interval, shutdown.clone()).await;
            }
        };
        let gauges = async {
            if let Some((gauges, interval)) = &self.gauges {
                jobs::run(gauges.clone(), *interval, shutdown.clone()).await;
            }
        };
        tokio::join!(sweep, gauges, subscriptions, reconciliation);
    }
}

/// Runs `iap-scheduler` until the shutdown.
pub async fn run(settings: Settings, shutdown: Shutdown) -> Result<(), StartupError> {
    let url = settings.database_url()?.to_owned();
    let storage = iap_runtime::database::open(&settings, &url).await?;
    let http = iap_runtime::http::bind("HTTP", settings.scheduler.http_listen).await?;
    let mut scheduler = Scheduler::new(storage.clone())
        .with_gauges_interval(Duration::from_millis(settings.scheduler.gauges_interval_ms));
    match &settings.scheduler.delivery_url {
        Some(url) => {
            let delivery: Arc<dyn DeliveryTrigger> = Arc::new(
                iap_runtime::delivery_client::DeliveryClient::with_auth(url, &settings.auth)
                    .map_err(|e| StartupError::Config(iap_runtime::ConfigError::Invalid(e)))?,
            );
            let sweep = OrderSweep::new(storage.clone(), delivery.clone(), &settings.scheduler);
            let interval = Duration::from_millis(settings.scheduler.sweep_interval_ms.max(50));
            scheduler = scheduler.with_sweep(sweep, interval);
            // One set of store clients (HTTP clients, keys) serves both store-facing jobs.
            let stores = settings.store_clients()?;
            let purchases = Arc::new(PurchaseVerification::new(
                Arc::new(settings.catalog()?),
                stores.verifiers(),
                storage.clone(),
            ));
            let refresh = SubscriptionRefresh::new(purchases, delivery.clone(), storage.clone());
            scheduler =
                scheduler.with_subscriptions(Arc::new(refresh), subscription_job(&settings));
            if let Some((job, interval)) = reconciliation(&settings, &storage, &stores, delivery) {
                scheduler = scheduler.with_reconciliation(job, interval);
            }
        }
        None => tracing::info!(
            "order sweep, subscription checks and reconciliation off: scheduler.delivery_url is not set"
        ),
    }
    // Boxed: the joined job loops make a large future.
    Box::pin(serve(scheduler, http, shutdown)).await
}

/// The reconciliation job and how often it runs.
pub type ScheduledReconciliation = (Arc<Reconciliation<Storage>>, Duration);

/// The reconciliation job over `storage`, handing revocations to `delivery`; `None` when
/// `scheduler.reconcile_interval_ms` is 0.
pub fn reconciliation(
    settings: &Settings,
    storage: &Storage,
    stores: &StoreClients,
    delivery: Arc<dyn DeliveryTrigger>,
) -> Option<ScheduledReconciliation> {
    if settings.scheduler.reconcile_interval_ms == 0 {
        tracing::info!("reconciliation off (scheduler.reconcile_interval_ms = 0)");
        return None;
    }
    let job = Reconciliation::new(
        stores.histories(),
        stores.decoders(),
        Arc::new(storage.clone()),
        delivery,
        storage.clone(),
        settings.reconcile_policy(),
    );
    Some((
        Arc::new(job),
        Duration::from_millis(settings.scheduler.reconcile_interval_ms),
    ))
}

/// The subscription job's timing from `[scheduler]`.
pub fn subscription_job(settings: &Settings) -> SubscriptionJob {
    SubscriptionJob {
        interval: Duration::from_millis(settings.scheduler.subscription_interval_ms.max(50)),
        batch: settings.scheduler.subscription_batch.max(1),
        hold: Duration::from_millis(settings.scheduler.sweep_hold_ms),
    }
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
