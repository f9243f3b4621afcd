//! The sweeper: finds paid orders that are not delivered or not confirmed yet — a fast-path call
//! that was lost, a crash between two steps, a game server or store that was down — and delivers
//! them. `run_once` is one pass (tests and operators call it); `iap_runtime::jobs::run` loops it. Any
//! number of sweepers may run: each order is claimed by a conditional update, so two sweepers
//! never work on one order at once.

use std::sync::Arc;

use futures::StreamExt;

use iap_domain::OrderState;
use iap_domain::ports::StorageError;
use iap_domain::usecases::deliver::Deliveries;
use iap_storage::Storage;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Orders found due.
    pub due: usize,
    /// Now CONFIRMED.
    pub confirmed: usize,
    /// Now DELIVERED, store confirmation still to come.
    pub delivered: usize,
    /// Still waiting (game server or store failing, or held by another worker).
    pub waiting: usize,
    /// Now DEAD.
    pub dead: usize,
    /// Calls that failed outright (database errors).
    pub errors: usize,
}

/// Sweeps due orders.
#[derive(Debug, Clone)]
pub struct DeliverySweep {
    deliveries: Arc<Deliveries<Storage>>,
    batch: u32,
    concurrency: usize,
}

impl DeliverySweep {
    /// A sweeper over `deliveries`, taking at most `batch` orders per pass and delivering
    /// `concurrency` of them at once.
    pub fn new(deliveries: Arc<Deliveries<Storage>>, batch: u32, concurrency: usize) -> Self {
        Self {
            deliveries,
            batch: batch.max(1),
            concurrency: concurrency.max(1),
        }
    }

    /// One pass over the orders due now.
    pub async fn run_once(&self) -> Result<SweepReport, StorageError> {
        let due = self.deliveries.reserve_due_orders(self.batch).await?;
        let mut report = SweepReport {
            due: due.len(),
            ..SweepReport::default()
        };
        let mut results = futures::stream::iter(due)
            .map(|id| {
                let deliveries = self.deliveries.clone();
                async move { deliveries.deliver(id).await }
            })
            .buffer_unordered(self.concurrency);
        while let Some(result) = results.next().await {
            match result {
                Ok(outcome) if outcome.held_elsewhere => report.waiting += 1,
                Ok(outcome) => match outcome.order.state {
                    OrderState::Confirmed => report.confirmed += 1,
                    OrderState::Delivered => report.delivered += 1,
                    OrderState::Dead => report.dead += 1,
                    _ => report.waiting += 1,
                },
                Err(e) => {
                    tracing::warn!(error = %e, "sweep: delivery failed");
                    report.errors += 1;
                }
            }
        }
        metrics::counter!("iap_sweep_orders_total").increment(report.due as u64);
        Ok(report)
    }
}

impl iap_runtime::jobs::Report for SweepReport {
    fn taken(&self) -> usize {
        self.due
    }
}

impl iap_runtime::jobs::Job for DeliverySweep {
    type Report = SweepReport;

    fn name(&self) -> &'static str {
        "delivery_sweep"
    }

    fn batch(&self) -> Option<u32> {
        Some(self.batch)
    }

    async fn run_once(&self) -> Result<SweepReport, StorageError> {
        DeliverySweep::run_once(self).await
    }
}
