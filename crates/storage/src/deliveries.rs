//! DeliveryStore: claims with the attempt counter as fencing token, and the commits that move an
//! order through DELIVERING → DELIVERED → CONFIRMED (or DEAD, REFUNDED, REVOKED) together with its
//! `deliveries` row and outbox events. Every write after a claim is `WHERE attempt = $claimed`
//! (a fenced transition, see `transition.rs`): a worker that lost its claim writes nothing.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use iap_domain::delivery::{
    Claim, ClaimedOrder, DeliveryRecord, DeliveryStore, Failure, GameAck, RevocationClaim,
    RevokedDetail, grant_id,
};
use iap_domain::ports::{ConfirmOutcome, PurchaseToConfirm, StorageError};
use iap_domain::{DeliveryState, Order, OrderId, OrderState};

use crate::convert::parse;
use crate::entity::{deliveries, orders, outbox, store_transactions};
use crate::orders::{append_event, read_order};
use crate::transition::{OrderFence, finish, now};
use crate::{Storage, classify};

/// No live lease: never leased, or the lease ran out.
fn lease_free(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(orders::Column::LeaseUntil.is_null())
        .add(orders::Column::LeaseUntil.lt(now))
}

pub(crate) fn until(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
}

fn record_from_row(row: deliveries::Model) -> Result<DeliveryRecord, StorageError> {
    let count = |n: i32| u32::try_from(n).unwrap_or(0);
    Ok(DeliveryRecord {
        order_id: OrderId::parse(&row.order_id)
            .map_err(|e| StorageError::Corrupt(format!("deliveries.order_id: {e}")))?,
        grant_id: row.grant_id,
        state: parse("deliveries.state", &row.state)?,
        grant_calls: count(row.grant_calls),
        confirm_calls: count(row.confirm_calls),
        game_ack_reference: row.game_ack_reference,
        last_error: row.last_error,
        created_at: row.created_at,
        granted_at: row.granted_at,
        confirmed_at: row.confirmed_at,
        revoked_at: row.revoked_at,
    })
}

/// The paying store purchase of an order, for the grant and the store confirmation.
async fn purchase_of<C: ConnectionTrait>(
    conn: &C,
    order: &Order,
) -> Result<Option<PurchaseToConfirm>, StorageError> {
    let Some(id) = &order.store_transaction_id else {
        return Ok(None);
    };
    let Some(row) = store_transactions::Entity::find()
        .filter(store_transactions::Column::Platform.eq(order.platform.as_str()))
        .filter(store_transactions::Column::StoreTransactionId.eq(id))
        .one(conn)
        .await
        .map_err(classify)?
    else {
        return Ok(None);
    };
    Ok(Some(PurchaseToConfirm {
        app_id: order.app_id.clone(),
        product_id: order.product_id.clone(),
        kind: order.product_kind,
        store_transaction_id: row.store_transaction_id,
        purchase_token: row.purchase_token,
        environment: parse("store_transactions.environment", &row.environment)?,
        order_id: order.id,
        expires_at: row.expires_at,
    }))
}

impl Storage {
    async fn claimed(
        &self,
        txn: &DatabaseTransaction,
        id: OrderId,
    ) -> Result<ClaimedOrder, StorageError> {
        let order = read_order(txn, id)
            .await?
            .ok_or_else(|| StorageError::Other("claimed order vanished".into()))?;
        let existing = deliveries::Entity::find_by_id(id.to_string())
            .one(txn)
            .await
            .map_err(classify)?;
        Ok(ClaimedOrder {
            grant_id: existing.map_or_else(|| grant_id(id), |d| d.grant_id),
            purchase: purchase_of(txn, &order).await?,
            order,
        })
    }

    async fn claim_in(
        &self,
        txn: &DatabaseTransaction,
        id: OrderId,
        lease: Duration,
    ) -> Result<Claim, StorageError> {
        let now = now();
        let grantable = Condition::any()
            .add(orders::Column::State.eq(OrderState::Paid.as_str()))
            .add(
                Condition::all()
                    .add(orders::Column::State.eq(OrderState::Delivering.as_str()))
                    .add(lease_free(now)),
            );
        let to_grant = orders::Entity::update_many()
            .col_expr(
                orders::Column::State,
                Expr::value(OrderState::Delivering.as_str()),
            )
            .col_expr(
                orders::Column::Attempt,
                Expr::col(orders::Column::Attempt).add(1),
            )
            .col_expr(orders::Column::LeaseUntil, Expr::value(until(now, lease)))
            .col_expr(orders::Column::UpdatedAt, Expr::value(now))
            .filter(orders::Column::Id.eq(id.to_string()))
            .filter(grantable)
            .exec(txn)
            .await
            .map_err(classify)?;
        if to_grant.rows_affected == 1 {
            // The grant record: one per order (primary key), with the stable grant id.
            let row = deliveries::ActiveModel {
                order_id: ActiveValue::Set(id.to_string()),
                grant_id: ActiveValue::Set(grant_id(id)),
                state: ActiveValue::Set(DeliveryState::Granting.as_str().to_owned()),
                grant_calls: ActiveValue::Set(0),
                confirm_calls: ActiveValue::Set(0),
                game_ack_reference: ActiveValue::Set(None),
                revoke_id: ActiveValue::Set(None),
                last_error: ActiveValue::Set(None),
                created_at: ActiveValue::Set(now),
                updated_at: ActiveValue::Set(now),
                granted_at: ActiveValue::Set(None),
                confirmed_at: ActiveValue::Set(None),
                revoked_at: ActiveValue::Set(None),
            };
            // A row from an earlier attempt keeps its grant id and counters; only its state
            // and time change (one statement either way).
            deliveries::Entity::insert(row)
                .on_conflict(
                    OnConflict::column(deliveries::Column::OrderId)
                        .update_columns([deliveries::Column::State, deliveries::Column::UpdatedAt])
                        .to_owned(),
                )
                .exec_without_returning(txn)
                .await
                .map_err(classify)?;
            return Ok(Claim::Grant(self.claimed(txn, id).await?));
        }
        let to_confirm = orders::Entity::update_many()
            .col_expr(
                orders::Column::Attempt,
                Expr::col(orders::Column::Attempt).add(1),
            )
            .col_expr(orders::Column::LeaseUntil, Expr::value(until(now, lease)))
            .col_expr(orders::Column::UpdatedAt, Expr::value(now))
            .filter(orders::Column::Id.eq(id.to_string()))
            .filter(orders::Column::State.eq(OrderState::Delivered.as_str()))
            .filter(lease_free(now))
            .exec(txn)
            .await
            .map_err(classify)?;
        if to_confirm.rows_affected == 1 {
            return Ok(Claim::Confirm(self.claimed(txn, id).await?));
        }
        Ok(match read_order(txn, id).await? {
            None => Claim::NotFound,
            Some(order)
                if matches!(order.state, OrderState::Delivering | OrderState::Delivered) =>
            {
                Claim::HeldElsewhere(order)
            }
            Some(order) => Claim::Settled(order),
        })
    }
}

#[async_trait]
impl DeliveryStore for Storage {
    async fn claim(&self, order: OrderId, lease: Duration) -> Result<Claim, StorageError> {
        let txn = self.connection().begin().await.map_err(classify)?;
        let result = self.claim_in(&txn, order, lease).await;
        finish(txn, result).await
    }

    async fn record_granted(
        &self,
        claim: &ClaimedOrder,
        ack: &GameAck,
        grant_calls: u32,
    ) -> Result<Option<Order>, StorageError> {
        let id = claim.order.id;
        let now = now();
        let delivered = orders::Entity::update_many()
            .col_expr(
                orders::Column::State,
                Expr::value(OrderState::Delivered.as_str()),
            )
            .col_expr(orders::Column::DeliveredAt, Expr::value(now))
            // The confirm claim, in the same commit: a new attempt under the lease we hold.
            .col_expr(
                orders::Column::Attempt,
                Expr::col(orders::Column::Attempt).add(1),
            )
            .col_expr(orders::Column::NextAttemptAt, Expr::value(now))
            .col_expr(orders::Column::LastError, Expr::value(None::<String>))
            .col_expr(orders::Column::UpdatedAt, Expr::value(now));
        let fence = OrderFence::claimed(claim, OrderState::Delivering);
        self.fenced_transition(fence, delivered, async |txn| {
            deliveries::Entity::update_many()
                .col_expr(
                    deliveries::Column::State,
                    Expr::value(DeliveryState::Granted.as_str()),
                )
                .col_expr(
                    deliveries::Column::GameAckReference,
                    Expr::value(ack.reference.clone()),
                )
                .col_expr(
                    deliveries::Column::GrantCalls,
                    Expr::col(deliveries::Column::GrantCalls).add(grant_calls),
                )
                .col_expr(deliveries::Column::LastError, Expr::value(None::<String>))
                .col_expr(deliveries::Column::GrantedAt, Expr::value(now))
                .col_expr(deliveries::Column::UpdatedAt, Expr::value(now))
                .filter(deliveries::Column::OrderId.eq(id.to_string()))
                .exec(txn)
                .await
                .map_err(classify)?;
            // The `order.paid` event has done its job.
            outbox::Entity::update_many()
                .col_expr(outbox::Column::PublishedAt, Expr::value(now))
                .filter(outbox::Column::OrderId.eq(id.to_string()))
                .filter(outbox::Column::Kind.eq("order.paid"))
                .filter(outbox::Column::PublishedAt.is_null())
                .exec(txn)
                .await
                .map_err(classify)?;
            let detail = serde_json::json!({
                "grant_id": claim.grant_id,
                "attempt": claim.order.attempt,
                "duplicate": ack.duplicate,
            });
            append_event(txn, id, "order.delivered", "delivery", &detail, now).await
        })
        .await
    }

    async fn record_grant_failed(
        &self,
        claim: &ClaimedOrder,
        failure: &Failure,
        grant_calls: u32,
    ) -> Result<Option<Order>, StorageError> {
        let id = claim.order.id;
        let now = now();
        let (state, next) = if failure.dead {
            (OrderState::Dead, None)
        } else {
            (OrderState::Delivering, Some(failure.retry_at))
        };
        let released = orders::Entity::update_many()
            .col_expr(orders::Column::State, Expr::value(state.as_str()))
            .col_expr(
                orders::Column::LeaseUntil,
                Expr::value(None::<DateTime<Utc>>),
            )
            .col_expr(orders::Column::NextAttemptAt, Expr::value(next))
            .col_expr(
                orders::Column::LastError,
                Expr::value(failure.error.clone()),
            )
            .col_expr(orders::Column::UpdatedAt, Expr::value(now));
        let fence = OrderFence::claimed(claim, OrderState::Delivering);
        self.fenced_transition(fence, released, async |txn| {
            let delivery_state = if failure.dead {
                DeliveryState::Dead
            } else {
                DeliveryState::Granting
            };
            deliveries::Entity::update_many()
                .col_expr(
                    deliveries::Column::State,
                    Expr::value(delivery_state.as_str()),
                )
                .col_expr(
                    deliveries::Column::GrantCalls,
                    Expr::col(deliveries::Column::GrantCalls).add(grant_calls),
                )
                .col_expr(
                    deliveries::Column::LastError,
                    Expr::value(failure.error.clone()),
                )
                .col_expr(deliveries::Column::UpdatedAt, Expr::value(now))
                .filter(deliveries::Column::OrderId.eq(id.to_string()))
                .exec(txn)
                .await
                .map_err(classify)?;
            if failure.dead {
                let detail = serde_json::json!({
                    "attempts": claim.order.attempt,
                    "error": failure.error,
                });
                append_event(txn, id, "order.dead", "delivery", &detail, now).await?;
            }
            Ok(())
        })
        .await
    }

    async fn record_confirmed(
        &self,
        claim: &ClaimedOrder,
        outcome: ConfirmOutcome,
    ) -> Result<Option<Order>, StorageError> {
        let id = claim.order.id;
        let now = now();
        let confirmed = orders::Entity::update_many()
            .col_expr(
                orders::Column::State,
                Expr::value(OrderState::Confirmed.as_str()),
            )
            .col_expr(orders::Column::ConfirmedAt, Expr::value(now))
            .col_expr(
                orders::Column::LeaseUntil,
                Expr::value(None::<DateTime<Utc>>),
            )
            .col_expr(
                orders::Column::NextAttemptAt,
                Expr::value(None::<DateTime<Utc>>),
            )
            .col_expr(orders::Column::LastError, Expr::value(None::<String>))
            .col_expr(orders::Column::UpdatedAt, Expr::value(now));
        let fence = OrderFence::claimed(claim, OrderState::Delivered);
        self.fenced_transition(fence, confirmed, async |txn| {
            let called = i32::from(outcome != ConfirmOutcome::NotApplicable);
            deliveries::Entity::update_many()
                .col_expr(
                    deliveries::Column::State,
                    Expr::value(DeliveryState::Confirmed.as_str()),
                )
                .col_expr(
                    deliveries::Column::ConfirmCalls,
                    Expr::col(deliveries::Column::ConfirmCalls).add(called),
                )
                .col_expr(deliveries::Column::LastError, Expr::value(None::<String>))
                .col_expr(deliveries::Column::ConfirmedAt, Expr::value(now))
                .col_expr(deliveries::Column::UpdatedAt, Expr::value(now))
                .filter(deliveries::Column::OrderId.eq(id.to_string()))
                .exec(txn)
                .await
                .map_err(classify)?;
            let outcome = match outcome {
                ConfirmOutcome::Confirmed => "confirmed",
                ConfirmOutcome::AlreadyConfirmed => "already_confirmed",
                ConfirmOutcome::NotApplicable => "not_applicable",
            };
            let detail = serde_json::json!({ "store": outcome });
            append_event(txn, id, "order.confirmed", "delivery", &detail, now).await
        })
        .await
    }

    async fn record_confirm_failed(
        &self,
        claim: &ClaimedOrder,
        failure: &Failure,
    ) -> Result<Option<Order>, StorageError> {
        let id = claim.order.id;
        let now = now();
        let released = orders::Entity::update_many()
            .col_expr(
                orders::Column::LeaseUntil,
                Expr::value(None::<DateTime<Utc>>),
            )
            .col_expr(orders::Column::NextAttemptAt, Expr::value(failure.retry_at))
            .col_expr(
                orders::Column::LastError,
                Expr::value(failure.error.clone()),
            )
            .col_expr(orders::Column::UpdatedAt, Expr::value(now));
        let fence = OrderFence::claimed(claim, OrderState::Delivered);
        self.fenced_transition(fence, released, async |txn| {
            deliveries::Entity::update_many()
                .col_expr(
                    deliveries::Column::ConfirmCalls,
                    Expr::col(deliveries::Column::ConfirmCalls).add(1),
                )
                .col_expr(
                    deliveries::Column::LastError,
                    Expr::value(failure.error.clone()),
                )
                .col_expr(deliveries::Column::UpdatedAt, Expr::value(now))
                .filter(deliveries::Column::OrderId.eq(id.to_string()))
                .exec(txn)
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn claim_revocation(
        &self,
        order: OrderId,
        lease: Duration,
    ) -> Result<RevocationClaim, StorageError> {
        self.in_transaction(async |txn| {
            let now = now();
            let revocable = [
                OrderState::Paid,
                OrderState::Delivering,
                OrderState::Delivered,
                OrderState::Confirmed,
                OrderState::Dead,
            ]
            .map(OrderState::as_str);
            let claimed = orders::Entity::update_many()
                .col_expr(
                    orders::Column::Attempt,
                    Expr::col(orders::Column::Attempt).add(1),
                )
                .col_expr(orders::Column::LeaseUntil, Expr::value(until(now, lease)))
                .col_expr(orders::Column::UpdatedAt, Expr::value(now))
                .filter(orders::Column::Id.eq(order.to_string()))
                .filter(orders::Column::State.is_in(revocable))
                .filter(lease_free(now))
                .exec(txn)
                .await
                .map_err(classify)?;
            if claimed.rows_affected == 1 {
                let claim = self.claimed(txn, order).await?;
                // A DELIVERING or DEAD order may have been granted by a call whose reply
                // was lost: RevokeItems is safe either way.
                let granted = claim.order.state != OrderState::Paid;
                return Ok(RevocationClaim::Claimed { claim, granted });
            }
            Ok(match read_order(txn, order).await? {
                None => RevocationClaim::NotFound,
                Some(o) if revocable.contains(&o.state.as_str()) => {
                    RevocationClaim::HeldElsewhere(o)
                }
                Some(o) => RevocationClaim::Settled(o),
            })
        })
        .await
    }

    async fn record_revoked(
        &self,
        claim: &ClaimedOrder,
        refunded: bool,
        ack: Option<&GameAck>,
        revoked: &RevokedDetail,
    ) -> Result<Option<Order>, StorageError> {
        let id = claim.order.id;
        let now = now();
        let state = if refunded {
            OrderState::Refunded
        } else {
            OrderState::Revoked
        };
        let taken_back = orders::Entity::update_many()
            .col_expr(orders::Column::State, Expr::value(state.as_str()))
            .col_expr(
                orders::Column::LeaseUntil,
                Expr::value(None::<DateTime<Utc>>),
            )
            .col_expr(
                orders::Column::NextAttemptAt,
                Expr::value(None::<DateTime<Utc>>),
            )
            .col_expr(orders::Column::UpdatedAt, Expr::value(now));
        self.fenced_transition(OrderFence::held(claim), taken_back, async |txn| {
            if ack.is_some() {
                deliveries::Entity::update_many()
                    .col_expr(
                        deliveries::Column::State,
                        Expr::value(DeliveryState::Revoked.as_str()),
                    )
                    .col_expr(
                        deliveries::Column::RevokeId,
                        Expr::value(iap_domain::delivery::revoke_id(id)),
                    )
                    .col_expr(deliveries::Column::RevokedAt, Expr::value(now))
                    .col_expr(deliveries::Column::UpdatedAt, Expr::value(now))
                    .filter(deliveries::Column::OrderId.eq(id.to_string()))
                    .exec(txn)
                    .await
                    .map_err(classify)?;
            }
            let kind = if refunded {
                "order.refunded"
            } else {
                "order.revoked"
            };
            let mut detail = serde_json::json!({
                "from": claim.order.state.as_str(),
                "game_reference": ack.map(|a| a.reference.clone()),
                "units": revoked.units,
            });
            // Only what there is to tell: earlier partial revocations, the store's own words.
            if revoked.partially_revoked > 0 {
                detail["partially_revoked_before"] = revoked.partially_revoked.into();
            }
            if let Some(source) = &revoked.cause.source {
                detail["store_source"] = source.as_str().into();
            }
            if let Some(reason) = &revoked.cause.reason {
                detail["store_reason"] = reason.as_str().into();
            }
            append_event(txn, id, kind, "delivery", &detail, now).await
        })
        .await
    }

    async fn partial_revocations(
        &self,
        order: OrderId,
    ) -> Result<iap_domain::refunds::PartialRevocations, StorageError> {
        self.partial_state(order).await
    }

    async fn begin_partial_revocation(
        &self,
        claim: &ClaimedOrder,
        step: &iap_domain::refunds::PartialStep,
    ) -> Result<bool, StorageError> {
        self.begin_partial(claim, step).await
    }

    async fn record_partial_revoked(
        &self,
        claim: &ClaimedOrder,
        step: Option<&iap_domain::refunds::PartialStep>,
        ack: Option<&GameAck>,
    ) -> Result<Option<Order>, StorageError> {
        self.record_partial(claim, step, ack).await
    }

    async fn delivery(&self, order: OrderId) -> Result<Option<DeliveryRecord>, StorageError> {
        deliveries::Entity::find_by_id(order.to_string())
            .one(self.connection())
            .await
            .map_err(classify)?
            .map(record_from_row)
            .transpose()
    }

    async fn reserve_due_orders(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        hold: Duration,
    ) -> Result<Vec<OrderId>, StorageError> {
        let txn = self.connection().begin().await.map_err(classify)?;
        let result = self.reserve_in(&txn, now, limit, hold).await;
        finish(txn, result).await
    }

    async fn due_orders(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OrderId>, StorageError> {
        let rows: Vec<String> = due_orders_query(now, limit)
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|id| {
                OrderId::parse(id).map_err(|e| StorageError::Corrupt(format!("orders.id: {e}")))
            })
            .collect()
    }
}

impl Storage {
    async fn reserve_in(
        &self,
        txn: &DatabaseTransaction,
        now: DateTime<Utc>,
        limit: u32,
        hold: Duration,
    ) -> Result<Vec<OrderId>, StorageError> {
        let mut query = due_orders_query(now, limit);
        if self.backend() == sea_orm::DatabaseBackend::Postgres {
            query = query.lock_with_behavior(
                sea_orm::sea_query::LockType::Update,
                sea_orm::sea_query::LockBehavior::SkipLocked,
            );
        }
        let ids: Vec<String> = query.into_tuple().all(txn).await.map_err(classify)?;
        if !ids.is_empty() {
            orders::Entity::update_many()
                .col_expr(orders::Column::NextAttemptAt, Expr::value(until(now, hold)))
                .filter(orders::Column::Id.is_in(ids.clone()))
                .exec(txn)
                .await
                .map_err(classify)?;
        }
        ids.iter()
            .map(|id| {
                OrderId::parse(id).map_err(|e| StorageError::Corrupt(format!("orders.id: {e}")))
            })
            .collect()
    }
}

/// Paid orders a sweeper should work on now. Only PAID, DELIVERING and DELIVERED rows are read
/// (PostgreSQL picks the index on `state`; see docs/benchmarks.md for the plan), so a pass costs
/// the same with ten thousand or a million settled orders.
fn due_orders_query(now: DateTime<Utc>, limit: u32) -> sea_orm::Select<orders::Entity> {
    orders::Entity::find()
        .select_only()
        .column(orders::Column::Id)
        .filter(orders::Column::State.is_in([
            OrderState::Paid.as_str(),
            OrderState::Delivering.as_str(),
            OrderState::Delivered.as_str(),
        ]))
        .filter(lease_free(now))
        .filter(
            Condition::any()
                .add(orders::Column::NextAttemptAt.is_null())
                .add(orders::Column::NextAttemptAt.lte(now)),
        )
        .order_by_asc(orders::Column::NextAttemptAt)
        .limit(u64::from(limit))
}

/// How far behind delivery is: the oldest paid order not yet granted, and the oldest granted one
/// not yet confirmed at the store (Google refunds purchases unacknowledged after three days).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Orders PAID or DELIVERING.
    pub undelivered: u64,
    /// When the oldest of them was paid.
    pub oldest_undelivered_paid_at: Option<DateTime<Utc>>,
    /// Orders DELIVERED, not CONFIRMED.
    pub unconfirmed: u64,
    /// When the oldest of them was delivered.
    pub oldest_unconfirmed_delivered_at: Option<DateTime<Utc>>,
}

impl Storage {
    /// The delivery backlog (reads only unsettled rows, through the index on `state`).
    pub async fn backlog(&self) -> Result<Backlog, StorageError> {
        use sea_orm::sea_query::{Expr as E, Func};
        let undelivered: Option<(i64, Option<DateTime<Utc>>)> = orders::Entity::find()
            .select_only()
            .expr(E::col(orders::Column::Id).count())
            .expr(Func::min(E::col(orders::Column::PaidAt)))
            .filter(
                orders::Column::State
                    .is_in([OrderState::Paid.as_str(), OrderState::Delivering.as_str()]),
            )
            .into_tuple()
            .one(self.connection())
            .await
            .map_err(classify)?;
        let unconfirmed: Option<(i64, Option<DateTime<Utc>>)> = orders::Entity::find()
            .select_only()
            .expr(E::col(orders::Column::Id).count())
            .expr(Func::min(E::col(orders::Column::DeliveredAt)))
            .filter(orders::Column::State.eq(OrderState::Delivered.as_str()))
            .into_tuple()
            .one(self.connection())
            .await
            .map_err(classify)?;
        let (undelivered, oldest_undelivered_paid_at) = undelivered.unwrap_or((0, None));
        let (unconfirmed, oldest_unconfirmed_delivered_at) = unconfirmed.unwrap_or((0, None));
        Ok(Backlog {
            undelivered: u64::try_from(undelivered).unwrap_or(0),
            oldest_undelivered_paid_at,
            unconfirmed: u64::try_from(unconfirmed).unwrap_or(0),
            oldest_unconfirmed_delivered_at,
        })
    }

    /// The sweeper's query as SQL with its values inlined, for `EXPLAIN` in benchmarks and by
    /// operators.
    pub fn due_orders_sql(&self, now: DateTime<Utc>, limit: u32) -> String {
        use sea_orm::QueryTrait;
        due_orders_query(now, limit)
            .build(self.backend())
            .to_string()
    }
}
