//! Accountability: every operator's action leaves an `audit_log` row and, when it touches an
//! order, an `admin.*` event in the order's history, both written by the caller's transaction.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue, ConnectionTrait, EntityTrait};

use iap_domain::OrderId;
use iap_domain::admin::AuditEntry;
use iap_domain::ports::StorageError;

use crate::entity::audit_log;
use crate::orders::append_event;
use crate::transition::now;
use crate::{Storage, classify};

pub(crate) async fn insert_audit<C: ConnectionTrait>(
    conn: &C,
    audit: &AuditEntry,
    at: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let row = audit_log::ActiveModel {
        id: ActiveValue::Set(uuid::Uuid::now_v7().to_string()),
        actor: ActiveValue::Set(audit.operator.clone()),
        action: ActiveValue::Set(audit.action.to_owned()),
        order_id: ActiveValue::Set(audit.order_id.map(|id| id.to_string())),
        reason: ActiveValue::Set(audit.reason.clone()),
        detail: ActiveValue::Set(audit.detail.clone()),
        idempotency_key: ActiveValue::Set(audit.idempotency_key.clone()),
        created_at: ActiveValue::Set(at),
    };
    let inserted = audit_log::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([audit_log::Column::Action, audit_log::Column::IdempotencyKey])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await
        .map_err(classify)?;
    Ok(inserted == 1)
}

/// The outbox event of an operator's action, in the order's history.
pub(crate) async fn admin_event<C: ConnectionTrait>(
    conn: &C,
    order: OrderId,
    audit: &AuditEntry,
    at: DateTime<Utc>,
) -> Result<(), StorageError> {
    let detail = serde_json::json!({ "reason": audit.reason, "request": audit.detail });
    let actor: String = audit.operator.chars().take(128).collect();
    let kind = format!("admin.{}", audit.action);
    append_event(conn, order, &kind, &actor, &detail, at).await
}

pub(super) async fn record_audit(
    storage: &Storage,
    audit: &AuditEntry,
) -> Result<(), StorageError> {
    insert_audit(storage.connection(), audit, now())
        .await
        .map(drop)
}
