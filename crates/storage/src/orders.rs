//! OrderRepository: creating and reading orders.

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter,
};

use iap_domain::ports::{CreateOutcome, OrderRepository, StorageError};
use iap_domain::{AppId, NewOrder, Order, OrderId, OrderState, UserId};

use crate::convert::{order_from_row, order_to_row};
use crate::entity::{orders, outbox};
use crate::{Storage, classify};

/// One order, read on `conn` (the pool, or inside the caller's transaction).
pub(crate) async fn read_order<C: ConnectionTrait>(
    conn: &C,
    id: OrderId,
) -> Result<Option<Order>, StorageError> {
    orders::Entity::find_by_id(id.to_string())
        .one(conn)
        .await
        .map_err(classify)?
        .map(order_from_row)
        .transpose()
}

/// Appends an event to the order's history (the outbox), on `conn`: callers pass their
/// transaction, so the event commits with the change it describes.
pub(crate) async fn append_event<C: ConnectionTrait>(
    conn: &C,
    order: OrderId,
    kind: &str,
    actor: &str,
    detail: &serde_json::Value,
    at: DateTime<Utc>,
) -> Result<(), StorageError> {
    let row = outbox::ActiveModel {
        id: ActiveValue::Set(uuid::Uuid::now_v7().to_string()),
        order_id: ActiveValue::Set(order.to_string()),
        kind: ActiveValue::Set(kind.to_owned()),
        detail: ActiveValue::Set(detail.to_string()),
        actor: ActiveValue::Set(actor.to_owned()),
        created_at: ActiveValue::Set(at),
        published_at: ActiveValue::Set(None),
    };
    outbox::Entity::insert(row)
        .exec_without_returning(conn)
        .await
        .map_err(classify)?;
    Ok(())
}

#[async_trait]
impl OrderRepository for Storage {
    async fn create_order(&self, new: NewOrder) -> Result<CreateOutcome, StorageError> {
        // Microsecond precision is what PostgreSQL keeps; truncating here makes the returned
        // order equal to what a later read gives.
        let now = Utc::now().trunc_subsecs(6);
        let key = new.idempotency_key.clone();
        let (app, user) = (new.app_id.clone(), new.user_id.clone());
        let order = new.into_order(now);
        let insert = orders::Entity::insert(order_to_row(&order).into_active_model())
            .on_conflict(
                sea_orm::sea_query::OnConflict::columns([
                    orders::Column::AppId,
                    orders::Column::UserId,
                    orders::Column::IdempotencyKey,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(self.connection())
            .await
            .map_err(classify)?;
        if insert == 1 {
            return Ok(CreateOutcome::Created(order));
        }
        // Only the idempotency key can conflict (ids are fresh UUIDs).
        let Some(key) = key else {
            return Err(StorageError::Other("order insert affected no row".into()));
        };
        let existing = orders::Entity::find()
            .filter(orders::Column::AppId.eq(app.as_str()))
            .filter(orders::Column::UserId.eq(user.as_str()))
            .filter(orders::Column::IdempotencyKey.eq(key))
            .one(self.connection())
            .await
            .map_err(classify)?
            .ok_or_else(|| StorageError::Other("idempotency key conflict without a row".into()))?;
        Ok(CreateOutcome::Existing(order_from_row(existing)?))
    }

    async fn get_order(&self, id: OrderId) -> Result<Option<Order>, StorageError> {
        read_order(self.connection(), id).await
    }

    async fn count_unpaid_orders(&self, app: &AppId, user: &UserId) -> Result<u64, StorageError> {
        orders::Entity::find()
            .filter(orders::Column::AppId.eq(app.as_str()))
            .filter(orders::Column::UserId.eq(user.as_str()))
            .filter(orders::Column::State.eq(OrderState::Created.as_str()))
            .count(self.connection())
            .await
            .map_err(classify)
    }
}
