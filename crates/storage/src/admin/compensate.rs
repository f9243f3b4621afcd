//! Compensation (补单): an order granted on an operator's word, once per idempotency key — the
//! audit row's `UNIQUE(action, idempotency_key)` is taken first, and nothing of a refused
//! compensation stays.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, TransactionTrait,
};

use iap_domain::admin::AuditEntry;
use iap_domain::ports::{CompensationRecord, CompensationTarget, PriorCompensation, StorageError};
use iap_domain::{BindingReason, OrderId, OrderState};

use super::audit::{admin_event, insert_audit};
use super::corrupt;
use super::redeliver::make_due;
use crate::convert::order_to_row;
use crate::entity::{audit_log, orders};
use crate::orders::read_order;
use crate::transition::{OrderFence, finish, now};
use crate::{Storage, classify};

async fn prior_in<C: ConnectionTrait>(
    conn: &C,
    key: &str,
) -> Result<Option<PriorCompensation>, StorageError> {
    let Some(row) = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("compensate"))
        .filter(audit_log::Column::IdempotencyKey.eq(key))
        .one(conn)
        .await
        .map_err(classify)?
    else {
        return Ok(None);
    };
    let order = row
        .order_id
        .as_deref()
        .ok_or_else(|| StorageError::Corrupt("audit_log: compensation without an order".into()))?;
    Ok(Some(PriorCompensation {
        order_id: OrderId::parse(order).map_err(corrupt("audit_log.order_id"))?,
        detail: row.detail,
    }))
}

pub(super) async fn prior_compensation(
    storage: &Storage,
    key: &str,
) -> Result<Option<PriorCompensation>, StorageError> {
    prior_in(storage.connection(), key).await
}

pub(super) async fn record_compensation(
    storage: &Storage,
    target: &CompensationTarget,
    audit: &AuditEntry,
) -> Result<CompensationRecord, StorageError> {
    let owned = storage.connection().begin().await.map_err(classify)?;
    let txn = &owned;
    let result = async {
        let at = now();
        // The key first: of two concurrent calls with one key, the second stops here.
        if !insert_audit(txn, audit, at).await? {
            let key = audit.idempotency_key.as_deref().unwrap_or_default();
            return match prior_in(txn, key).await? {
                Some(prior) => Ok(CompensationRecord::KeyTaken(prior)),
                None => Err(StorageError::Other(
                    "audit_log key conflict without a row".into(),
                )),
            };
        }
        let id = match target {
            CompensationTarget::ExistingOrder { id, from, attempt } => {
                let fence = OrderFence {
                    id: *id,
                    state: *from,
                    attempt: *attempt,
                };
                if !make_due(txn, fence, at).await? {
                    return Ok(CompensationRecord::OrderChanged);
                }
                *id
            }
            CompensationTarget::NewOrder(new) => {
                let mut order = new.clone().into_order(at);
                order.state = OrderState::Paid;
                order.binding_reason = Some(BindingReason::ManualCompensation);
                order.paid_at = Some(at);
                order.next_attempt_at = Some(at);
                order.manual = true;
                orders::Entity::insert(order_to_row(&order).into_active_model())
                    .exec_without_returning(txn)
                    .await
                    .map_err(classify)?;
                order.id
            }
        };
        admin_event(txn, id, audit, at).await?;
        let order = read_order(txn, id)
            .await?
            .ok_or_else(|| StorageError::Other("compensated order vanished".into()))?;
        Ok(CompensationRecord::Recorded(Box::new(order)))
    }
    .await;
    match &result {
        // Nothing of a refused compensation stays, the audit row included.
        Ok(CompensationRecord::OrderChanged) => {
            let _ = owned.rollback().await;
            result
        }
        _ => finish(owned, result).await,
    }
}
