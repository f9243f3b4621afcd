//! The counts and ages that show lost orders.

use chrono::{DateTime, SubsecRound, Utc};

use super::{AdminError, Administration};
use crate::admin::{AdminStore, OrderStats};
use crate::delivery::DeliveryStore;
use crate::ids::AppId;
use crate::order::OrderState;
use crate::ports::OrderRepository;

/// `GetStats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminStats {
    /// The raw counts.
    pub counts: OrderStats,
    /// Age of the oldest paid-but-undelivered order (zero when none).
    pub oldest_undelivered_age: chrono::Duration,
    /// Age of the oldest delivered-but-unconfirmed order (zero when none).
    pub oldest_unconfirmed_age: chrono::Duration,
    /// DEAD orders.
    pub dead_orders: u64,
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

impl<S: AdminStore + OrderRepository + DeliveryStore> Administration<S> {
    /// Counts and ages that show lost orders.
    #[tracing::instrument(name = "admin.stats", skip_all, err)]
    pub async fn stats(&self, app: Option<&AppId>) -> Result<AdminStats, AdminError> {
        let counts = self.store.order_stats(app).await?;
        let now = now();
        let age = |since: Option<DateTime<Utc>>| {
            since.map_or(chrono::Duration::zero(), |at| {
                (now - at).max(chrono::Duration::zero())
            })
        };
        let dead_orders = counts
            .by_state
            .iter()
            .filter(|(state, _, _)| *state == OrderState::Dead)
            .map(|(_, _, n)| n)
            .sum();
        Ok(AdminStats {
            oldest_undelivered_age: age(counts.oldest_undelivered_since),
            oldest_unconfirmed_age: age(counts.oldest_unconfirmed_since),
            dead_orders,
            counts,
        })
    }
}
