//! UnclaimedStore: paid purchases no order or user could be found for, kept under the store's
//! identity of the purchase (`UNIQUE(platform, store_transaction_id)`), and their claims.
//!
//! A keep, a claim, a redemption through the normal path (`record_payment`) and a refund
//! (`mark_refund`) of one purchase take the same per-identity advisory locks (see
//! `refund_marks`), so they are serialised: a claim records its payment and marks the row in one
//! commit, a normal redemption resolves the row in its own commit, and a refund flags an open
//! row so it can never be claimed.

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, Func, OnConflict};
use sea_orm::{
    ActiveValue, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use iap_domain::admin::KeysetPosition;
use iap_domain::ports::{PaymentToRecord, RecordOutcome, StorageError};
use iap_domain::unclaimed::{
    ClaimOutcome, ClaimToRecord, KeepOutcome, KeptPurchase, OpenUnclaimed, UnclaimedClaim,
    UnclaimedFilter, UnclaimedPurchase, UnclaimedStore, UnclaimedToKeep,
};
use iap_domain::{AppId, OrderId, Platform, ProductId, UserId};

use crate::admin::{admin_event, insert_audit};
use crate::convert::parse;
use crate::entity::{store_transactions, unclaimed_purchases as rows};
use crate::refund_marks::{lock_identities, marked_in};
use crate::transition::{fenced_update, finish};
use crate::{Storage, classify};

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn corrupt(what: &'static str) -> impl Fn(iap_domain::IdError) -> StorageError {
    move |e| StorageError::Corrupt(format!("unclaimed_purchases.{what}: {e}"))
}

fn view(row: rows::Model) -> Result<UnclaimedPurchase, StorageError> {
    let claim = match (row.claimed_by, row.claimed_at, row.claimed_order_id) {
        (Some(user), Some(at), Some(order)) => Some(UnclaimedClaim {
            user_id: UserId::parse(user).map_err(corrupt("claimed_by"))?,
            claimed_at: at,
            order_id: OrderId::parse(&order).map_err(corrupt("claimed_order_id"))?,
            operator: row.operator,
            reason: row.reason,
        }),
        _ => None,
    };
    Ok(UnclaimedPurchase {
        id: uuid::Uuid::parse_str(&row.id)
            .map_err(|e| StorageError::Corrupt(format!("unclaimed_purchases.id: {e}")))?,
        platform: parse("unclaimed_purchases.platform", &row.platform)?,
        store_transaction_id: row.store_transaction_id,
        original_transaction_id: row.original_transaction_id,
        purchase_token: row.purchase_token,
        store_order_id: row.store_order_id,
        app_id: AppId::parse(row.app_id).map_err(corrupt("app_id"))?,
        product_id: ProductId::parse(row.product_id).map_err(corrupt("product_id"))?,
        quantity: u32::try_from(row.quantity).unwrap_or(0),
        environment: parse("unclaimed_purchases.environment", &row.environment)?,
        purchased_at: row.purchased_at,
        source: row.source,
        first_seen_at: row.first_seen_at,
        last_seen_at: row.last_seen_at,
        refunded_at: row.refunded_at,
        claim,
    })
}

/// A purchase's store identities (charge id, token, store order id), non-empty ones only.
fn identities(
    store_transaction_id: &str,
    purchase_token: Option<&str>,
    store_order_id: Option<&str>,
) -> Vec<String> {
    let mut ids: Vec<String> = [Some(store_transaction_id), purchase_token, store_order_id]
        .into_iter()
        .flatten()
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    ids.dedup();
    ids
}

/// Rows carrying any of `ids` as a store identity.
fn any_identity(ids: &[String]) -> Condition {
    Condition::any()
        .add(rows::Column::StoreTransactionId.is_in(ids.iter().cloned()))
        .add(rows::Column::PurchaseToken.is_in(ids.iter().cloned()))
        .add(rows::Column::StoreOrderId.is_in(ids.iter().cloned()))
}

fn open() -> Condition {
    Condition::all()
        .add(rows::Column::ClaimedAt.is_null())
        .add(rows::Column::RefundedAt.is_null())
}

/// Inside a redemption's commit (its identities locked): an open kept row of this purchase is
/// resolved to the redeeming user, so it is neither listed nor claimable any more.
pub(crate) async fn resolve_in(
    txn: &DatabaseTransaction,
    payment: &PaymentToRecord,
    order: OrderId,
    at: DateTime<Utc>,
) -> Result<(), StorageError> {
    let p = &payment.purchase;
    let ids = identities(
        &p.store_transaction_id,
        p.purchase_token.as_deref(),
        p.store_order_id.as_deref(),
    );
    rows::Entity::update_many()
        .col_expr(
            rows::Column::ClaimedBy,
            Expr::value(payment.user_id.as_str()),
        )
        .col_expr(rows::Column::ClaimedAt, Expr::value(at))
        .col_expr(rows::Column::ClaimedOrderId, Expr::value(order.to_string()))
        .col_expr(
            rows::Column::Reason,
            Expr::value(format!(
                "redeemed through the normal path ({})",
                payment.binding_reason
            )),
        )
        .filter(rows::Column::Platform.eq(p.platform.as_str()))
        .filter(any_identity(&ids))
        .filter(rows::Column::ClaimedAt.is_null())
        .exec(txn)
        .await
        .map_err(classify)?;
    Ok(())
}

/// Inside a refund mark's commit (its keys locked, no redemption found): open kept rows of the
/// purchase become refunded and are never claimable.
pub(crate) async fn refund_in(
    txn: &DatabaseTransaction,
    platform: Platform,
    keys: &[&str],
    at: DateTime<Utc>,
) -> Result<(), StorageError> {
    let ids: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    rows::Entity::update_many()
        .col_expr(rows::Column::RefundedAt, Expr::value(at))
        .filter(rows::Column::Platform.eq(platform.as_str()))
        .filter(any_identity(&ids))
        .filter(open())
        .exec(txn)
        .await
        .map_err(classify)?;
    Ok(())
}

async fn row_by_id<C: ConnectionTrait>(
    conn: &C,
    id: uuid::Uuid,
) -> Result<Option<rows::Model>, StorageError> {
    rows::Entity::find_by_id(id.to_string())
        .one(conn)
        .await
        .map_err(classify)
}

impl Storage {
    async fn keep_unclaimed_in(
        &self,
        txn: &DatabaseTransaction,
        keep: &UnclaimedToKeep,
    ) -> Result<KeepOutcome, StorageError> {
        let p = &keep.purchase;
        let ids = identities(
            &p.store_transaction_id,
            p.purchase_token.as_deref(),
            p.store_order_id.as_deref(),
        );
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        lock_identities(txn, p.platform, &id_refs).await?;
        let redeemed = store_transactions::Entity::find()
            .filter(store_transactions::Column::Platform.eq(p.platform.as_str()))
            .filter(
                Condition::any()
                    .add(store_transactions::Column::StoreTransactionId.is_in(ids.clone()))
                    .add(store_transactions::Column::PurchaseToken.is_in(ids.clone()))
                    .add(store_transactions::Column::StoreOrderId.is_in(ids.clone())),
            )
            .one(txn)
            .await
            .map_err(classify)?;
        if let Some(row) = redeemed {
            return crate::payments::recorded(row, false).map(KeepOutcome::Redeemed);
        }
        let at = now();
        let refunded = marked_in(txn, p.platform, &id_refs).await?.is_some();
        let proof = serde_json::to_string(&keep.proof)
            .map_err(|e| StorageError::Other(format!("proof not serializable: {e}")))?;
        let row = rows::ActiveModel {
            id: ActiveValue::Set(uuid::Uuid::now_v7().to_string()),
            platform: ActiveValue::Set(p.platform.as_str().to_owned()),
            store_transaction_id: ActiveValue::Set(p.store_transaction_id.clone()),
            original_transaction_id: ActiveValue::Set(p.original_transaction_id.clone()),
            purchase_token: ActiveValue::Set(p.purchase_token.clone()),
            store_order_id: ActiveValue::Set(p.store_order_id.clone()),
            app_id: ActiveValue::Set(keep.app_id.to_string()),
            product_id: ActiveValue::Set(p.product_id.to_string()),
            quantity: ActiveValue::Set(i32::try_from(p.quantity).unwrap_or(i32::MAX)),
            environment: ActiveValue::Set(p.environment.as_str().to_owned()),
            purchased_at: ActiveValue::Set(p.purchased_at),
            proof: ActiveValue::Set(proof),
            source: ActiveValue::Set(keep.source.chars().take(128).collect()),
            first_seen_at: ActiveValue::Set(at),
            last_seen_at: ActiveValue::Set(at),
            refunded_at: ActiveValue::Set(refunded.then_some(at)),
            claimed_by: ActiveValue::Set(None),
            claimed_at: ActiveValue::Set(None),
            claimed_order_id: ActiveValue::Set(None),
            operator: ActiveValue::Set(None),
            reason: ActiveValue::Set(None),
        };
        let inserted = rows::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([rows::Column::Platform, rows::Column::StoreTransactionId])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await
            .map_err(classify)?;
        let this = Condition::all()
            .add(rows::Column::Platform.eq(p.platform.as_str()))
            .add(rows::Column::StoreTransactionId.eq(&p.store_transaction_id));
        if inserted != 1 {
            rows::Entity::update_many()
                .col_expr(rows::Column::LastSeenAt, Expr::value(at))
                .filter(this.clone())
                .exec(txn)
                .await
                .map_err(classify)?;
        }
        let row = rows::Entity::find()
            .filter(this)
            .one(txn)
            .await
            .map_err(classify)?
            .ok_or_else(|| StorageError::Other("kept purchase vanished".into()))?;
        Ok(KeepOutcome::Kept {
            purchase: Box::new(view(row)?),
            new: inserted == 1,
        })
    }

    async fn claim_unclaimed_in(
        &self,
        txn: &DatabaseTransaction,
        claim: &ClaimToRecord,
    ) -> Result<ClaimOutcome, StorageError> {
        let Some(row) = row_by_id(txn, claim.id).await? else {
            return Ok(ClaimOutcome::NotFound);
        };
        let platform: Platform = parse("unclaimed_purchases.platform", &row.platform)?;
        let ids = identities(
            &row.store_transaction_id,
            row.purchase_token.as_deref(),
            row.store_order_id.as_deref(),
        );
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        lock_identities(txn, platform, &id_refs).await?;
        // Read again under the locks: a refund or a redemption may have just committed.
        let row = row_by_id(txn, claim.id)
            .await?
            .ok_or_else(|| StorageError::Other("kept purchase vanished".into()))?;
        let current = view(row)?;
        if let Some(done) = current.claim {
            return Ok(ClaimOutcome::AlreadyClaimed(done));
        }
        if current.refunded_at.is_some() {
            return Ok(ClaimOutcome::Refunded);
        }
        let at = now();
        let order_id = claim.payment.target.order_id();
        let claimed = rows::Entity::update_many()
            .col_expr(
                rows::Column::ClaimedBy,
                Expr::value(claim.payment.user_id.as_str()),
            )
            .col_expr(rows::Column::ClaimedAt, Expr::value(at))
            .col_expr(
                rows::Column::ClaimedOrderId,
                Expr::value(order_id.to_string()),
            )
            .col_expr(
                rows::Column::Operator,
                Expr::value(claim.audit.operator.clone()),
            )
            .col_expr(
                rows::Column::Reason,
                Expr::value(claim.audit.reason.clone()),
            );
        let still_open = Condition::all()
            .add(rows::Column::Id.eq(claim.id.to_string()))
            .add(open());
        if !fenced_update(txn, claimed, still_open).await? {
            return Err(StorageError::Other(
                "kept purchase changed under its locks".into(),
            ));
        }
        match self.record_in(txn, &claim.payment).await? {
            RecordOutcome::Recorded { order, .. } => {
                insert_audit(txn, &claim.audit, at).await?;
                admin_event(txn, order.id, &claim.audit, at).await?;
                Ok(ClaimOutcome::Claimed(order))
            }
            other => Ok(ClaimOutcome::NotRecorded(other)),
        }
    }
}

#[async_trait]
impl UnclaimedStore for Storage {
    async fn keep_unclaimed(&self, keep: UnclaimedToKeep) -> Result<KeepOutcome, StorageError> {
        let txn = self.connection().begin().await.map_err(classify)?;
        let result = self.keep_unclaimed_in(&txn, &keep).await;
        finish(txn, result).await
    }

    async fn kept_purchase(&self, id: uuid::Uuid) -> Result<Option<KeptPurchase>, StorageError> {
        let Some(row) = row_by_id(self.connection(), id).await? else {
            return Ok(None);
        };
        let proof = serde_json::from_str(&row.proof)
            .map_err(|e| StorageError::Corrupt(format!("unclaimed_purchases.proof: {e}")))?;
        Ok(Some(KeptPurchase {
            purchase: view(row)?,
            proof,
        }))
    }

    async fn list_unclaimed(
        &self,
        filter: &UnclaimedFilter,
        after: Option<KeysetPosition>,
        limit: u32,
    ) -> Result<Vec<UnclaimedPurchase>, StorageError> {
        let mut query = rows::Entity::find();
        if let Some(platform) = filter.platform {
            query = query.filter(rows::Column::Platform.eq(platform.as_str()));
        }
        if let Some(app) = &filter.app_id {
            query = query.filter(rows::Column::AppId.eq(app.as_str()));
        }
        if !filter.include_settled {
            query = query.filter(open());
        }
        if let Some(after) = after {
            query = query.filter(
                Condition::any()
                    .add(rows::Column::FirstSeenAt.gt(after.at))
                    .add(
                        Condition::all()
                            .add(rows::Column::FirstSeenAt.eq(after.at))
                            .add(rows::Column::Id.gt(after.id.to_string())),
                    ),
            );
        }
        query
            .order_by_asc(rows::Column::FirstSeenAt)
            .order_by_asc(rows::Column::Id)
            .limit(u64::from(limit))
            .all(self.connection())
            .await
            .map_err(classify)?
            .into_iter()
            .map(view)
            .collect()
    }

    async fn find_unclaimed(&self, id: &str) -> Result<Vec<UnclaimedPurchase>, StorageError> {
        if id.is_empty() {
            return Ok(Vec::new());
        }
        rows::Entity::find()
            .filter(
                Condition::any()
                    .add(rows::Column::StoreTransactionId.eq(id))
                    .add(rows::Column::OriginalTransactionId.eq(id))
                    .add(rows::Column::PurchaseToken.eq(id))
                    .add(rows::Column::StoreOrderId.eq(id)),
            )
            .order_by_asc(rows::Column::FirstSeenAt)
            .all(self.connection())
            .await
            .map_err(classify)?
            .into_iter()
            .map(view)
            .collect()
    }

    async fn claim_unclaimed(&self, claim: ClaimToRecord) -> Result<ClaimOutcome, StorageError> {
        let txn = self.connection().begin().await.map_err(classify)?;
        match self.claim_unclaimed_in(&txn, &claim).await {
            Ok(claimed @ ClaimOutcome::Claimed(_)) => {
                txn.commit().await.map_err(classify)?;
                Ok(claimed)
            }
            // Nothing of a refused claim stays: the row's claim is rolled back with it.
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

    async fn open_unclaimed(&self) -> Result<Vec<OpenUnclaimed>, StorageError> {
        let found: Vec<(String, i64, Option<DateTime<Utc>>)> = rows::Entity::find()
            .select_only()
            .column(rows::Column::Platform)
            .expr(Expr::col(rows::Column::Id).count())
            .expr(Func::min(Expr::col(rows::Column::FirstSeenAt)))
            .filter(open())
            .group_by(rows::Column::Platform)
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(classify)?;
        found
            .into_iter()
            .map(|(platform, count, oldest)| {
                Ok(OpenUnclaimed {
                    platform: parse("unclaimed_purchases.platform", &platform)?,
                    count: u64::try_from(count).unwrap_or(0),
                    oldest_first_seen_at: oldest,
                })
            })
            .collect()
    }
}
