//! The order sweep: every paid order not yet delivered or confirmed — the fast path lost, a
//! process killed mid-grant, a game server or store that was down — is handed to
//! `iap-delivery` again. Each pass reserves its orders with `FOR UPDATE SKIP LOCKED` (their
//! `next_attempt_at` moves ahead by the hold), so replicas share the work; Deliver's own claim
//! and grant id keep every order granted once whatever the replicas do.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;

use iap_domain::delivery::{DeliveryStore, DeliveryTrigger};
use iap_domain::ports::StorageError;
use iap_runtime::settings::SchedulerSettings;
use iap_storage::Storage;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepPass {
    /// Orders reserved.
    pub reserved: usize,
    /// Deliver calls that answered.
    pub delivered: usize,
    /// Deliver calls that failed (the order comes due again after the hold).
    pub failed: usize,
}

/// The order sweep job.
#[derive(Clone)]
pub struct OrderSweep {
    storage: Storage,
    delivery: Arc<dyn DeliveryTrigger>,
    batch: u32,
    concurrency: usize,
    hold: Duration,
}

impl std::fmt::Debug for OrderSweep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderSweep")
            .field("batch", &self.batch)
            .field("concurrency", &self.concurrency)
            .field("hold", &self.hold)
            .finish_non_exhaustive()
    }
}

impl OrderSweep {
    /// A sweep over `storage` that hands orders to `delivery`.
    pub fn new(
        storage: Storage,
        delivery: Arc<dyn DeliveryTrigger>,
        settings: &SchedulerSettings,
    ) -> Self {
        Self {
            storage,
            delivery,
            batch: settings.sweep_batch.max(1),
            concurrency: settings.sweep_concurrency.max(1),
            hold: Duration::from_millis(settings.sweep_hold_ms.max(1_000)),
        }
    }

    /// One pass.
    pub async fn run_once(&self) -> Result<SweepPass, StorageError> {
        let due = self
            .storage
            .reserve_due_orders(Utc::now(), self.batch, self.hold)
            .await?;
        let mut pass = SweepPass {
            reserved: due.len(),
            ..SweepPass::default()
        };
        let mut calls = futures::stream::iter(due)
            .map(|id| {
                let delivery = self.delivery.clone();
                async move { (id, delivery.deliver_now(id).await) }
            })
            .buffer_unordered(self.concurrency);
        while let Some((id, result)) = calls.next().await {
            match result {
                Ok(()) => pass.delivered += 1,
                Err(e) => {
                    tracing::warn!(order_id = %id, error = %e, "sweep: Deliver failed; due again after the hold");
                    pass.failed += 1;
                }
            }
        }
        metrics::counter!("iap_scheduler_swept_orders_total").increment(pass.reserved as u64);
        self.report_backlog().await;
        Ok(pass)
    }

    /// Gauges to alert on: how many paid orders wait for their grant or their store
    /// confirmation, and for how long the oldest has (alert well inside Google's three days).
    async fn report_backlog(&self) {
        let Ok(backlog) = self.storage.backlog().await else {
            return;
        };
        let now = Utc::now();
        let age = |at: Option<chrono::DateTime<Utc>>| {
            at.map_or(0.0, |at| {
                (now - at).num_milliseconds().max(0) as f64 / 1000.0
            })
        };
        metrics::gauge!("iap_orders_undelivered").set(backlog.undelivered as f64);
        metrics::gauge!("iap_orders_undelivered_oldest_age_seconds")
            .set(age(backlog.oldest_undelivered_paid_at));
        metrics::gauge!("iap_orders_unconfirmed").set(backlog.unconfirmed as f64);
        metrics::gauge!("iap_orders_unconfirmed_oldest_age_seconds")
            .set(age(backlog.oldest_unconfirmed_delivered_at));
    }
}

impl iap_runtime::jobs::Report for SweepPass {
    fn taken(&self) -> usize {
        self.reserved
    }
}

impl iap_runtime::jobs::Job for OrderSweep {
    type Report = SweepPass;

    fn name(&self) -> &'static str {
        "order_sweep"
    }

    fn batch(&self) -> Option<u32> {
        Some(self.batch)
    }

    async fn run_once(&self) -> Result<SweepPass, StorageError> {
        OrderSweep::run_once(self).await
    }
}
