//! Fenced transitions: the one way storage changes a row that concurrent writers also change.
//! The update carries a fence — the row's id and what the writer read of it (an order's state
//! and attempt, a subscription's version) — and its affected-row count says whether the fence
//! held. A writer whose fence no longer holds writes nothing more: that is what makes a lost
//! claim harmless and each transition happen once, crash or no crash. For an order, the change,
//! what follows it (the grant record, outbox events, audit rows) and the order as committed are
//! read and written in one transaction.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    TransactionTrait, UpdateMany,
};

use iap_domain::delivery::ClaimedOrder;
use iap_domain::ports::StorageError;
use iap_domain::{Order, OrderId, OrderState};

use crate::entity::orders;
use crate::orders::read_order;
use crate::{Storage, classify};

/// The time a transition records: microseconds, what PostgreSQL keeps, so the order written
/// equals the order read back.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Applies `update` only where `fence` holds; true when it changed exactly the one fenced row.
pub(crate) async fn fenced_update<E, C>(
    conn: &C,
    update: UpdateMany<E>,
    fence: Condition,
) -> Result<bool, StorageError>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let changed = update.filter(fence).exec(conn).await.map_err(classify)?;
    Ok(changed.rows_affected == 1)
}

/// What a writer read of an order and holds its change to: the order is still in `state` under
/// `attempt` (the fencing token a claim increments).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OrderFence {
    pub(crate) id: OrderId,
    pub(crate) state: OrderState,
    pub(crate) attempt: i32,
}

impl OrderFence {
    /// The claimed order, still in `state` under the claimed attempt.
    pub(crate) fn claimed(claim: &ClaimedOrder, state: OrderState) -> Self {
        Self {
            id: claim.order.id,
            state,
            attempt: claim.order.attempt,
        }
    }

    /// The claimed order, still in the state it was claimed in.
    pub(crate) fn held(claim: &ClaimedOrder) -> Self {
        Self::claimed(claim, claim.order.state)
    }

    /// `id = … AND state = … AND attempt = …`.
    fn condition(self) -> Condition {
        Condition::all()
            .add(orders::Column::Id.eq(self.id.to_string()))
            .add(orders::Column::State.eq(self.state.as_str()))
            .add(orders::Column::Attempt.eq(self.attempt))
    }

    /// Applies `update` to the order if the fence holds; whether it did.
    pub(crate) async fn apply<C: ConnectionTrait>(
        self,
        conn: &C,
        update: UpdateMany<orders::Entity>,
    ) -> Result<bool, StorageError> {
        fenced_update(conn, update, self.condition()).await
    }
}

impl Storage {
    /// Runs `work` in a transaction: commits when it returns Ok, rolls back otherwise.
    pub(crate) async fn in_transaction<T>(
        &self,
        work: impl AsyncFnOnce(&DatabaseTransaction) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let txn = self.connection().begin().await.map_err(classify)?;
        let result = work(&txn).await;
        finish(txn, result).await
    }

    /// One fenced change of an order: in one transaction, `update` under `fence`; if the fence
    /// held, `then` (the writes that go with the change, its event among them) and the order as
    /// it now is. `None`, with nothing written, when the fence did not hold.
    pub(crate) async fn fenced_transition(
        &self,
        fence: OrderFence,
        update: UpdateMany<orders::Entity>,
        then: impl AsyncFnOnce(&DatabaseTransaction) -> Result<(), StorageError>,
    ) -> Result<Option<Order>, StorageError> {
        self.in_transaction(async |txn| {
            if !fence.apply(txn, update).await? {
                return Ok(None);
            }
            then(txn).await?;
            read_order(txn, fence.id).await
        })
        .await
    }
}

/// Commits when `result` is Ok; rolls back otherwise, so nothing of a failed step stays.
pub(crate) async fn finish<T>(
    txn: DatabaseTransaction,
    result: Result<T, StorageError>,
) -> Result<T, StorageError> {
    match result {
        Ok(value) => {
            txn.commit().await.map_err(classify)?;
            Ok(value)
        }
        Err(e) => {
            let _ = txn.rollback().await;
            Err(e)
        }
    }
}
