//! NotificationInbox: one row per store notification under `UNIQUE(platform, notification_id)`,
//! so a redelivery is a no-op; claims hide a row for a lease by moving its `next_attempt_at`,
//! with `FOR UPDATE SKIP LOCKED` on PostgreSQL so processors never wait on one another.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, LockBehavior, LockType, OnConflict};
use sea_orm::{
    ActiveValue, ColumnTrait, Condition, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};

use iap_domain::notifications::{InboundNotification, NotificationInbox, StoredNotification};
use iap_domain::ports::StorageError;

use crate::convert::parse;
use crate::entity::notifications;
use crate::{Storage, classify};

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[async_trait]
impl NotificationInbox for Storage {
    async fn receive(&self, n: InboundNotification) -> Result<bool, StorageError> {
        let now = now();
        let row = notifications::ActiveModel {
            id: ActiveValue::Set(uuid::Uuid::now_v7().to_string()),
            platform: ActiveValue::Set(n.platform.as_str().to_owned()),
            notification_id: ActiveValue::Set(n.notification_id),
            app_id: ActiveValue::Set(n.app_id.map(|a| a.to_string())),
            notification_type: ActiveValue::Set(n.notification_type),
            subject: ActiveValue::Set(n.subject),
            raw_body: ActiveValue::Set(n.raw_body),
            event_at: ActiveValue::Set(n.event_at),
            received_at: ActiveValue::Set(now),
            processed_at: ActiveValue::Set(None),
            attempts: ActiveValue::Set(0),
            next_attempt_at: ActiveValue::Set(Some(now)),
            last_error: ActiveValue::Set(None),
            outcome: ActiveValue::Set(None),
            rejected_reason: ActiveValue::Set(None),
        };
        let inserted = notifications::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([
                    notifications::Column::Platform,
                    notifications::Column::NotificationId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(self.connection())
            .await
            .map_err(classify)?;
        Ok(inserted == 1)
    }

    async fn claim_due(
        &self,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<StoredNotification>, StorageError> {
        let now = now();
        let txn = self.connection().begin().await.map_err(classify)?;
        let mut query = notifications::Entity::find()
            .filter(notifications::Column::ProcessedAt.is_null())
            .filter(
                Condition::any()
                    .add(notifications::Column::NextAttemptAt.is_null())
                    .add(notifications::Column::NextAttemptAt.lte(now)),
            )
            .order_by_asc(notifications::Column::NextAttemptAt)
            .limit(u64::from(limit));
        if self.backend() == DatabaseBackend::Postgres {
            query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let rows = query.all(&txn).await.map_err(classify)?;
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        if !ids.is_empty() {
            notifications::Entity::update_many()
                .col_expr(notifications::Column::NextAttemptAt, Expr::value(until))
                .col_expr(
                    notifications::Column::Attempts,
                    Expr::col(notifications::Column::Attempts).add(1),
                )
                .filter(notifications::Column::Id.is_in(ids))
                .exec(&txn)
                .await
                .map_err(classify)?;
        }
        txn.commit().await.map_err(classify)?;
        rows.into_iter()
            .map(|r| {
                Ok(StoredNotification {
                    platform: parse("notifications.platform", &r.platform)?,
                    id: r.id,
                    notification_type: r.notification_type,
                    raw_body: r.raw_body,
                    attempts: u32::try_from(r.attempts + 1).unwrap_or(u32::MAX),
                    received_at: r.received_at,
                })
            })
            .collect()
    }

    async fn extend_claims(&self, ids: &[String], lease: Duration) -> Result<(), StorageError> {
        if ids.is_empty() {
            return Ok(());
        }
        let until = now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        notifications::Entity::update_many()
            .col_expr(notifications::Column::NextAttemptAt, Expr::value(until))
            .filter(notifications::Column::Id.is_in(ids.iter().cloned()))
            .filter(notifications::Column::ProcessedAt.is_null())
            .exec(self.connection())
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn mark_processed(&self, id: &str, outcome: &str) -> Result<(), StorageError> {
        notifications::Entity::update_many()
            .col_expr(notifications::Column::ProcessedAt, Expr::value(now()))
            .col_expr(
                notifications::Column::Outcome,
                Expr::value(outcome.chars().take(255).collect::<String>()),
            )
            .col_expr(
                notifications::Column::NextAttemptAt,
                Expr::value(None::<DateTime<Utc>>),
            )
            .filter(notifications::Column::Id.eq(id))
            .exec(self.connection())
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn mark_rejected(
        &self,
        id: &str,
        reason: &str,
        outcome: &str,
    ) -> Result<(), StorageError> {
        notifications::Entity::update_many()
            .col_expr(notifications::Column::ProcessedAt, Expr::value(now()))
            .col_expr(
                notifications::Column::Outcome,
                Expr::value(outcome.chars().take(255).collect::<String>()),
            )
            .col_expr(
                notifications::Column::RejectedReason,
                Expr::value(reason.chars().take(64).collect::<String>()),
            )
            .col_expr(
                notifications::Column::NextAttemptAt,
                Expr::value(None::<DateTime<Utc>>),
            )
            .filter(notifications::Column::Id.eq(id))
            .exec(self.connection())
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn retry_later(
        &self,
        id: &str,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        notifications::Entity::update_many()
            .col_expr(
                notifications::Column::LastError,
                Expr::value(error.to_owned()),
            )
            .col_expr(notifications::Column::NextAttemptAt, Expr::value(retry_at))
            .filter(notifications::Column::Id.eq(id))
            .exec(self.connection())
            .await
            .map_err(classify)?;
        Ok(())
    }
}
