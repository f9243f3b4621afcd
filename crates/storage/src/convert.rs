//! Row ↔ domain conversions. A row that does not parse is reported as corrupt, never guessed.

use std::collections::BTreeMap;
use std::str::FromStr;

use iap_domain::ports::StorageError;
use iap_domain::{AppId, Money, Order, OrderId, ProductId, UserId};

use crate::entity::orders;

pub(crate) fn parse<T: FromStr>(what: &str, s: &str) -> Result<T, StorageError>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>()
        .map_err(|e| StorageError::Corrupt(format!("{what}: {e}")))
}

pub(crate) fn parse_opt<T: FromStr>(what: &str, s: Option<&str>) -> Result<Option<T>, StorageError>
where
    T::Err: std::fmt::Display,
{
    s.map(|s| parse(what, s)).transpose()
}

fn corrupt(e: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(e.to_string())
}

pub(crate) fn order_from_row(row: orders::Model) -> Result<Order, StorageError> {
    let metadata: BTreeMap<String, String> = serde_json::from_value(row.metadata)
        .map_err(|e| corrupt(format!("orders.metadata: {e}")))?;
    let expected_price = match (row.expected_currency, row.expected_amount_micros) {
        (Some(currency), Some(amount_micros)) => Some(Money {
            currency,
            amount_micros,
        }),
        _ => None,
    };
    Ok(Order {
        id: OrderId::parse(&row.id).map_err(corrupt)?,
        app_id: AppId::parse(row.app_id).map_err(corrupt)?,
        user_id: UserId::parse(row.user_id).map_err(corrupt)?,
        product_id: ProductId::parse(row.product_id).map_err(corrupt)?,
        platform: parse("orders.platform", &row.platform)?,
        quantity: u32::try_from(row.quantity).map_err(corrupt)?,
        state: parse("orders.state", &row.state)?,
        product_kind: parse("orders.product_kind", &row.product_kind)?,
        environment: parse_opt("orders.environment", row.environment.as_deref())?,
        expected_price,
        store_transaction_id: row.store_transaction_id,
        binding_reason: parse_opt("orders.binding_reason", row.binding_reason.as_deref())?,
        attempt: row.attempt,
        attempts_before_redelivery: row.attempts_before_redelivery,
        reject_reason: parse_opt("orders.reject_reason", row.reject_reason.as_deref())?,
        last_error: row.last_error,
        created_at: row.created_at,
        updated_at: row.updated_at,
        paid_at: row.paid_at,
        delivered_at: row.delivered_at,
        confirmed_at: row.confirmed_at,
        next_attempt_at: row.next_attempt_at,
        lease_until: row.lease_until,
        metadata,
        manual: row.manual,
        idempotency_key: row.idempotency_key,
    })
}

pub(crate) fn order_to_row(order: &Order) -> orders::Model {
    orders::Model {
        id: order.id.to_string(),
        app_id: order.app_id.to_string(),
        user_id: order.user_id.to_string(),
        product_id: order.product_id.to_string(),
        platform: order.platform.as_str().to_owned(),
        quantity: i32::try_from(order.quantity).unwrap_or(i32::MAX),
        state: order.state.as_str().to_owned(),
        product_kind: order.product_kind.as_str().to_owned(),
        environment: order.environment.map(|e| e.as_str().to_owned()),
        expected_currency: order.expected_price.as_ref().map(|p| p.currency.clone()),
        expected_amount_micros: order.expected_price.as_ref().map(|p| p.amount_micros),
        store_transaction_id: order.store_transaction_id.clone(),
        binding_reason: order.binding_reason.map(|b| b.as_str().to_owned()),
        attempt: order.attempt,
        attempts_before_redelivery: order.attempts_before_redelivery,
        reject_reason: order.reject_reason.map(|r| r.as_str().to_owned()),
        last_error: order.last_error.clone(),
        created_at: order.created_at,
        updated_at: order.updated_at,
        paid_at: order.paid_at,
        delivered_at: order.delivered_at,
        confirmed_at: order.confirmed_at,
        next_attempt_at: order.next_attempt_at,
        lease_until: order.lease_until,
        metadata: serde_json::to_value(&order.metadata).unwrap_or_default(),
        manual: order.manual,
        idempotency_key: order.idempotency_key.clone(),
    }
}
