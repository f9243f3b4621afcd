//! PaymentLedger: the replay fence (`UNIQUE(platform, store_transaction_id)`) and the commit of a
//! verified payment — store transaction row, order → PAID, outbox event — in one transaction.
//! Nothing is written when any part fails, and the affected-row counts decide every race.

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, TransactionTrait,
};

use iap_domain::ports::{
    MarkOutcome, PaymentLedger, PaymentTarget, PaymentToRecord, RecordOutcome, RecordedPurchase,
    RefundMark, StorageError,
};
use iap_domain::purchase::{PurchaseStatus, VerifiedPurchase};
use iap_domain::{AppId, Order, OrderId, OrderState, Platform, ProductId, UserId};

use crate::compensation_match::{Match, attach_in, open_compensation};
use crate::convert::{order_from_row, order_to_row};
use crate::entity::{orders, store_transactions, trial_usage};
use crate::orders::append_event;
use crate::refund_marks::{lock_identities, marked_in};
use crate::transition::fenced_update;
use crate::{Storage, classify};

pub(crate) fn recorded(
    row: store_transactions::Model,
    repeat_trial: bool,
) -> Result<RecordedPurchase, StorageError> {
    let corrupt =
        |e: iap_domain::IdError| StorageError::Corrupt(format!("store_transactions: {e}"));
    Ok(RecordedPurchase {
        order_id: OrderId::parse(&row.order_id).map_err(corrupt)?,
        app_id: AppId::parse(row.app_id).map_err(corrupt)?,
        user_id: UserId::parse(row.user_id).map_err(corrupt)?,
        repeat_trial,
    })
}

fn purchase_row(
    p: &PaymentToRecord,
    order: &Order,
    now: DateTime<Utc>,
) -> store_transactions::Model {
    let v: &VerifiedPurchase = &p.purchase;
    let (status, revoked_at, revocation_reason) = match &v.status {
        PurchaseStatus::Purchased => ("purchased", None, None),
        PurchaseStatus::Pending => ("pending", None, None),
        PurchaseStatus::Cancelled => ("cancelled", None, None),
        PurchaseStatus::Refunded { at, reason } => ("refunded", *at, reason.clone()),
    };
    store_transactions::Model {
        id: uuid::Uuid::now_v7().to_string(),
        platform: v.platform.as_str().to_owned(),
        store_transaction_id: v.store_transaction_id.clone(),
        original_transaction_id: v.original_transaction_id.clone(),
        purchase_token: v.purchase_token.clone(),
        store_order_id: v.store_order_id.clone(),
        app_id: p.app_id.to_string(),
        user_id: p.user_id.to_string(),
        order_id: order.id.to_string(),
        product_id: v.product_id.to_string(),
        product_kind: order.product_kind.as_str().to_owned(),
        quantity: i32::try_from(v.quantity).unwrap_or(i32::MAX),
        environment: v.environment.as_str().to_owned(),
        status: status.to_owned(),
        purchased_at: v.purchased_at,
        expires_at: v.expires_at,
        revoked_at,
        revocation_reason,
        price_currency: v.price.as_ref().map(|m| m.currency.clone()),
        price_amount_micros: v.price.as_ref().map(|m| m.amount_micros),
        is_trial: v.is_trial,
        store_account_id: v.store_account_id.clone(),
        linked_purchase_token: v.linked_purchase_token.clone(),
        raw_payload: v.raw.clone(),
        verified_at: now,
        updated_at: now,
    }
}

impl Storage {
    pub(crate) async fn record_in(
        &self,
        txn: &DatabaseTransaction,
        p: &PaymentToRecord,
    ) -> Result<RecordOutcome, StorageError> {
        let now = Utc::now().trunc_subsecs(6);
        // 0. A refund the store reported before this redemption wins (see `refund_marks`).
        let identities: Vec<&str> = [
            Some(p.purchase.store_transaction_id.as_str()),
            p.purchase.purchase_token.as_deref(),
            p.purchase.store_order_id.as_deref(),
        ]
        .into_iter()
        .flatten()
        .filter(|id| !id.is_empty())
        .collect();
        lock_identities(txn, p.purchase.platform, &identities).await?;
        if let Some(revoked) = marked_in(txn, p.purchase.platform, &identities).await? {
            return Ok(RecordOutcome::RefundedBeforeRedemption { revoked });
        }
        // 0b. An App Store subscription period is one `webOrderLineItemId` (kept as the store
        // order id) whatever transaction id a device got for it: a restore on a new device
        // brings a new transaction id for a period recorded already. Serialised with its
        // redemption by the identity locks above.
        if p.purchase.platform == Platform::Apple
            && let Some(period) = p.purchase.store_order_id.as_deref()
            && let Some(row) = store_transactions::Entity::find()
                .filter(store_transactions::Column::Platform.eq(Platform::Apple.as_str()))
                .filter(store_transactions::Column::StoreOrderId.eq(period))
                .one(txn)
                .await
                .map_err(classify)?
        {
            let id = row.store_transaction_id.clone();
            let repeat_trial =
                row.is_trial && self.repeat_trial_in(txn, Platform::Apple, &id).await?;
            return Ok(RecordOutcome::AlreadyRecorded(recorded(row, repeat_trial)?));
        }

        // 1. The order becomes PAID: a conditional update on an existing order, or a new row.
        let order = match &p.target {
            PaymentTarget::ExistingOrder(id) => {
                let paid = orders::Entity::update_many()
                    .col_expr(
                        orders::Column::State,
                        Expr::value(OrderState::Paid.as_str()),
                    )
                    .col_expr(
                        orders::Column::Environment,
                        Expr::value(p.purchase.environment.as_str()),
                    )
                    .col_expr(
                        orders::Column::StoreTransactionId,
                        Expr::value(p.purchase.store_transaction_id.clone()),
                    )
                    .col_expr(
                        orders::Column::BindingReason,
                        Expr::value(p.binding_reason.as_str()),
                    )
                    // What the store was paid for, whatever the order asked.
                    .col_expr(
                        orders::Column::Quantity,
                        Expr::value(i64::from(p.purchase.quantity.max(1))),
                    )
                    .col_expr(orders::Column::PaidAt, Expr::value(now))
                    .col_expr(orders::Column::UpdatedAt, Expr::value(now))
                    .col_expr(orders::Column::NextAttemptAt, Expr::value(now));
                let unpaid = Condition::all()
                    .add(orders::Column::Id.eq(id.to_string()))
                    .add(orders::Column::State.eq(OrderState::Created.as_str()));
                if !fenced_update(txn, paid, unpaid).await? {
                    return Ok(RecordOutcome::OrderNoLongerUnpaid);
                }
                let row = orders::Entity::find_by_id(id.to_string())
                    .one(txn)
                    .await
                    .map_err(classify)?
                    .ok_or_else(|| {
                        StorageError::Other("paid order vanished inside its transaction".into())
                    })?;
                order_from_row(row)?
            }
            PaymentTarget::NewOrder(new) => insert_paid(txn, new, p, now).await?,
            PaymentTarget::CompensatedOrder { id, top_up } => {
                let attached = Match {
                    compensation: *id,
                    store_transaction_id: &p.purchase.store_transaction_id,
                    paid_quantity: p.purchase.quantity.max(1),
                    top_up: top_up.as_ref().map(|new| new.id),
                };
                let Some(compensated) = attach_in(txn, &attached, now).await? else {
                    return Ok(RecordOutcome::OrderNoLongerUnpaid);
                };
                match top_up {
                    Some(new) => insert_paid(txn, new, p, now).await?,
                    None => compensated,
                }
            }
        };
        // Recorded against support's grant: it was delivered already, nothing more is owed.
        let pays_a_grant = !matches!(
            p.target,
            PaymentTarget::CompensatedOrder { top_up: None, .. }
        );

        // 2. The replay fence: the first insert of this store purchase wins.
        let inserted =
            store_transactions::Entity::insert(purchase_row(p, &order, now).into_active_model())
                .on_conflict(
                    OnConflict::columns([
                        store_transactions::Column::Platform,
                        store_transactions::Column::StoreTransactionId,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .exec_without_returning(txn)
                .await
                .map_err(classify)?;
        if inserted != 1 {
            let existing = self
                .find_in(txn, p.purchase.platform, &p.purchase.store_transaction_id)
                .await?;
            let existing =
                existing.ok_or_else(|| StorageError::Other("conflict without a row".into()))?;
            return Ok(RecordOutcome::AlreadyRecorded(existing));
        }

        // 3. The event that drives delivery (fast path or sweeper) and the order's history.
        let detail = serde_json::json!({
            "store_transaction_id": p.purchase.store_transaction_id,
            "binding_reason": p.binding_reason.as_str(),
            "environment": p.purchase.environment.as_str(),
        });
        if pays_a_grant {
            append_event(txn, order.id, "order.paid", "verifier", &detail, now).await?;
        }

        // 4. A subscription's period moves its row, in the same commit.
        self.record_subscription_in(txn, p, &order, now).await?;

        // 5. A free trial is remembered per user and per store account, in the same commit.
        let mut repeat_trial = false;
        if let Some(group) = &p.trial_group {
            let usage = trial_usage::ActiveModel {
                id: ActiveValue::Set(uuid::Uuid::now_v7().to_string()),
                app_id: ActiveValue::Set(p.app_id.to_string()),
                platform: ActiveValue::Set(p.purchase.platform.as_str().to_owned()),
                user_id: ActiveValue::Set(p.user_id.to_string()),
                store_account_id: ActiveValue::Set(p.purchase.store_account_id.clone()),
                subscription_group: ActiveValue::Set(group.clone()),
                store_transaction_id: ActiveValue::Set(p.purchase.store_transaction_id.clone()),
                created_at: ActiveValue::Set(now),
            };
            trial_usage::Entity::insert(usage)
                .exec_without_returning(txn)
                .await
                .map_err(classify)?;
            repeat_trial = self
                .repeat_trial_in(txn, p.purchase.platform, &p.purchase.store_transaction_id)
                .await?;
        }

        // 6. A purchase kept unclaimed is resolved by this redemption, in the same commit.
        crate::unclaimed::resolve_in(txn, p, order.id, now).await?;
        Ok(RecordOutcome::Recorded {
            order: Box::new(order),
            repeat_trial,
        })
    }

    /// Whether the trial paid by this store purchase came after another trial of the same
    /// subscription group by the same user or the same store account. Trial rows are ordered by
    /// their time-ordered (UUIDv7) ids, so a retry gets the same answer as the first call.
    async fn repeat_trial_in<C: sea_orm::ConnectionTrait>(
        &self,
        conn: &C,
        platform: Platform,
        store_transaction_id: &str,
    ) -> Result<bool, StorageError> {
        let Some(this) = trial_usage::Entity::find()
            .filter(trial_usage::Column::Platform.eq(platform.as_str()))
            .filter(trial_usage::Column::StoreTransactionId.eq(store_transaction_id))
            .one(conn)
            .await
            .map_err(classify)?
        else {
            return Ok(false);
        };
        let mut same_taker = Condition::any().add(trial_usage::Column::UserId.eq(&this.user_id));
        if let Some(account) = &this.store_account_id {
            same_taker = same_taker.add(trial_usage::Column::StoreAccountId.eq(account));
        }
        let earlier = trial_usage::Entity::find()
            .filter(trial_usage::Column::AppId.eq(&this.app_id))
            .filter(trial_usage::Column::SubscriptionGroup.eq(&this.subscription_group))
            .filter(trial_usage::Column::Id.lt(&this.id))
            .filter(same_taker)
            .count(conn)
            .await
            .map_err(classify)?;
        Ok(earlier > 0)
    }

    async fn find_in<C: sea_orm::ConnectionTrait>(
        &self,
        conn: &C,
        platform: Platform,
        id: &str,
    ) -> Result<Option<RecordedPurchase>, StorageError> {
        let row = store_transactions::Entity::find()
            .filter(store_transactions::Column::Platform.eq(platform.as_str()))
            .filter(store_transactions::Column::StoreTransactionId.eq(id))
            .one(conn)
            .await
            .map_err(classify)?;
        let Some(row) = row else { return Ok(None) };
        let repeat_trial = row.is_trial && self.repeat_trial_in(conn, platform, id).await?;
        recorded(row, repeat_trial).map(Some)
    }
}

#[async_trait]
impl PaymentLedger for Storage {
    async fn find_purchase(
        &self,
        platform: Platform,
        id: &str,
    ) -> Result<Option<RecordedPurchase>, StorageError> {
        self.find_in(self.connection(), platform, id).await
    }

    async fn recorded_among(
        &self,
        platform: Platform,
        ids: &[String],
    ) -> Result<Vec<String>, StorageError> {
        use sea_orm::QuerySelect;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        store_transactions::Entity::find()
            .select_only()
            .column(store_transactions::Column::StoreTransactionId)
            .filter(store_transactions::Column::Platform.eq(platform.as_str()))
            .filter(store_transactions::Column::StoreTransactionId.is_in(ids.iter().cloned()))
            .into_tuple::<String>()
            .all(self.connection())
            .await
            .map_err(classify)
    }

    async fn find_subscription_owner(
        &self,
        platform: Platform,
        key: &str,
    ) -> Result<Option<RecordedPurchase>, StorageError> {
        self.subscription_owner(platform, key).await
    }

    async fn find_purchase_by_token(
        &self,
        platform: Platform,
        purchase_token: &str,
    ) -> Result<Option<RecordedPurchase>, StorageError> {
        // The newest charge of the token (a Huawei or Google token names one purchase; for
        // subscriptions, renewals share it and the latest is the one refunded).
        let row = store_transactions::Entity::find()
            .filter(store_transactions::Column::Platform.eq(platform.as_str()))
            .filter(store_transactions::Column::PurchaseToken.eq(purchase_token))
            .order_by_desc(store_transactions::Column::VerifiedAt)
            .one(self.connection())
            .await
            .map_err(classify)?;
        row.map(|row| recorded(row, false)).transpose()
    }

    async fn oldest_unpaid_order(
        &self,
        app: &AppId,
        user: &UserId,
        product: &ProductId,
        platform: Platform,
    ) -> Result<Option<Order>, StorageError> {
        orders::Entity::find()
            .filter(orders::Column::AppId.eq(app.as_str()))
            .filter(orders::Column::UserId.eq(user.as_str()))
            .filter(orders::Column::ProductId.eq(product.as_str()))
            .filter(orders::Column::Platform.eq(platform.as_str()))
            .filter(orders::Column::State.eq(OrderState::Created.as_str()))
            .order_by_asc(orders::Column::CreatedAt)
            .order_by_asc(orders::Column::Id)
            .one(self.connection())
            .await
            .map_err(classify)?
            .map(order_from_row)
            .transpose()
    }

    async fn open_compensation(
        &self,
        app: &AppId,
        user: &UserId,
        product: &ProductId,
        platform: Platform,
        since: DateTime<Utc>,
    ) -> Result<Option<Order>, StorageError> {
        open_compensation(self.connection(), app, user, product, platform, since).await
    }

    async fn mark_refund(&self, mark: RefundMark) -> Result<MarkOutcome, StorageError> {
        self.mark_refund_in(mark).await
    }

    async fn record_payment(
        &self,
        payment: PaymentToRecord,
    ) -> Result<RecordOutcome, StorageError> {
        let txn = self.connection().begin().await.map_err(classify)?;
        let outcome = self.record_in(&txn, &payment).await;
        match outcome {
            Ok(recorded @ RecordOutcome::Recorded { .. }) => {
                txn.commit().await.map_err(classify)?;
                Ok(recorded)
            }
            // Nothing of a refused payment may stay: the transaction is rolled back.
            Ok(other) => {
                txn.rollback().await.map_err(classify)?;
                Ok(other)
            }
            Err(e) => {
                let _ = txn.rollback().await;
                Err(e)
            }
        }
    }
}

/// A new order for a verified payment, stored directly as PAID.
async fn insert_paid(
    txn: &DatabaseTransaction,
    new: &iap_domain::NewOrder,
    p: &PaymentToRecord,
    now: DateTime<Utc>,
) -> Result<Order, StorageError> {
    let mut order = new.clone().into_order(now);
    order.state = OrderState::Paid;
    order.environment = Some(p.purchase.environment);
    order.store_transaction_id = Some(p.purchase.store_transaction_id.clone());
    order.binding_reason = Some(p.binding_reason);
    order.paid_at = Some(now);
    order.next_attempt_at = Some(now);
    orders::Entity::insert(order_to_row(&order).into_active_model())
        .exec_without_returning(txn)
        .await
        .map_err(classify)?;
    Ok(order)
}
