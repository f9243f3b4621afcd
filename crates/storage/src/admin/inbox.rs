//! The notification inbox as operators see it: listed newest first, and replayed (made
//! unprocessed and due again) with an audit entry in the same commit.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use iap_domain::Platform;
use iap_domain::admin::{AuditEntry, InboxEntry, KeysetPosition, SortDirection};
use iap_domain::ports::StorageError;

use super::audit::insert_audit;
use super::paging::after_position;
use crate::convert::parse;
use crate::entity::notifications;
use crate::transition::{fenced_update, now};
use crate::{Storage, classify};

pub(super) fn inbox_entry(row: notifications::Model) -> Result<InboxEntry, StorageError> {
    Ok(InboxEntry {
        platform: parse("notifications.platform", &row.platform)?,
        id: row.id,
        notification_id: row.notification_id,
        notification_type: row.notification_type,
        received_at: row.received_at,
        processed_at: row.processed_at,
        attempts: u32::try_from(row.attempts).unwrap_or(0),
        last_error: row.last_error,
        outcome: row.outcome,
        rejected_reason: row.rejected_reason,
        subject: row.subject,
    })
}

pub(super) async fn list_notifications(
    storage: &Storage,
    platform: Option<Platform>,
    only_unprocessed: bool,
    after: Option<KeysetPosition>,
    limit: u32,
) -> Result<Vec<InboxEntry>, StorageError> {
    let mut query = notifications::Entity::find();
    if let Some(platform) = platform {
        query = query.filter(notifications::Column::Platform.eq(platform.as_str()));
    }
    if only_unprocessed {
        query = query.filter(notifications::Column::ProcessedAt.is_null());
    }
    if let Some(after) = after {
        query = query.filter(after_position(
            notifications::Column::ReceivedAt,
            notifications::Column::Id,
            SortDirection::NewestFirst,
            after,
        ));
    }
    query
        .order_by_desc(notifications::Column::ReceivedAt)
        .order_by_desc(notifications::Column::Id)
        .limit(u64::from(limit))
        .all(storage.connection())
        .await
        .map_err(classify)?
        .into_iter()
        .map(inbox_entry)
        .collect()
}

pub(super) async fn replay_notification(
    storage: &Storage,
    id: &str,
    audit: &AuditEntry,
) -> Result<Option<InboxEntry>, StorageError> {
    storage
        .in_transaction(async |txn| {
            let at = now();
            // Attempts and the last error stay: they are the notification's history. The
            // outcome goes, so what the replay leads to is what operators read next.
            let reset = notifications::Entity::update_many()
                .col_expr(
                    notifications::Column::ProcessedAt,
                    Expr::value(None::<DateTime<Utc>>),
                )
                .col_expr(notifications::Column::NextAttemptAt, Expr::value(at))
                .col_expr(notifications::Column::Outcome, Expr::value(None::<String>))
                .col_expr(
                    notifications::Column::RejectedReason,
                    Expr::value(None::<String>),
                );
            let exists = Condition::all().add(notifications::Column::Id.eq(id));
            if !fenced_update(txn, reset, exists).await? {
                return Ok(None);
            }
            insert_audit(txn, audit, at).await?;
            notifications::Entity::find_by_id(id.to_owned())
                .one(txn)
                .await
                .map_err(classify)?
                .map(inbox_entry)
                .transpose()
        })
        .await
}
