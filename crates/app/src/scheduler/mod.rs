//! The scheduler role: the background jobs that need no request to start them — the operations
//! gauges, subscriptions whose period is ending checked at the store, and reconciliation with the
//! stores' histories. Any number of replicas may run them. In `iap-scheduler` it also runs the
//! order sweep, handing due orders to `iap-delivery` over gRPC; [`crate::App`] decides.

mod gauges;

use std::sync::Arc;

pub use gauges::OrderGauges;

use iap_domain::delivery::DeliveryTrigger;
use iap_domain::usecases::reconcile::Reconciliation;
use iap_domain::usecases::refresh_subscription::SubscriptionRefresh;
use iap_domain::usecases::verify_purchase::PurchaseVerification;
use iap_runtime::Settings;
use iap_runtime::jobs::{JobSet, ReconciliationJob, SubscriptionCheckJob};
use iap_runtime::settings::{RECONCILIATION, SUBSCRIPTION_CHECKS, StoreClients};
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
    let checks = settings.job(SUBSCRIPTION_CHECKS);
    jobs.add(
        SubscriptionCheckJob {
            refresh: Arc::new(refresh),
            batch: checks.batch,
            hold: checks.hold,
        },
        checks.interval,
    );
    let reconcile = settings.job(RECONCILIATION);
    if reconcile.interval.is_zero() {
        tracing::info!("reconciliation off (jobs.reconciliation.interval_ms = 0)");
        return;
    }
    let reconciliation = Reconciliation::new(
        stores.histories(),
        stores.decoders(),
        Arc::new(storage.clone()),
        delivery,
        storage.clone(),
        settings.reconcile_policy(),
    );
    jobs.add(
        ReconciliationJob {
            reconciliation: Arc::new(reconciliation),
        },
        reconcile.interval,
    );
}
