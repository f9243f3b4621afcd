//! Partial revocations: the steps of an order taken back in parts, under a revocation claim
//! (the order's attempt fence), written before RevokeItems and marked done after it.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue, ColumnTrait, Condition, EntityTrait, QueryFilter};

use iap_domain::delivery::{ClaimedOrder, GameAck, RevokeReason};
use iap_domain::ports::StorageError;
use iap_domain::refunds::{PartialRevocations, PartialStep, RefundCause};
use iap_domain::{Order, OrderId};

use crate::entity::{orders, partial_revocations as steps};
use crate::orders::append_event;
use crate::transition::{OrderFence, fenced_update, now};
use crate::{Storage, classify};

const PENDING: &str = "pending";
const DONE: &str = "done";

fn reason_text(reason: RevokeReason) -> &'static str {
    match reason {
        RevokeReason::Refunded => "refunded",
        RevokeReason::Revoked => "revoked",
        RevokeReason::Operator => "operator",
    }
}

fn units(value: i32, column: &str) -> Result<u32, StorageError> {
    u32::try_from(value)
        .map_err(|_| StorageError::Corrupt(format!("partial_revocations.{column}: {value}")))
}

fn step_from_row(row: steps::Model) -> Result<PartialStep, StorageError> {
    let reason = match row.reason.as_str() {
        "refunded" => RevokeReason::Refunded,
        "revoked" => RevokeReason::Revoked,
        "operator" => RevokeReason::Operator,
        other => {
            return Err(StorageError::Corrupt(format!(
                "partial_revocations.reason: {other:?}"
            )));
        }
    };
    Ok(PartialStep {
        from_units: units(row.from_units, "from_units")?,
        to_units: units(row.to_units, "to_units")?,
        revoke_id: row.revoke_id,
        reason,
        cause: RefundCause {
            source: row.store_source,
            reason: row.store_reason,
        },
    })
}

fn signed(units: u32) -> i32 {
    i32::try_from(units).unwrap_or(i32::MAX)
}

impl Storage {
    pub(crate) async fn partial_state(
        &self,
        order: OrderId,
    ) -> Result<PartialRevocations, StorageError> {
        let rows = steps::Entity::find()
            .filter(steps::Column::OrderId.eq(order.to_string()))
            .all(self.connection())
            .await
            .map_err(classify)?;
        let mut state = PartialRevocations::default();
        for row in rows {
            if row.state == DONE {
                state.revoked_units = state.revoked_units.max(units(row.to_units, "to_units")?);
            } else {
                state.pending = Some(step_from_row(row)?);
            }
        }
        Ok(state)
    }

    pub(crate) async fn begin_partial(
        &self,
        claim: &ClaimedOrder,
        step: &PartialStep,
    ) -> Result<bool, StorageError> {
        let now = now();
        // Still our claim: the step is written under the fence, like every other write.
        let held =
            orders::Entity::update_many().col_expr(orders::Column::UpdatedAt, Expr::value(now));
        self.in_transaction(async |txn| {
            if !OrderFence::held(claim).apply(txn, held).await? {
                return Ok(false);
            }
            let row = steps::ActiveModel {
                revoke_id: ActiveValue::Set(step.revoke_id.clone()),
                order_id: ActiveValue::Set(claim.order.id.to_string()),
                from_units: ActiveValue::Set(signed(step.from_units)),
                to_units: ActiveValue::Set(signed(step.to_units)),
                state: ActiveValue::Set(PENDING.to_owned()),
                reason: ActiveValue::Set(reason_text(step.reason).to_owned()),
                store_source: ActiveValue::Set(step.cause.source.clone()),
                store_reason: ActiveValue::Set(step.cause.reason.clone()),
                game_reference: ActiveValue::Set(None),
                created_at: ActiveValue::Set(now),
                revoked_at: ActiveValue::Set(None),
            };
            let inserted = steps::Entity::insert(row)
                .on_conflict(
                    OnConflict::columns([steps::Column::OrderId, steps::Column::FromUnits])
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(txn)
                .await
                .map_err(classify)?;
            Ok(inserted == 1)
        })
        .await
    }

    pub(crate) async fn record_partial(
        &self,
        claim: &ClaimedOrder,
        step: Option<&PartialStep>,
        ack: Option<&GameAck>,
    ) -> Result<Option<Order>, StorageError> {
        let id = claim.order.id;
        let now = now();
        // The order keeps its state (and its confirmation schedule); only the claim ends.
        let released = orders::Entity::update_many()
            .col_expr(
                orders::Column::LeaseUntil,
                Expr::value(None::<DateTime<Utc>>),
            )
            .col_expr(orders::Column::UpdatedAt, Expr::value(now));
        self.fenced_transition(OrderFence::held(claim), released, async |txn| {
            if let Some(step) = step {
                let done = steps::Entity::update_many()
                    .col_expr(steps::Column::State, Expr::value(DONE))
                    .col_expr(
                        steps::Column::GameReference,
                        Expr::value(ack.map(|a| a.reference.clone())),
                    )
                    .col_expr(steps::Column::RevokedAt, Expr::value(Some(now)));
                let still_pending = Condition::all()
                    .add(steps::Column::RevokeId.eq(step.revoke_id.clone()))
                    .add(steps::Column::State.eq(PENDING));
                if fenced_update(txn, done, still_pending).await? {
                    let detail = serde_json::json!({
                        "revoke_id": step.revoke_id,
                        "reason": reason_text(step.reason),
                        "units": step.units(),
                        "revoked_units": step.to_units,
                        "remaining_units": claim.order.quantity.saturating_sub(step.to_units),
                        "store_source": step.cause.source,
                        "store_reason": step.cause.reason,
                        "game_reference": ack.map(|a| a.reference.clone()),
                    });
                    append_event(txn, id, "order.partially_revoked", "delivery", &detail, now)
                        .await?;
                }
            }
            Ok(())
        })
        .await
    }
}
