//! Refund marks: refunds the store reported for purchases not redeemed here yet, and the lock that
//! serialises a refund with a redemption of the same purchase.
//!
//! A refund and a redemption of one purchase can run at once (a notification worker and a client
//! call). Each checks the other's table inside its transaction; without more, both checks could
//! run before either commits and the refund would be lost. So both first take a transaction-scoped
//! advisory lock per identity of the purchase (PostgreSQL; SQLite has one connection, which
//! serialises every transaction already). A mark names a subset of the identities a redemption
//! locks, so the two always share a lock.

use chrono::{SubsecRound, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue, ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryOrder, Statement, TransactionTrait,
};

use iap_domain::Platform;
use iap_domain::ports::{MarkOutcome, RefundMark, StorageError};

use crate::entity::{refund_marks, store_transactions};
use crate::{Storage, classify};

/// A stable 64-bit lock key for one identity (FNV-1a: the same on every process and version).
fn lock_key(platform: Platform, identity: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in platform.as_str().bytes().chain([0]).chain(identity.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_le_bytes(hash.to_le_bytes())
}

/// Takes the advisory lock of each identity, in ascending key order (so two transactions locking
/// overlapping sets cannot deadlock), until `txn` ends.
pub(crate) async fn lock_identities(
    txn: &DatabaseTransaction,
    platform: Platform,
    identities: &[&str],
) -> Result<(), StorageError> {
    if txn.get_database_backend() != DatabaseBackend::Postgres || identities.is_empty() {
        return Ok(());
    }
    let mut keys: Vec<i64> = identities.iter().map(|i| lock_key(platform, i)).collect();
    keys.sort_unstable();
    keys.dedup();
    // The keys are numbers computed here, never caller text.
    let values = keys
        .iter()
        .map(|k| format!("({k})"))
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!(
        "SELECT pg_advisory_xact_lock(k) FROM (SELECT k FROM (VALUES {values}) AS v(k) ORDER BY k) AS s"
    );
    txn.execute(Statement::from_string(DatabaseBackend::Postgres, sql))
        .await
        .map_err(classify)?;
    Ok(())
}

/// Whether a mark holds any of `identities`; `Some(revoked)` when one does.
pub(crate) async fn marked_in(
    txn: &DatabaseTransaction,
    platform: Platform,
    identities: &[&str],
) -> Result<Option<bool>, StorageError> {
    if identities.is_empty() {
        return Ok(None);
    }
    let mark = refund_marks::Entity::find()
        .filter(refund_marks::Column::Platform.eq(platform.as_str()))
        .filter(refund_marks::Column::StoreKey.is_in(identities.iter().copied()))
        .one(txn)
        .await
        .map_err(classify)?;
    Ok(mark.map(|m| m.revoked))
}

impl Storage {
    pub(crate) async fn mark_refund_in(
        &self,
        mark: RefundMark,
    ) -> Result<MarkOutcome, StorageError> {
        let keys: Vec<&str> = mark
            .store_keys
            .iter()
            .map(String::as_str)
            .filter(|k| !k.is_empty())
            .collect();
        if keys.is_empty() {
            return Err(StorageError::Other("a refund mark needs a store id".into()));
        }
        let txn = self.connection().begin().await.map_err(classify)?;
        let result = async {
            lock_identities(&txn, mark.platform, &keys).await?;
            // The newest charge with any of these ids (a subscription's token names all its
            // periods; the latest is the one a revocation takes back).
            let redeemed = store_transactions::Entity::find()
                .filter(store_transactions::Column::Platform.eq(mark.platform.as_str()))
                .filter(
                    Condition::any()
                        .add(store_transactions::Column::StoreTransactionId.is_in(keys.clone()))
                        .add(store_transactions::Column::PurchaseToken.is_in(keys.clone()))
                        .add(store_transactions::Column::StoreOrderId.is_in(keys.clone())),
                )
                .order_by_desc(store_transactions::Column::VerifiedAt)
                .one(&txn)
                .await
                .map_err(classify)?;
            if let Some(row) = redeemed {
                return crate::payments::recorded(row, false).map(MarkOutcome::Redeemed);
            }
            let now = Utc::now().trunc_subsecs(6);
            let rows = keys.iter().map(|key| refund_marks::ActiveModel {
                id: ActiveValue::Set(uuid::Uuid::now_v7().to_string()),
                platform: ActiveValue::Set(mark.platform.as_str().to_owned()),
                store_key: ActiveValue::Set((*key).to_owned()),
                revoked: ActiveValue::Set(mark.revoked),
                source: ActiveValue::Set(mark.source.chars().take(128).collect()),
                created_at: ActiveValue::Set(now),
            });
            refund_marks::Entity::insert_many(rows)
                .on_conflict(
                    OnConflict::columns([
                        refund_marks::Column::Platform,
                        refund_marks::Column::StoreKey,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(classify)?;
            // A purchase kept unclaimed can no longer be claimed.
            crate::unclaimed::refund_in(&txn, mark.platform, &keys, now).await?;
            Ok(MarkOutcome::Marked)
        }
        .await;
        match result {
            Ok(outcome) => {
                txn.commit().await.map_err(classify)?;
                Ok(outcome)
            }
            Err(e) => {
                let _ = txn.rollback().await;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_tell_stores_and_ids_apart() {
        assert_eq!(
            lock_key(Platform::Google, "tok"),
            lock_key(Platform::Google, "tok")
        );
        assert_ne!(
            lock_key(Platform::Google, "tok"),
            lock_key(Platform::Huawei, "tok")
        );
        assert_ne!(
            lock_key(Platform::Google, "tok"),
            lock_key(Platform::Google, "tok2")
        );
        // Pinned: two versions running side by side in a rolling deploy must take one lock.
        assert_eq!(lock_key(Platform::Apple, "1"), 7_494_413_648_338_964_596);
    }
}
