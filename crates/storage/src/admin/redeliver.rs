//! Redelivery: an order put back in the delivery queue, due now, fenced on the state and attempt
//! the operator's use case read (a DEAD order's grant record is queued again, keeping its grant
//! id).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, UpdateMany};

use iap_domain::admin::AuditEntry;
use iap_domain::ports::StorageError;
use iap_domain::{BindingReason, DeliveryState, Order, OrderId, OrderState};

use super::audit::{admin_event, insert_audit};
use crate::entity::{deliveries, orders};
use crate::transition::{OrderFence, now};
use crate::{Storage, classify};

/// The update that makes an order due now as an operator's action, from `from`: DEAD and
/// CREATED become PAID, PAID and DELIVERING stay (a live lease is left alone).
fn due_now(from: OrderState, at: DateTime<Utc>) -> UpdateMany<orders::Entity> {
    let mut update = orders::Entity::update_many()
        .col_expr(orders::Column::NextAttemptAt, Expr::value(at))
        .col_expr(orders::Column::UpdatedAt, Expr::value(at));
    if matches!(from, OrderState::Dead | OrderState::Created) {
        update = update.col_expr(
            orders::Column::State,
            Expr::value(OrderState::Paid.as_str()),
        );
    }
    if from == OrderState::Dead {
        // A fresh series of attempts: counted from here, while the fencing token goes on.
        update = update.col_expr(
            orders::Column::AttemptsBeforeRedelivery,
            Expr::col(orders::Column::Attempt).into(),
        );
    }
    if from == OrderState::Created {
        // Never paid in our books: the operator's word is the payment, and the game is told
        // the grant is a compensation.
        update = update
            .col_expr(orders::Column::PaidAt, Expr::value(at))
            .col_expr(
                orders::Column::BindingReason,
                Expr::value(BindingReason::ManualCompensation.as_str()),
            )
            .col_expr(orders::Column::Manual, Expr::value(true));
    }
    update
}

/// After a DEAD order was made due: the grant record keeps its grant id; only its state says it
/// is queued again. Nothing for an order from any other state.
async fn requeue_grant_record<C: ConnectionTrait>(
    conn: &C,
    id: OrderId,
    from: OrderState,
    at: DateTime<Utc>,
) -> Result<(), StorageError> {
    if from != OrderState::Dead {
        return Ok(());
    }
    deliveries::Entity::update_many()
        .col_expr(
            deliveries::Column::State,
            Expr::value(DeliveryState::Pending.as_str()),
        )
        .col_expr(deliveries::Column::UpdatedAt, Expr::value(at))
        .filter(deliveries::Column::OrderId.eq(id.to_string()))
        .filter(deliveries::Column::State.eq(DeliveryState::Dead.as_str()))
        .exec(conn)
        .await
        .map_err(classify)?;
    Ok(())
}

/// Makes an order due now (see [`due_now`]), fenced on the state and attempt the operator's use
/// case read. Returns whether it applied.
pub(super) async fn make_due<C: ConnectionTrait>(
    conn: &C,
    fence: OrderFence,
    at: DateTime<Utc>,
) -> Result<bool, StorageError> {
    if !fence.apply(conn, due_now(fence.state, at)).await? {
        return Ok(false);
    }
    requeue_grant_record(conn, fence.id, fence.state, at).await?;
    Ok(true)
}

pub(super) async fn requeue_order(
    storage: &Storage,
    order: OrderId,
    from: OrderState,
    attempt: i32,
    audit: &AuditEntry,
) -> Result<Option<Order>, StorageError> {
    let at = now();
    let fence = OrderFence {
        id: order,
        state: from,
        attempt,
    };
    storage
        .fenced_transition(fence, due_now(from, at), async |txn| {
            requeue_grant_record(txn, order, from, at).await?;
            admin_event(txn, order, audit, at).await?;
            insert_audit(txn, audit, at).await.map(drop)
        })
        .await
}
