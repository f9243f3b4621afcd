//! Support's 补单 meets the store purchase it stood in for. A compensation is a manual order
//! with no store purchase; the first purchase recorded against it sets its
//! `store_transaction_id` with a conditional update, so of two purchases racing for one
//! compensation exactly one takes it (the other is paid on an order of its own).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder,
};

use iap_domain::ports::StorageError;
use iap_domain::{AppId, BindingReason, Order, OrderId, OrderState, Platform, ProductId, UserId};

use crate::classify;
use crate::convert::order_from_row;
use crate::entity::orders;
use crate::orders::append_event;
use crate::transition::fenced_update;

/// The states of a compensation that was granted or is being granted (not refunded, revoked).
const GRANTED_OR_GRANTING: [OrderState; 5] = [
    OrderState::Paid,
    OrderState::Delivering,
    OrderState::Delivered,
    OrderState::Confirmed,
    OrderState::Dead,
];

fn open_compensations() -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(orders::Column::Manual.eq(true))
        .add(orders::Column::StoreTransactionId.is_null())
        .add(orders::Column::State.is_in(GRANTED_OR_GRANTING.map(OrderState::as_str)))
}

/// The user's oldest compensation of the product on the store since `since` that no purchase
/// was recorded against.
pub(crate) async fn open_compensation<C: ConnectionTrait>(
    conn: &C,
    app: &AppId,
    user: &UserId,
    product: &ProductId,
    platform: Platform,
    since: DateTime<Utc>,
) -> Result<Option<Order>, StorageError> {
    orders::Entity::find()
        .filter(open_compensations())
        .filter(orders::Column::AppId.eq(app.as_str()))
        .filter(orders::Column::UserId.eq(user.as_str()))
        .filter(orders::Column::ProductId.eq(product.as_str()))
        .filter(orders::Column::Platform.eq(platform.as_str()))
        .filter(orders::Column::CreatedAt.gte(since))
        .order_by_asc(orders::Column::CreatedAt)
        .order_by_asc(orders::Column::Id)
        .one(conn)
        .await
        .map_err(classify)?
        .map(order_from_row)
        .transpose()
}

/// What recording a purchase against a compensation needs to know.
pub(crate) struct Match<'a> {
    pub(crate) compensation: OrderId,
    pub(crate) store_transaction_id: &'a str,
    pub(crate) paid_quantity: u32,
    /// The purchase also pays a top-up order (which then confirms it at the store).
    pub(crate) top_up: Option<OrderId>,
}

/// Records the purchase against the compensation, if it is still open. `None`: another
/// purchase took it first (or it was refunded or revoked meanwhile).
pub(crate) async fn attach_in(
    txn: &DatabaseTransaction,
    m: &Match<'_>,
    now: DateTime<Utc>,
) -> Result<Option<Order>, StorageError> {
    let reason = match m.top_up {
        Some(_) => BindingReason::CompensationTopUp,
        None => BindingReason::CompensationMatched,
    };
    let taken = orders::Entity::update_many()
        .col_expr(
            orders::Column::StoreTransactionId,
            Expr::value(m.store_transaction_id.to_owned()),
        )
        .col_expr(orders::Column::BindingReason, Expr::value(reason.as_str()))
        .col_expr(orders::Column::UpdatedAt, Expr::value(now));
    let still_open = Condition::all()
        .add(orders::Column::Id.eq(m.compensation.to_string()))
        .add(open_compensations());
    if !fenced_update(txn, taken, still_open).await? {
        return Ok(None);
    }
    if m.top_up.is_none() {
        // Granted and CONFIRMED as a manual order, which had nothing to confirm; the store
        // purchase now has (Google consume or acknowledge, Huawei confirm), so the order is
        // DELIVERED again and due for the sweeper's confirmation.
        orders::Entity::update_many()
            .col_expr(
                orders::Column::State,
                Expr::value(OrderState::Delivered.as_str()),
            )
            .col_expr(orders::Column::NextAttemptAt, Expr::value(now))
            .filter(orders::Column::Id.eq(m.compensation.to_string()))
            .filter(orders::Column::State.eq(OrderState::Confirmed.as_str()))
            .exec(txn)
            .await
            .map_err(classify)?;
    }
    let row = orders::Entity::find_by_id(m.compensation.to_string())
        .one(txn)
        .await
        .map_err(classify)?
        .ok_or_else(|| StorageError::Other("compensated order vanished".into()))?;
    let order = order_from_row(row)?;
    let detail = serde_json::json!({
        "store_transaction_id": m.store_transaction_id,
        "paid_quantity": m.paid_quantity,
        "compensated_quantity": order.quantity,
        "top_up_order_id": m.top_up.map(|id| id.to_string()),
    });
    append_event(
        txn,
        order.id,
        "purchase.matched_compensation",
        "verifier",
        &detail,
        now,
    )
    .await?;
    Ok(Some(order))
}
