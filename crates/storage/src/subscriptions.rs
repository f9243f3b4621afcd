//! SubscriptionStore: the `subscriptions` rows. A row is created with its first paid period (in
//! the payment's transaction, see `payments.rs`); refreshes change it under the version they
//! read, so of two concurrent refreshes one writes and the other looks at the store again.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, Func, LockBehavior, LockType};
use sea_orm::{
    ActiveValue, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};

use iap_domain::ports::{PaymentToRecord, RecordedPurchase, StorageError};
use iap_domain::purchase::StoreReceipt;
use iap_domain::subscriptions::{
    Subscription, SubscriptionChange, SubscriptionState, SubscriptionStore,
};
use iap_domain::{AppId, Order, OrderId, Platform, ProductId, UserId};

use crate::convert::parse;
use crate::deliveries::until;
use crate::entity::subscriptions;
use crate::transition::{fenced_update, finish};
use crate::{Storage, classify};

fn subscription_from_row(row: subscriptions::Model) -> Result<Subscription, StorageError> {
    let corrupt = |e: iap_domain::IdError| StorageError::Corrupt(format!("subscriptions: {e}"));
    Ok(Subscription {
        app_id: AppId::parse(row.app_id).map_err(corrupt)?,
        user_id: UserId::parse(row.user_id).map_err(corrupt)?,
        platform: parse("subscriptions.platform", &row.platform)?,
        product_id: ProductId::parse(row.product_id).map_err(corrupt)?,
        key: row.subscription_key,
        purchase_token: row.purchase_token,
        linked_purchase_token: row.linked_purchase_token,
        replaced_by: row.replaced_by,
        original_order_id: OrderId::parse(&row.original_order_id).map_err(corrupt)?,
        latest_order_id: OrderId::parse(&row.latest_order_id).map_err(corrupt)?,
        latest_store_transaction_id: row.latest_store_transaction_id,
        state: parse("subscriptions.state", &row.state)?,
        environment: parse("subscriptions.environment", &row.environment)?,
        expires_at: row.expires_at,
        grace_until: row.grace_until,
        auto_renew: row.auto_renew,
        auto_renew_product_id: row.auto_renew_product_id,
        price_change_state: row.price_change_state,
        latest_receipt: row.latest_receipt.map(StoreReceipt::new),
        version: row.version,
        synced_version: row.synced_version,
        next_check_at: row.next_check_at,
        checked_at: row.checked_at,
        updated_at: row.updated_at,
        id: row.id,
    })
}

/// The receipt column after a change: the store's newer receipt when it returned one, the stored
/// one otherwise (a refresh through the App Store Server API returns none).
fn newer_receipt(receipt: Option<&StoreReceipt>) -> sea_orm::sea_query::SimpleExpr {
    Expr::expr(Func::coalesce([
        Expr::value(receipt.map(|r| r.expose().to_owned())),
        Expr::col(subscriptions::Column::LatestReceipt).into(),
    ]))
    .into()
}

impl Storage {
    /// Inside a payment's transaction: the first period creates the subscription row (and
    /// retires the one it replaces); a later period moves the row's latest period forward.
    pub(crate) async fn record_subscription_in(
        &self,
        txn: &DatabaseTransaction,
        p: &PaymentToRecord,
        order: &Order,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let v = &p.purchase;
        let Some(new) = &p.subscription else {
            if p.binding_reason == iap_domain::BindingReason::SubscriptionRenewal {
                let key = iap_domain::subscriptions::subscription_key(v);
                subscriptions::Entity::update_many()
                    .col_expr(
                        subscriptions::Column::LatestOrderId,
                        Expr::value(order.id.to_string()),
                    )
                    .col_expr(
                        subscriptions::Column::LatestStoreTransactionId,
                        Expr::value(v.store_transaction_id.clone()),
                    )
                    .col_expr(subscriptions::Column::UpdatedAt, Expr::value(now))
                    .col_expr(
                        subscriptions::Column::LatestReceipt,
                        newer_receipt(v.latest_receipt.as_ref()),
                    )
                    .filter(subscriptions::Column::Platform.eq(v.platform.as_str()))
                    .filter(subscriptions::Column::SubscriptionKey.eq(key))
                    .exec(txn)
                    .await
                    .map_err(classify)?;
            }
            return Ok(());
        };
        let id = uuid::Uuid::now_v7().to_string();
        let row = subscriptions::ActiveModel {
            id: ActiveValue::Set(id.clone()),
            app_id: ActiveValue::Set(p.app_id.to_string()),
            user_id: ActiveValue::Set(p.user_id.to_string()),
            platform: ActiveValue::Set(v.platform.as_str().to_owned()),
            product_id: ActiveValue::Set(v.product_id.to_string()),
            subscription_key: ActiveValue::Set(new.key.clone()),
            purchase_token: ActiveValue::Set(v.purchase_token.clone()),
            linked_purchase_token: ActiveValue::Set(v.linked_purchase_token.clone()),
            replaced_by: ActiveValue::Set(None),
            original_order_id: ActiveValue::Set(order.id.to_string()),
            latest_order_id: ActiveValue::Set(order.id.to_string()),
            latest_store_transaction_id: ActiveValue::Set(v.store_transaction_id.clone()),
            state: ActiveValue::Set(new.state.as_str().to_owned()),
            environment: ActiveValue::Set(v.environment.as_str().to_owned()),
            expires_at: ActiveValue::Set(v.expires_at),
            grace_until: ActiveValue::Set(None),
            auto_renew: ActiveValue::Set(true),
            auto_renew_product_id: ActiveValue::Set(None),
            price_change_state: ActiveValue::Set(None),
            latest_receipt: ActiveValue::Set(
                v.latest_receipt.as_ref().map(|r| r.expose().to_owned()),
            ),
            detail: ActiveValue::Set(serde_json::json!({})),
            checked_at: ActiveValue::Set(Some(now)),
            next_check_at: ActiveValue::Set(new.next_check_at),
            created_at: ActiveValue::Set(now),
            updated_at: ActiveValue::Set(now),
            version: ActiveValue::Set(1),
            synced_version: ActiveValue::Set(0),
            next_sync_at: ActiveValue::Set(Some(now)),
            last_error: ActiveValue::Set(None),
        };
        // The same subscription recorded again (a new period racing its first) changes nothing.
        subscriptions::Entity::insert(row)
            .on_conflict(
                sea_orm::sea_query::OnConflict::columns([
                    subscriptions::Column::Platform,
                    subscriptions::Column::SubscriptionKey,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(txn)
            .await
            .map_err(classify)?;
        // Google: an upgrade, downgrade or re-signup names the token it replaces; that one no
        // longer carries the entitlement, so the player never holds both.
        if let Some(linked) = &v.linked_purchase_token {
            subscriptions::Entity::update_many()
                .col_expr(
                    subscriptions::Column::State,
                    Expr::value(SubscriptionState::Replaced.as_str()),
                )
                .col_expr(subscriptions::Column::ReplacedBy, Expr::value(id))
                .col_expr(
                    subscriptions::Column::NextCheckAt,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .col_expr(
                    subscriptions::Column::Version,
                    Expr::col(subscriptions::Column::Version).add(1),
                )
                .col_expr(subscriptions::Column::NextSyncAt, Expr::value(now))
                .col_expr(subscriptions::Column::UpdatedAt, Expr::value(now))
                .filter(subscriptions::Column::Platform.eq(v.platform.as_str()))
                .filter(subscriptions::Column::PurchaseToken.eq(linked.as_str()))
                .filter(subscriptions::Column::State.ne(SubscriptionState::Replaced.as_str()))
                .exec(txn)
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    /// The owner of a subscription, as a redeemed purchase (its first period's order).
    pub(crate) async fn subscription_owner(
        &self,
        platform: Platform,
        key: &str,
    ) -> Result<Option<RecordedPurchase>, StorageError> {
        let Some(found) = self.find_subscription(platform, key).await? else {
            return Ok(None);
        };
        Ok(Some(RecordedPurchase {
            order_id: found.original_order_id,
            app_id: found.app_id,
            user_id: found.user_id,
            repeat_trial: false,
        }))
    }

    /// Takes up to `limit` rows of `due`, oldest `column` first, moving `column` `hold` ahead in
    /// the same transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL).
    async fn reserve_subscriptions(
        &self,
        due: sea_orm::Select<subscriptions::Entity>,
        column: subscriptions::Column,
        now: DateTime<Utc>,
        limit: u32,
        hold: Duration,
    ) -> Result<Vec<Subscription>, StorageError> {
        let txn = self.connection().begin().await.map_err(classify)?;
        let result = self
            .reserve_subscriptions_in(&txn, due, column, now, limit, hold)
            .await;
        finish(txn, result).await
    }

    async fn reserve_subscriptions_in(
        &self,
        txn: &DatabaseTransaction,
        due: sea_orm::Select<subscriptions::Entity>,
        column: subscriptions::Column,
        now: DateTime<Utc>,
        limit: u32,
        hold: Duration,
    ) -> Result<Vec<Subscription>, StorageError> {
        let mut query = due.order_by_asc(column).limit(u64::from(limit));
        if self.backend() == sea_orm::DatabaseBackend::Postgres {
            query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let rows = query.all(txn).await.map_err(classify)?;
        if !rows.is_empty() {
            subscriptions::Entity::update_many()
                .col_expr(column, Expr::value(until(now, hold)))
                .filter(subscriptions::Column::Id.is_in(rows.iter().map(|r| r.id.clone())))
                .exec(txn)
                .await
                .map_err(classify)?;
        }
        rows.into_iter().map(subscription_from_row).collect()
    }
}

#[async_trait]
impl SubscriptionStore for Storage {
    async fn find_subscription(
        &self,
        platform: Platform,
        key: &str,
    ) -> Result<Option<Subscription>, StorageError> {
        subscriptions::Entity::find()
            .filter(subscriptions::Column::Platform.eq(platform.as_str()))
            .filter(subscriptions::Column::SubscriptionKey.eq(key))
            .one(self.connection())
            .await
            .map_err(classify)?
            .map(subscription_from_row)
            .transpose()
    }

    async fn find_subscription_by_token(
        &self,
        platform: Platform,
        purchase_token: &str,
    ) -> Result<Option<Subscription>, StorageError> {
        subscriptions::Entity::find()
            .filter(subscriptions::Column::Platform.eq(platform.as_str()))
            .filter(subscriptions::Column::PurchaseToken.eq(purchase_token))
            .order_by_desc(subscriptions::Column::CreatedAt)
            .one(self.connection())
            .await
            .map_err(classify)?
            .map(subscription_from_row)
            .transpose()
    }

    async fn apply_subscription_change(
        &self,
        id: &str,
        expected_version: i64,
        change: &SubscriptionChange,
    ) -> Result<Option<Subscription>, StorageError> {
        let now = Utc::now().trunc_subsecs(6);
        let version = expected_version + i64::from(change.bump_version);
        let mut update = subscriptions::Entity::update_many()
            .col_expr(
                subscriptions::Column::State,
                Expr::value(change.state.as_str()),
            )
            .col_expr(
                subscriptions::Column::ProductId,
                Expr::value(change.product_id.to_string()),
            )
            .col_expr(
                subscriptions::Column::ExpiresAt,
                Expr::value(change.expires_at),
            )
            .col_expr(
                subscriptions::Column::GraceUntil,
                Expr::value(change.grace_until),
            )
            .col_expr(
                subscriptions::Column::AutoRenew,
                Expr::value(change.auto_renew),
            )
            .col_expr(
                subscriptions::Column::AutoRenewProductId,
                Expr::value(change.auto_renew_product_id.clone()),
            )
            .col_expr(
                subscriptions::Column::PriceChangeState,
                Expr::value(change.price_change_state.clone()),
            )
            .col_expr(
                subscriptions::Column::ReplacedBy,
                Expr::value(change.replaced_by.clone()),
            )
            .col_expr(
                subscriptions::Column::NextCheckAt,
                Expr::value(change.next_check_at),
            )
            .col_expr(
                subscriptions::Column::LatestReceipt,
                newer_receipt(change.latest_receipt.as_ref()),
            )
            .col_expr(subscriptions::Column::CheckedAt, Expr::value(now))
            .col_expr(subscriptions::Column::Version, Expr::value(version))
            .col_expr(subscriptions::Column::UpdatedAt, Expr::value(now));
        if change.bump_version {
            update = update.col_expr(subscriptions::Column::NextSyncAt, Expr::value(now));
        }
        if let Some((order, transaction)) = &change.latest_period {
            update = update
                .col_expr(
                    subscriptions::Column::LatestOrderId,
                    Expr::value(order.to_string()),
                )
                .col_expr(
                    subscriptions::Column::LatestStoreTransactionId,
                    Expr::value(transaction.clone()),
                );
        }
        // Under the version read: of two concurrent refreshes, one writes.
        let unchanged = Condition::all()
            .add(subscriptions::Column::Id.eq(id))
            .add(subscriptions::Column::Version.eq(expected_version));
        if !fenced_update(self.connection(), update, unchanged).await? {
            return Ok(None);
        }
        subscriptions::Entity::find_by_id(id.to_owned())
            .one(self.connection())
            .await
            .map_err(classify)?
            .map(subscription_from_row)
            .transpose()
    }

    async fn reserve_due_subscriptions(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        hold: Duration,
    ) -> Result<Vec<Subscription>, StorageError> {
        let due = subscriptions::Entity::find()
            .filter(subscriptions::Column::NextCheckAt.lte(now))
            .filter(subscriptions::Column::State.is_not_in([
                SubscriptionState::Expired.as_str(),
                SubscriptionState::Revoked.as_str(),
                SubscriptionState::Replaced.as_str(),
            ]));
        self.reserve_subscriptions(due, subscriptions::Column::NextCheckAt, now, limit, hold)
            .await
    }

    async fn reserve_unsynced_subscriptions(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        hold: Duration,
    ) -> Result<Vec<Subscription>, StorageError> {
        let due = subscriptions::Entity::find()
            .filter(
                Expr::col(subscriptions::Column::SyncedVersion)
                    .lt(Expr::col(subscriptions::Column::Version)),
            )
            .filter(subscriptions::Column::NextSyncAt.lte(now));
        self.reserve_subscriptions(due, subscriptions::Column::NextSyncAt, now, limit, hold)
            .await
    }

    async fn record_subscription_synced(&self, id: &str, version: i64) -> Result<(), StorageError> {
        subscriptions::Entity::update_many()
            .col_expr(subscriptions::Column::SyncedVersion, Expr::value(version))
            .col_expr(
                subscriptions::Column::LastError,
                Expr::value(Option::<String>::None),
            )
            // A newer version written meanwhile stays due at once.
            .col_expr(subscriptions::Column::NextSyncAt, Expr::value(Utc::now()))
            .filter(subscriptions::Column::Id.eq(id))
            .filter(subscriptions::Column::SyncedVersion.lt(version))
            .exec(self.connection())
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn record_subscription_sync_failed(
        &self,
        id: &str,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        subscriptions::Entity::update_many()
            .col_expr(subscriptions::Column::LastError, Expr::value(error))
            .col_expr(subscriptions::Column::NextSyncAt, Expr::value(retry_at))
            .filter(subscriptions::Column::Id.eq(id))
            .exec(self.connection())
            .await
            .map_err(classify)?;
        Ok(())
    }
}
