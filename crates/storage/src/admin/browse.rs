//! Browsing: order listings, lookups by any store id, the store purchase behind an order, and an
//! order's history (outbox events, audit entries, the notifications filed under it).

use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use iap_domain::admin::{
    HistoryEvent, IdKind, InboxEntry, KeysetPosition, OrderFilter, SortDirection, StorePurchaseView,
};
use iap_domain::ports::StorageError;
use iap_domain::{Money, Order, OrderId, OrderState};

use super::corrupt;
use super::inbox::inbox_entry;
use super::paging::after_position;
use crate::convert::{order_from_row, parse};
use crate::entity::{audit_log, notifications, orders, outbox, store_transactions};
use crate::{Storage, classify};

pub(super) async fn list_orders(
    storage: &Storage,
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
        .all(storage.connection())
        .await
        .map_err(classify)?
        .into_iter()
        .map(order_from_row)
        .collect()
}

pub(super) async fn find_by_store_id(
    storage: &Storage,
    id: &str,
) -> Result<Vec<(OrderId, IdKind)>, StorageError> {
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
        .all(storage.connection())
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

pub(super) async fn store_purchase(
    storage: &Storage,
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
    let Some(row) = query.one(storage.connection()).await.map_err(classify)? else {
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

pub(super) async fn purchase_tokens(
    storage: &Storage,
    orders: &[OrderId],
) -> Result<Vec<String>, StorageError> {
    if orders.is_empty() {
        return Ok(Vec::new());
    }
    let tokens: Vec<Option<String>> = store_transactions::Entity::find()
        .select_only()
        .column(store_transactions::Column::PurchaseToken)
        .filter(store_transactions::Column::OrderId.is_in(orders.iter().map(ToString::to_string)))
        .filter(store_transactions::Column::PurchaseToken.is_not_null())
        .into_tuple()
        .all(storage.connection())
        .await
        .map_err(classify)?;
    Ok(tokens.into_iter().flatten().collect())
}

pub(super) async fn order_events(
    storage: &Storage,
    order: OrderId,
) -> Result<Vec<HistoryEvent>, StorageError> {
    let id = order.to_string();
    let outbox_rows = outbox::Entity::find()
        .filter(outbox::Column::OrderId.eq(id.as_str()))
        .order_by_asc(outbox::Column::CreatedAt)
        .order_by_asc(outbox::Column::Id)
        .all(storage.connection())
        .await
        .map_err(classify)?;
    let audit_rows = audit_log::Entity::find()
        .filter(audit_log::Column::OrderId.eq(id.as_str()))
        .order_by_asc(audit_log::Column::CreatedAt)
        .all(storage.connection())
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

pub(super) async fn notifications_about(
    storage: &Storage,
    subjects: &[String],
) -> Result<Vec<InboxEntry>, StorageError> {
    if subjects.is_empty() {
        return Ok(Vec::new());
    }
    notifications::Entity::find()
        .filter(notifications::Column::Subject.is_in(subjects.iter().map(String::as_str)))
        .order_by_asc(notifications::Column::ReceivedAt)
        .limit(200)
        .all(storage.connection())
        .await
        .map_err(classify)?
        .into_iter()
        .map(inbox_entry)
        .collect()
}
