//! The operations gauges: open orders by state and store, how long the oldest paid order has
//! waited in each state, the notification inbox's backlog, and paid purchases kept unclaimed (no
//! order or user found) with the age of the oldest. Every replica refreshes them (three
//! cheap queries), so alerts take the `max` across replicas and a dead replica hides nothing.

use chrono::{DateTime, Utc};

use iap_domain::ports::StorageError;
use iap_domain::unclaimed::UnclaimedStore;
use iap_domain::{OrderState, Platform};
use iap_storage::{OPEN_STATES, OpenOrders, Storage};

/// The gauges job.
#[derive(Debug, Clone)]
pub struct OrderGauges {
    storage: Storage,
}

impl OrderGauges {
    /// Gauges over `storage`.
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }

    /// Reads the database once and sets every gauge; returns the open orders it read.
    pub async fn run_once(&self) -> Result<Vec<OpenOrders>, StorageError> {
        let open = self.storage.open_orders().await?;
        let pending = self.storage.pending_notifications().await?;
        let now = Utc::now();
        let age = |at: Option<DateTime<Utc>>| {
            at.map_or(0.0, |at| {
                (now - at).num_milliseconds().max(0) as f64 / 1000.0
            })
        };
        // Every state and store is set, zero when absent, so a drained backlog reads 0 rather
        // than its last non-zero value.
        for &state in OPEN_STATES {
            for &platform in Platform::ALL {
                let found = open
                    .iter()
                    .find(|o| o.state == state && o.platform == platform);
                let labels = [("state", state.as_str()), ("platform", platform.as_str())];
                metrics::gauge!("iap_orders", &labels).set(found.map_or(0, |o| o.count) as f64);
                if state.is_paid() {
                    metrics::gauge!("iap_orders_oldest_paid_age_seconds", &labels)
                        .set(age(found.and_then(|o| o.oldest_paid_at)));
                }
            }
        }
        let waiting = in_states(&open, &[OrderState::Paid, OrderState::Delivering]);
        metrics::gauge!("iap_orders_undelivered")
            .set(waiting.iter().map(|o| o.count).sum::<u64>() as f64);
        metrics::gauge!("iap_orders_undelivered_oldest_age_seconds")
            .set(age(waiting.iter().filter_map(|o| o.oldest_paid_at).min()));
        let delivered = in_states(&open, &[OrderState::Delivered]);
        metrics::gauge!("iap_orders_unconfirmed")
            .set(delivered.iter().map(|o| o.count).sum::<u64>() as f64);
        metrics::gauge!("iap_orders_unconfirmed_oldest_age_seconds").set(age(delivered
            .iter()
            .filter_map(|o| o.oldest_delivered_at)
            .min()));
        metrics::gauge!("iap_notifications_pending").set(pending.count as f64);
        metrics::gauge!("iap_notifications_pending_oldest_age_seconds")
            .set(age(pending.oldest_received_at));
        let unclaimed = self.storage.open_unclaimed().await?;
        for &platform in Platform::ALL {
            let found = unclaimed.iter().find(|u| u.platform == platform);
            let labels = [("store", platform.as_str())];
            metrics::gauge!("iap_unclaimed_purchases", &labels)
                .set(found.map_or(0, |u| u.count) as f64);
            metrics::gauge!("iap_unclaimed_purchases_oldest_age_seconds", &labels)
                .set(age(found.and_then(|u| u.oldest_first_seen_at)));
        }
        metrics::gauge!("iap_gauges_refreshed_timestamp_seconds")
            .set(now.timestamp_millis() as f64 / 1000.0);
        Ok(open)
    }
}

/// A gauges pass reads everything; nothing in it is worth a log line.
#[derive(Debug)]
pub struct GaugesPass;

impl iap_runtime::jobs::Report for GaugesPass {
    fn taken(&self) -> usize {
        0
    }
}

impl iap_runtime::jobs::Job for OrderGauges {
    type Report = GaugesPass;

    fn name(&self) -> &'static str {
        "gauges"
    }

    fn batch(&self) -> Option<u32> {
        None
    }

    async fn run_once(&self) -> Result<GaugesPass, StorageError> {
        OrderGauges::run_once(self).await.map(|_| GaugesPass)
    }
}

fn in_states(open: &[OpenOrders], states: &[OrderState]) -> Vec<OpenOrders> {
    open.iter()
        .filter(|o| states.contains(&o.state))
        .copied()
        .collect()
}
