//! AdminStore: the reads behind operators' listings, lookups, histories and stats, and the
//! writes of their actions. Each write that changes an order is conditional on the state and
//! attempt the use case read and commits together with its outbox event and `audit_log` row;
//! `UNIQUE(action, idempotency_key)` on `audit_log` makes a compensation happen once per key.
//! Portable SQL only (PostgreSQL and SQLite).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Func, OnConflict};
use sea_orm::{
    ActiveValue, ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait, UpdateMany,
};

use iap_domain::admin::{
    AdminStore, AuditEntry, CompensationRecord, CompensationTarget, HistoryEvent, IdKind,
    InboxEntry, KeysetPosition, OrderFilter, OrderStats, PriorCompensation, SortDirection,
    StorePurchaseView,
};
use iap_domain::ports::StorageError;
use iap_domain::{
    AppId, BindingReason, DeliveryState, Money, Order, OrderId, OrderState, Platform,
};

use crate::convert::{order_from_row, order_to_row, parse};
use crate::entity::{
    audit_log, deliveries, notifications, orders, outbox, store_transactions, subscriptions,
};
use crate::orders::{append_event, read_order};
use crate::transition::{OrderFence, fenced_update, finish, now};
use crate::{Storage, classify};

/// Subscription states that entitle the user now.
const ENTITLED_SUBSCRIPTION_STATES: [&str; 2] = ["active", "grace"];

fn corrupt(what: &str) -> impl Fn(iap_domain::IdError) -> StorageError + '_ {
    move |e| StorageError::Corrupt(format!("{what}: {e}"))
}

fn inbox_entry(row: notifications::Model) -> Result<InboxEntry, StorageError> {
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

/// Rows after `after` in `direction`: `(at, id)` strictly beyond the position.
fn after_position<C: ColumnTrait>(
    at_column: C,
    id_column: C,
    direction: SortDirection,
    after: KeysetPosition,
) -> Condition {
    let id = after.id.to_string();
    match direction {
        SortDirection::OldestFirst => Condition::any().add(at_column.gt(after.at)).add(
            Condition::all()
                .add(at_column.eq(after.at))
                .add(id_column.gt(id)),
        ),
        SortDirection::NewestFirst => Condition::any().add(at_column.lt(after.at)).add(
            Condition::all()
                .add(at_column.eq(after.at))
                .add(id_column.lt(id)),
        ),
    }
}

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

/// The update that makes an order due now as an operator's action, from `from`: DEAD and
/// CREATED become PAID, PAID and DELIVERING stay (a live lease is left alone).
fn due_now(from: OrderState, at: DateTime<Utc>) -> UpdateMany<orders::Entity> {
    let mut update = orders::Entity::update_many()
        .col_expr(orders::Column::NextAttemptAt, Expr::value(at))
        .col_expr(orders::Column::UpdatedAt, Expr::value(at));
    if matches!(from, OrderState::Dead | OrderState::Created) {
        update = update.col_expr(
            orders::Column::State,
            Expr::value(OrderState::Paid.as_str()),
        );
    }
    if from == OrderState::Dead {
        // A fresh series of attempts: counted from here, while the fencing token goes on.
        update = update.col_expr(
            orders::Column::AttemptsBeforeRedelivery,
            Expr::col(orders::Column::Attempt).into(),
        );
    }
    if from == OrderState::Created {
        // Never paid in our books: the operator's word is the payment, and the game is told
        // the grant is a compensation.
        update = update
            .col_expr(orders::Column::PaidAt, Expr::value(at))
            .col_expr(
                orders::Column::BindingReason,
                Expr::value(BindingReason::ManualCompensation.as_str()),
            )
            .col_expr(orders::Column::Manual, Expr::value(true));
    }
    update
}

/// After a DEAD order was made due: the grant record keeps its grant id; only its state says it
/// is queued again. Nothing for an order from any other state.
async fn requeue_grant_record<C: ConnectionTrait>(
    conn: &C,
    id: OrderId,
    from: OrderState,
    at: DateTime<Utc>,
) -> Result<(), StorageError> {
    if from != OrderState::Dead {
        return Ok(());
    }
    deliveries::Entity::update_many()
        .col_expr(
            deliveries::Column::State,
            Expr::value(DeliveryState::Pending.as_str()),
        )
        .col_expr(deliveries::Column::UpdatedAt, Expr::value(at))
        .filter(deliveries::Column::OrderId.eq(id.to_string()))
        .filter(deliveries::Column::State.eq(DeliveryState::Dead.as_str()))
        .exec(conn)
        .await
        .map_err(classify)?;
    Ok(())
}

/// Makes an order due now (see [`due_now`]), fenced on the state and attempt the operator's use
/// case read. Returns whether it applied.
async fn make_due<C: ConnectionTrait>(
    conn: &C,
    fence: OrderFence,
    at: DateTime<Utc>,
) -> Result<bool, StorageError> {
    if !fence.apply(conn, due_now(fence.state, at)).await? {
        return Ok(false);
    }
    requeue_grant_record(conn, fence.id, fence.state, at).await?;
    Ok(true)
}

#[async_trait]
impl AdminStore for Storage {
    async fn list_orders(
        &self,
        filter: &OrderFilter,
        states: &[OrderState],
        direction: SortDirection,
        after: Option<KeysetPosition>,
        limit: u32,
    ) -> Result<Vec<Order>, StorageError> {
        let mut query = orders::Entity::find()
            .filter(orders::Column::State.is_in(states.iter().map(|s| s.as_str())));
        if let Some(platform) = filter.platform {
            query = query.filter(orders::Column::Platform.eq(platform.as_str()));
        }
        if let Some(app) = &filter.app_id {
            query = query.filter(orders::Column::AppId.eq(app.as_str()));
        }
        if let Some(user) = &filter.user_id {
            query = query.filter(orders::Column::UserId.eq(user.as_str()));
        }
        if let Some(before) = filter.updated_before {
            query = query.filter(orders::Column::UpdatedAt.lte(before));
        }
        if let Some(after) = after {
            query = query.filter(after_position(
                orders::Column::UpdatedAt,
                orders::Column::Id,
                direction,
                after,
            ));
        }
        query = match direction {
            SortDirection::OldestFirst => query
                .order_by_asc(orders::Column::UpdatedAt)
                .order_by_asc(orders::Column::Id),
            SortDirection::NewestFirst => query
                .order_by_desc(orders::Column::UpdatedAt)
                .order_by_desc(orders::Column::Id),
        };
        query
            .limit(u64::from(limit))
            .all(self.connection())
            .await
            .map_err(classify)?
            .into_iter()
            .map(order_from_row)
            .collect()
    }

    async fn find_by_store_id(&self, id: &str) -> Result<Vec<(OrderId, IdKind)>, StorageError> {
        use store_transactions::Column as T;
        let rows = store_transactions::Entity::find()
            .filter(
                Condition::any()
                    .add(T::StoreTransactionId.eq(id))
                    .add(T::OriginalTransactionId.eq(id))
                    .add(T::PurchaseToken.eq(id))
                    .add(T::StoreOrderId.eq(id)),
            )
            .order_by_asc(T::VerifiedAt)
            .limit(200)
            .all(self.connection())
            .await
            .map_err(classify)?;
        let mut found = Vec::with_capacity(rows.len());
        for row in rows {
            // The most telling name first: Google's charge id is often the token itself, and a
            // renewal shares its original transaction id with its siblings.
            let kind = if row.purchase_token.as_deref() == Some(id) {
                IdKind::PurchaseToken
            } else if row.store_order_id.as_deref() == Some(id) {
                IdKind::StoreOrderId
            } else if row.store_transaction_id == id {
                IdKind::StoreTransactionId
            } else {
                IdKind::OriginalTransactionId
            };
            let order =
                OrderId::parse(&row.order_id).map_err(corrupt("store_transactions.order_id"))?;
            if !found.iter().any(|(o, _)| *o == order) {
                found.push((order, kind));
            }
        }
        Ok(found)
    }

    async fn store_purchase(
        &self,
        order: &Order,
    ) -> Result<Option<StorePurchaseView>, StorageError> {
        use store_transactions::Column as T;
        let mut query = store_transactions::Entity::find();
        query = match &order.store_transaction_id {
            Some(id) => query
                .filter(T::Platform.eq(order.platform.as_str()))
                .filter(T::StoreTransactionId.eq(id.as_str())),
            None => query.filter(T::OrderId.eq(order.id.to_string())),
        };
        let Some(row) = query.one(self.connection()).await.map_err(classify)? else {
            return Ok(None);
        };
        let price = match (row.price_currency, row.price_amount_micros) {
            (Some(currency), Some(amount_micros)) => Some(Money {
                currency,
                amount_micros,
            }),
            _ => None,
        };
        let mut subjects = vec![row.store_transaction_id.clone()];
        subjects.extend(row.original_transaction_id.clone());
        subjects.extend(row.purchase_token.clone());
        subjects.extend(row.store_order_id.clone());
        Ok(Some(StorePurchaseView {
            platform: parse("store_transactions.platform", &row.platform)?,
            store_transaction_id: row.store_transaction_id,
            original_transaction_id: row.original_transaction_id,
            store_order_id: row.store_order_id,
            product_id: row.product_id,
            quantity: u32::try_from(row.quantity).unwrap_or(0),
            environment: parse("store_transactions.environment", &row.environment)?,
            purchased_at: row.purchased_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            price,
            user_id: row.user_id,
            verified_at: row.verified_at,
            notification_subjects: subjects,
        }))
    }

    async fn purchase_tokens(&self, orders: &[OrderId]) -> Result<Vec<String>, StorageError> {
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        let tokens: Vec<Option<String>> = store_transactions::Entity::find()
            .select_only()
            .column(store_transactions::Column::PurchaseToken)
            .filter(
                store_transactions::Column::OrderId.is_in(orders.iter().map(ToString::to_string)),
            )
            .filter(store_transactions::Column::PurchaseToken.is_not_null())
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(classify)?;
        Ok(tokens.into_iter().flatten().collect())
    }

    async fn order_events(&self, order: OrderId) -> Result<Vec<HistoryEvent>, StorageError> {
        let id = order.to_string();
        let outbox_rows = outbox::Entity::find()
            .filter(outbox::Column::OrderId.eq(id.as_str()))
            .order_by_asc(outbox::Column::CreatedAt)
            .order_by_asc(outbox::Column::Id)
            .all(self.connection())
            .await
            .map_err(classify)?;
        let audit_rows = audit_log::Entity::find()
            .filter(audit_log::Column::OrderId.eq(id.as_str()))
            .order_by_asc(audit_log::Column::CreatedAt)
            .all(self.connection())
            .await
            .map_err(classify)?;
        let mut events: Vec<HistoryEvent> = outbox_rows
            .into_iter()
            .map(|row| HistoryEvent {
                at: row.created_at,
                kind: row.kind,
                detail: row.detail,
                actor: row.actor,
            })
            .collect();
        events.extend(audit_rows.into_iter().map(|row| HistoryEvent {
            at: row.created_at,
            kind: format!("audit.{}", row.action),
            detail: format!("reason: {}; request: {}", row.reason, row.detail),
            actor: row.actor,
        }));
        Ok(events)
    }

    async fn notifications_about(
        &self,
        subjects: &[String],
    ) -> Result<Vec<InboxEntry>, StorageError> {
        if subjects.is_empty() {
            return Ok(Vec::new());
        }
        notifications::Entity::find()
            .filter(notifications::Column::Subject.is_in(subjects.iter().map(String::as_str)))
            .order_by_asc(notifications::Column::ReceivedAt)
            .limit(200)
            .all(self.connection())
            .await
            .map_err(classify)?
            .into_iter()
            .map(inbox_entry)
            .collect()
    }

    async fn requeue_order(
        &self,
        order: OrderId,
        from: OrderState,
        attempt: i32,
        audit: &AuditEntry,
    ) -> Result<Option<Order>, StorageError> {
        let at = now();
        let fence = OrderFence {
            id: order,
            state: from,
            attempt,
        };
        self.fenced_transition(fence, due_now(from, at), async |txn| {
            requeue_grant_record(txn, order, from, at).await?;
            admin_event(txn, order, audit, at).await?;
            insert_audit(txn, audit, at).await.map(drop)
        })
        .await
    }

    async fn prior_compensation(
        &self,
        key: &str,
    ) -> Result<Option<PriorCompensation>, StorageError> {
        prior_in(self.connection(), key).await
    }

    async fn record_compensation(
        &self,
        target: &CompensationTarget,
        audit: &AuditEntry,
    ) -> Result<CompensationRecord, StorageError> {
        let owned = self.connection().begin().await.map_err(classify)?;
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

    async fn record_audit(&self, audit: &AuditEntry) -> Result<(), StorageError> {
        insert_audit(self.connection(), audit, now())
            .await
            .map(drop)
    }

    async fn list_notifications(
        &self,
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
            .all(self.connection())
            .await
            .map_err(classify)?
            .into_iter()
            .map(inbox_entry)
            .collect()
    }

    async fn replay_notification(
        &self,
        id: &str,
        audit: &AuditEntry,
    ) -> Result<Option<InboxEntry>, StorageError> {
        self.in_transaction(async |txn| {
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

    async fn order_stats(&self, app: Option<&AppId>) -> Result<OrderStats, StorageError> {
        let conn = self.connection();
        let app_filter = |column: orders::Column| match app {
            Some(app) => Condition::all().add(column.eq(app.as_str())),
            None => Condition::all(),
        };
        let counts: Vec<(String, String, i64)> = orders::Entity::find()
            .select_only()
            .column(orders::Column::State)
            .column(orders::Column::Platform)
            .expr(Expr::col(orders::Column::Id).count())
            .filter(app_filter(orders::Column::AppId))
            .group_by(orders::Column::State)
            .group_by(orders::Column::Platform)
            .into_tuple()
            .all(conn)
            .await
            .map_err(classify)?;
        let mut by_state = Vec::with_capacity(counts.len());
        for (state, platform, n) in counts {
            by_state.push((
                parse("orders.state", &state)?,
                parse("orders.platform", &platform)?,
                u64::try_from(n).unwrap_or(0),
            ));
        }
        by_state.sort();
        let oldest = |states: &[OrderState], column: orders::Column| {
            orders::Entity::find()
                .select_only()
                .expr(Func::min(Expr::col(column)))
                .filter(orders::Column::State.is_in(states.iter().map(|s| s.as_str())))
                .filter(app_filter(orders::Column::AppId))
                .into_tuple::<Option<DateTime<Utc>>>()
                .one(conn)
        };
        let oldest_undelivered_since = oldest(
            &[OrderState::Paid, OrderState::Delivering],
            orders::Column::PaidAt,
        )
        .await
        .map_err(classify)?
        .flatten();
        let oldest_unconfirmed_since =
            oldest(&[OrderState::Delivered], orders::Column::DeliveredAt)
                .await
                .map_err(classify)?
                .flatten();
        let mut unprocessed =
            notifications::Entity::find().filter(notifications::Column::ProcessedAt.is_null());
        if let Some(app) = app {
            unprocessed = unprocessed.filter(notifications::Column::AppId.eq(app.as_str()));
        }
        let unprocessed_notifications = unprocessed.count(conn).await.map_err(classify)?;
        let mut entitled = subscriptions::Entity::find()
            .filter(subscriptions::Column::State.is_in(ENTITLED_SUBSCRIPTION_STATES));
        if let Some(app) = app {
            entitled = entitled.filter(subscriptions::Column::AppId.eq(app.as_str()));
        }
        let active_subscriptions = entitled.count(conn).await.map_err(classify)?;
        Ok(OrderStats {
            by_state,
            oldest_undelivered_since,
            oldest_unconfirmed_since,
            unprocessed_notifications,
            active_subscriptions,
        })
    }
}
