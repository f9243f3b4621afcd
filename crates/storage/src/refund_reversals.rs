//! Refunds the store reversed (Apple REFUND_REVERSED): the refund mark of a purchase not
//! redeemed yet is lifted; a refunded order is granted again through a new PAID order that the
//! store purchase is re-pointed at, in one commit conditional on the purchase still pointing at
//! the refunded order, so a replayed reversal restores nothing more.

use async_trait::async_trait;
use chrono::{SubsecRound, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue, ColumnTrait, Condition, EntityTrait, QueryFilter, TransactionTrait};

use iap_domain::ports::StorageError;
use iap_domain::refunds::{RefundReversals, ReversalOutcome};
use iap_domain::{BindingReason, OrderId, OrderState, Platform};

use crate::entity::{orders, refund_marks, store_transactions};
use crate::orders::{append_event, read_order};
use crate::transition::fenced_update;
use crate::{Storage, classify};

fn corrupt(e: &iap_domain::IdError) -> StorageError {
    StorageError::Corrupt(format!("store_transactions.order_id: {e}"))
}

#[async_trait]
impl RefundReversals for Storage {
    async fn lift_refund_marks(
        &self,
        platform: Platform,
        store_keys: &[String],
    ) -> Result<u64, StorageError> {
        let lifted = refund_marks::Entity::delete_many()
            .filter(refund_marks::Column::Platform.eq(platform.as_str()))
            .filter(refund_marks::Column::StoreKey.is_in(store_keys.iter().cloned()))
            .exec(self.connection())
            .await
            .map_err(classify)?;
        Ok(lifted.rows_affected)
    }

    async fn restore_refunded(
        &self,
        platform: Platform,
        store_transaction_id: &str,
    ) -> Result<ReversalOutcome, StorageError> {
        let txn = self.connection().begin().await.map_err(classify)?;
        // `Err(order)`: the purchase moved on between the read and the write (a concurrent
        // replay restored it): everything is rolled back.
        let result: Result<Result<ReversalOutcome, OrderId>, StorageError> = async {
            let Some(purchase) = store_transactions::Entity::find()
                .filter(store_transactions::Column::Platform.eq(platform.as_str()))
                .filter(store_transactions::Column::StoreTransactionId.eq(store_transaction_id))
                .one(&txn)
                .await
                .map_err(classify)?
            else {
                return Ok(Ok(ReversalOutcome::NotRecorded));
            };
            let refunded_id = OrderId::parse(&purchase.order_id).map_err(|e| corrupt(&e))?;
            let Some(refunded) = orders::Entity::find_by_id(purchase.order_id.clone())
                .one(&txn)
                .await
                .map_err(classify)?
            else {
                return Ok(Ok(ReversalOutcome::NotRecorded));
            };
            let taken_back = [OrderState::Refunded, OrderState::Revoked].map(OrderState::as_str);
            if !taken_back.contains(&refunded.state.as_str()) {
                return Ok(Ok(ReversalOutcome::NotRefunded(refunded_id)));
            }
            let now = Utc::now().trunc_subsecs(6);
            let restored_id = OrderId::new();
            let row = orders::ActiveModel {
                id: ActiveValue::Set(restored_id.to_string()),
                app_id: ActiveValue::Set(refunded.app_id.clone()),
                user_id: ActiveValue::Set(refunded.user_id.clone()),
                product_id: ActiveValue::Set(refunded.product_id.clone()),
                platform: ActiveValue::Set(refunded.platform.clone()),
                quantity: ActiveValue::Set(refunded.quantity),
                state: ActiveValue::Set(OrderState::Paid.as_str().to_owned()),
                product_kind: ActiveValue::Set(refunded.product_kind.clone()),
                environment: ActiveValue::Set(refunded.environment.clone()),
                expected_currency: ActiveValue::Set(None),
                expected_amount_micros: ActiveValue::Set(None),
                store_transaction_id: ActiveValue::Set(refunded.store_transaction_id.clone()),
                binding_reason: ActiveValue::Set(Some(
                    BindingReason::RefundReversed.as_str().to_owned(),
                )),
                attempt: ActiveValue::Set(0),
                attempts_before_redelivery: ActiveValue::Set(0),
                reject_reason: ActiveValue::Set(None),
                last_error: ActiveValue::Set(None),
                created_at: ActiveValue::Set(now),
                updated_at: ActiveValue::Set(now),
                paid_at: ActiveValue::Set(Some(now)),
                delivered_at: ActiveValue::Set(None),
                confirmed_at: ActiveValue::Set(None),
                next_attempt_at: ActiveValue::Set(Some(now)),
                lease_until: ActiveValue::Set(None),
                metadata: ActiveValue::Set(
                    serde_json::json!({ "restored_from": refunded_id.to_string() }),
                ),
                manual: ActiveValue::Set(false),
                idempotency_key: ActiveValue::Set(None),
            };
            orders::Entity::insert(row)
                .exec_without_returning(&txn)
                .await
                .map_err(classify)?;
            let moved = store_transactions::Entity::update_many()
                .col_expr(
                    store_transactions::Column::OrderId,
                    Expr::value(restored_id.to_string()),
                )
                .col_expr(store_transactions::Column::UpdatedAt, Expr::value(now));
            let still_refunded = Condition::all()
                .add(store_transactions::Column::Id.eq(purchase.id.clone()))
                .add(store_transactions::Column::OrderId.eq(purchase.order_id.clone()));
            if !fenced_update(&txn, moved, still_refunded).await? {
                return Ok(Err(refunded_id));
            }
            let detail = serde_json::json!({ "restored_as": restored_id.to_string() });
            append_event(
                &txn,
                refunded_id,
                "order.refund_reversed",
                "notification",
                &detail,
                now,
            )
            .await?;
            let detail = serde_json::json!({
                "restored_from": refunded_id.to_string(),
                "reason": "refund_reversed",
                "store_transaction_id": store_transaction_id,
            });
            append_event(
                &txn,
                restored_id,
                "order.paid",
                "notification",
                &detail,
                now,
            )
            .await?;
            let restored = read_order(&txn, restored_id)
                .await?
                .ok_or_else(|| StorageError::Other("restored order vanished".into()))?;
            Ok(Ok(ReversalOutcome::Restored {
                refunded: refunded_id,
                restored: Box::new(restored),
            }))
        }
        .await;
        match result {
            Ok(Ok(outcome)) => {
                txn.commit().await.map_err(classify)?;
                Ok(outcome)
            }
            Ok(Err(refunded)) => {
                let _ = txn.rollback().await;
                Ok(ReversalOutcome::NotRefunded(refunded))
            }
            Err(e) => {
                let _ = txn.rollback().await;
                Err(e)
            }
        }
    }
}
