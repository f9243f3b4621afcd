//! The cheap reads behind the operations gauges: open orders by state and store, and the
//! notification inbox's unprocessed rows. Settled states (CONFIRMED, REJECTED, REFUNDED, REVOKED)
//! only ever grow and would cost a scan of the whole table; their rates come from counters.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use iap_domain::ports::StorageError;
use iap_domain::{OrderState, Platform};

use crate::convert::parse;
use crate::entity::{notifications, orders};
use crate::{Storage, classify};

/// The states an order can still leave, which the gauges count.
pub const OPEN_STATES: &[OrderState] = &[
    OrderState::Created,
    OrderState::Paid,
    OrderState::Delivering,
    OrderState::Delivered,
    OrderState::Dead,
];

/// Open orders of one state in one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOrders {
    /// The state.
    pub state: OrderState,
    /// The store.
    pub platform: Platform,
    /// How many.
    pub count: u64,
    /// When the oldest paid one of them was paid (none for CREATED).
    pub oldest_paid_at: Option<DateTime<Utc>>,
    /// When the oldest delivered one of them was delivered (DELIVERED only).
    pub oldest_delivered_at: Option<DateTime<Utc>>,
}

/// The notification inbox's backlog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PendingNotifications {
    /// Notifications stored and not yet processed.
    pub count: u64,
    /// When the oldest of them was received.
    pub oldest_received_at: Option<DateTime<Utc>>,
}

impl Storage {
    /// Open orders, one entry per state and store that has any (one `GROUP BY` over the
    /// unsettled rows only).
    pub async fn open_orders(&self) -> Result<Vec<OpenOrders>, StorageError> {
        type Row = (
            String,
            String,
            i64,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        );
        let rows: Vec<Row> = orders::Entity::find()
            .select_only()
            .column(orders::Column::State)
            .column(orders::Column::Platform)
            .expr(Expr::col(orders::Column::Id).count())
            .expr(Func::min(Expr::col(orders::Column::PaidAt)))
            .expr(Func::min(Expr::col(orders::Column::DeliveredAt)))
            .filter(orders::Column::State.is_in(OPEN_STATES.iter().map(|s| s.as_str())))
            .group_by(orders::Column::State)
            .group_by(orders::Column::Platform)
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(classify)?;
        rows.into_iter()
            .map(|(state, platform, count, paid, delivered)| {
                Ok(OpenOrders {
                    state: parse("orders.state", &state)?,
                    platform: parse("orders.platform", &platform)?,
                    count: u64::try_from(count).unwrap_or(0),
                    oldest_paid_at: paid,
                    oldest_delivered_at: delivered,
                })
            })
            .collect()
    }

    /// Unprocessed notifications (through the inbox's partial index).
    pub async fn pending_notifications(&self) -> Result<PendingNotifications, StorageError> {
        let row: Option<(i64, Option<DateTime<Utc>>)> = notifications::Entity::find()
            .select_only()
            .expr(Expr::col(notifications::Column::Id).count())
            .expr(Func::min(Expr::col(notifications::Column::ReceivedAt)))
            .filter(notifications::Column::ProcessedAt.is_null())
            .into_tuple()
            .one(self.connection())
            .await
            .map_err(classify)?;
        let (count, oldest_received_at) = row.unwrap_or((0, None));
        Ok(PendingNotifications {
            count: u64::try_from(count).unwrap_or(0),
            oldest_received_at,
        })
    }
}
