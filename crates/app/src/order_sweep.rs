//! The order sweep: every paid order not yet delivered or confirmed — a fast path that was lost,
//! a process killed mid-grant, a game server or store that was down — is delivered again. It is
//! one job wherever it runs: in a process with the delivery role it delivers in process, in
//! `iap-scheduler` it hands each order to `iap-delivery` over gRPC. Each pass reserves its
//! orders with `FOR UPDATE SKIP LOCKED` (their `next_attempt_at` moves ahead by the hold), so
//! any number of sweepers share the backlog; Deliver's own claim and grant id keep every order
//! granted once whatever they do.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;

use iap_domain::delivery::{DeliveryStore, DeliveryTrigger};
use iap_domain::ports::StorageError;
use iap_storage::Storage;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepPass {
    /// Orders reserved.
    pub reserved: usize,
    /// Deliver calls that answered (the order went as far as it could now).
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
    /// A sweep over `storage` that hands due orders to `delivery`: at most `batch` per pass,
    /// `concurrency` at once, each kept from other sweepers for `hold`.
    pub fn new(
        storage: Storage,
        delivery: Arc<dyn DeliveryTrigger>,
        batch: u32,
        concurrency: usize,
        hold: Duration,
    ) -> Self {
        Self {
            storage,
            delivery,
            batch: batch.max(1),
            concurrency: concurrency.max(1),
            hold,
        }
    }

    /// One pass over the orders due now.
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
                    tracing::warn!(order_id = %id, error = %e, "sweep: delivery failed; due again after the hold");
                    pass.failed += 1;
                }
            }
        }
        metrics::counter!("iap_sweep_orders_total").increment(pass.reserved as u64);
        Ok(pass)
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
