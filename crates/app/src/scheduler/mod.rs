//! The scheduler role: the background jobs that need no request to start them — the operations
//! gauges, subscriptions whose period is ending checked at the store, and reconciliation with the
//! stores' histories. Any number of replicas may run them. In `iap-scheduler` it also runs the
//! order sweep, handing due orders to `iap-delivery` over gRPC; [`crate::App`] decides.

mod gauges;

use std::sync::Arc;
use std::time::Duration;

pub use gauges::OrderGauges;

use iap_domain::delivery::DeliveryTrigger;
use iap_domain::usecases::reconcile::Reconciliation;
use iap_domain::usecases::refresh_subscription::SubscriptionRefresh;
use iap_domain::usecases::verify_purchase::PurchaseVerification;
use iap_runtime::Settings;
use iap_runtime::jobs::{JobSet, ReconciliationJob, SubscriptionCheckJob};
use iap_runtime::settings::StoreClients;
use iap_storage::Storage;

/// The store-facing jobs (subscription checks, reconciliation), which hand what they find to
/// `delivery`: the delivery role in process, or `DeliveryService` over gRPC.
pub(crate) fn add_store_jobs(
    jobs: &mut JobSet,
    settings: &Settings,
    storage: &Storage,
    stores: &StoreClients,
    purchases: Arc<PurchaseVerification<Storage>>,
    delivery: Arc<dyn DeliveryTrigger>,
) {
    let refresh = SubscriptionRefresh::new(purchases, delivery.clone(), storage.clone());
    let timing = subscription_job(settings);
    jobs.add(
        SubscriptionCheckJob {
            refresh: Arc::new(refresh),
            batch: timing.batch,
            hold: timing.hold,
        },
        timing.interval,
    );
    match reconciliation(settings, storage, stores, delivery) {
        Some((reconciliation, interval)) => {
            jobs.add(ReconciliationJob { reconciliation }, interval);
        }
        None => tracing::info!("reconciliation off (scheduler.reconcile_interval_ms = 0)"),
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
