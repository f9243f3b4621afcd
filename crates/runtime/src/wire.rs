//! Conversions between the `iap.v1` wire types and the domain. Enum values are matched one by one
//! (not by name), so a renamed variant fails to compile instead of silently mapping to 0.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

use iap_domain::usecases::create_order::PurchaseBinding;
use iap_domain::{
    BindingReason, Environment, Money, Order, OrderState, Platform, ProductKind, RejectReason,
};
use iap_proto::v1 as pb;

/// A timestamp on the wire.
pub fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A platform from the wire; `UNSPECIFIED` and unknown numbers are `None`.
pub fn platform_from_wire(value: i32) -> Option<Platform> {
    match pb::Platform::try_from(value).ok()? {
        pb::Platform::Apple => Some(Platform::Apple),
        pb::Platform::Google => Some(Platform::Google),
        pb::Platform::Huawei => Some(Platform::Huawei),
        pb::Platform::Unspecified => None,
    }
}

/// A platform on the wire.
pub fn platform(value: Platform) -> pb::Platform {
    match value {
        Platform::Apple => pb::Platform::Apple,
        Platform::Google => pb::Platform::Google,
        Platform::Huawei => pb::Platform::Huawei,
    }
}

/// An order state on the wire.
pub fn order_state(value: OrderState) -> pb::OrderState {
    match value {
        OrderState::Created => pb::OrderState::Created,
        OrderState::Paid => pb::OrderState::Paid,
        OrderState::Delivering => pb::OrderState::Delivering,
        OrderState::Delivered => pb::OrderState::Delivered,
        OrderState::Confirmed => pb::OrderState::Confirmed,
        OrderState::Rejected => pb::OrderState::Rejected,
        OrderState::Refunded => pb::OrderState::Refunded,
        OrderState::Revoked => pb::OrderState::Revoked,
        OrderState::Dead => pb::OrderState::Dead,
    }
}

/// An order state from the wire; `UNSPECIFIED` and unknown numbers are `None`.
pub fn order_state_from_wire(value: i32) -> Option<OrderState> {
    Some(match pb::OrderState::try_from(value).ok()? {
        pb::OrderState::Unspecified => return None,
        pb::OrderState::Created => OrderState::Created,
        pb::OrderState::Paid => OrderState::Paid,
        pb::OrderState::Delivering => OrderState::Delivering,
        pb::OrderState::Delivered => OrderState::Delivered,
        pb::OrderState::Confirmed => OrderState::Confirmed,
        pb::OrderState::Rejected => OrderState::Rejected,
        pb::OrderState::Refunded => OrderState::Refunded,
        pb::OrderState::Revoked => OrderState::Revoked,
        pb::OrderState::Dead => OrderState::Dead,
    })
}

/// A product kind on the wire.
pub fn product_kind(value: ProductKind) -> pb::ProductKind {
    match value {
        ProductKind::Consumable => pb::ProductKind::Consumable,
        ProductKind::NonConsumable => pb::ProductKind::NonConsumable,
        ProductKind::AutoRenewable => pb::ProductKind::AutoRenewableSubscription,
        ProductKind::NonRenewing => pb::ProductKind::NonRenewingSubscription,
    }
}

/// An environment on the wire.
pub fn environment(value: Environment) -> pb::Environment {
    match value {
        Environment::Production => pb::Environment::Production,
        Environment::Sandbox => pb::Environment::Sandbox,
    }
}

/// A binding reason on the wire.
pub fn binding_reason(value: BindingReason) -> pb::BindingReason {
    match value {
        BindingReason::PurchaseCarriedOrderId => pb::BindingReason::PurchaseCarriedOrderId,
        BindingReason::CallerOrderId => pb::BindingReason::CallerOrderId,
        BindingReason::MatchedUnpaidOrder => pb::BindingReason::MatchedUnpaidOrder,
        BindingReason::CreatedAtVerification => pb::BindingReason::CreatedAtVerification,
        BindingReason::StoreReconciliation => pb::BindingReason::StoreReconciliation,
        BindingReason::StoreNotification => pb::BindingReason::StoreNotification,
        BindingReason::ManualCompensation => pb::BindingReason::ManualCompensation,
        BindingReason::SubscriptionRenewal => pb::BindingReason::SubscriptionRenewal,
        BindingReason::BoundOrderAlreadyPaid => pb::BindingReason::BoundOrderAlreadyPaid,
        BindingReason::PaidQuantityDiffers => pb::BindingReason::PaidQuantityDiffers,
        BindingReason::CompensationMatched => pb::BindingReason::CompensationMatched,
        BindingReason::CompensationTopUp => pb::BindingReason::CompensationTopUp,
        BindingReason::ClaimedByOperator => pb::BindingReason::ClaimedByOperator,
        BindingReason::RefundReversed => pb::BindingReason::RefundReversed,
    }
}

/// A rejection reason on the wire.
pub fn reject_reason(value: RejectReason) -> pb::RejectReason {
    match value {
        RejectReason::Malformed => pb::RejectReason::Malformed,
        RejectReason::SignatureInvalid => pb::RejectReason::SignatureInvalid,
        RejectReason::BundleMismatch => pb::RejectReason::BundleMismatch,
        RejectReason::EnvironmentMismatch => pb::RejectReason::EnvironmentMismatch,
        RejectReason::SandboxNotAllowed => pb::RejectReason::SandboxNotAllowed,
        RejectReason::ReplayedForOtherUser => pb::RejectReason::ReplayedForOtherUser,
        RejectReason::NotPaid => pb::RejectReason::NotPaid,
        RejectReason::Pending => pb::RejectReason::Pending,
        RejectReason::Refunded => pb::RejectReason::Refunded,
        RejectReason::ProductMismatch => pb::RejectReason::ProductMismatch,
        RejectReason::PriceMismatch => pb::RejectReason::PriceMismatch,
        RejectReason::NotFoundAtStore => pb::RejectReason::NotFoundAtStore,
        RejectReason::OrderMismatch => pb::RejectReason::OrderMismatch,
        RejectReason::Expired => pb::RejectReason::Expired,
        RejectReason::UnknownProduct => pb::RejectReason::UnknownProduct,
    }
}

/// Money on the wire.
pub fn money(value: &Money) -> pb::Money {
    pb::Money {
        currency_code: value.currency.clone(),
        amount_micros: value.amount_micros,
    }
}

/// Money from the wire (validated by the use case).
pub fn money_from_wire(value: pb::Money) -> Money {
    Money {
        currency: value.currency_code,
        amount_micros: value.amount_micros,
    }
}

/// An order on the wire.
pub fn order(value: &Order) -> pb::Order {
    pb::Order {
        order_id: value.id.to_string(),
        app_id: value.app_id.to_string(),
        user_id: value.user_id.to_string(),
        product_id: value.product_id.to_string(),
        platform: platform(value.platform).into(),
        quantity: i32::try_from(value.quantity).unwrap_or(i32::MAX),
        state: order_state(value.state).into(),
        product_kind: product_kind(value.product_kind).into(),
        environment: value.environment.map_or(0, |e| environment(e).into()),
        expected_price: value.expected_price.as_ref().map(money),
        store_transaction_id: value.store_transaction_id.clone().unwrap_or_default(),
        binding_reason: value.binding_reason.map_or(0, |b| binding_reason(b).into()),
        attempt: value.attempt,
        reject_reason: value.reject_reason.map_or(0, |r| reject_reason(r).into()),
        last_error: value.last_error.clone().unwrap_or_default(),
        created_at: Some(timestamp(value.created_at)),
        updated_at: Some(timestamp(value.updated_at)),
        paid_at: value.paid_at.map(timestamp),
        delivered_at: value.delivered_at.map(timestamp),
        confirmed_at: value.confirmed_at.map(timestamp),
        next_attempt_at: value.next_attempt_at.map(timestamp),
        metadata: value.metadata.clone().into_iter().collect(),
        manual: value.manual,
    }
}

/// The purchase binding on the wire.
pub fn purchase_binding(value: PurchaseBinding) -> pb::PurchaseBinding {
    pb::PurchaseBinding {
        apple_app_account_token: value.apple_app_account_token,
        google_obfuscated_account_id: value.google_obfuscated_account_id,
        google_obfuscated_profile_id: value.google_obfuscated_profile_id,
        huawei_developer_payload: value.huawei_developer_payload,
    }
}

/// A delivery state on the wire.
pub fn delivery_state(value: iap_domain::DeliveryState) -> pb::DeliveryState {
    use iap_domain::DeliveryState as D;
    match value {
        D::Pending => pb::DeliveryState::Pending,
        D::Granting => pb::DeliveryState::Granting,
        D::Granted => pb::DeliveryState::Granted,
        D::Confirmed => pb::DeliveryState::Confirmed,
        D::Dead => pb::DeliveryState::Dead,
        D::Revoked => pb::DeliveryState::Revoked,
    }
}

/// A grant record on the wire.
pub fn delivery(value: &iap_domain::delivery::DeliveryRecord) -> pb::Delivery {
    let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    pb::Delivery {
        order_id: value.order_id.to_string(),
        grant_id: value.grant_id.clone(),
        state: delivery_state(value.state).into(),
        grant_calls: count(value.grant_calls),
        game_ack_reference: value.game_ack_reference.clone().unwrap_or_default(),
        confirm_calls: count(value.confirm_calls),
        last_error: value.last_error.clone().unwrap_or_default(),
        created_at: Some(timestamp(value.created_at)),
        granted_at: value.granted_at.map(timestamp),
        confirmed_at: value.confirmed_at.map(timestamp),
        revoked_at: value.revoked_at.map(timestamp),
    }
}

/// Where the grant of an order stands, from the order alone (before a delivery row exists).
pub fn delivery_state_of(order: &Order) -> pb::DeliveryState {
    match order.state {
        OrderState::Created | OrderState::Paid | OrderState::Rejected => pb::DeliveryState::Pending,
        OrderState::Delivering => pb::DeliveryState::Granting,
        OrderState::Delivered => pb::DeliveryState::Granted,
        OrderState::Confirmed => pb::DeliveryState::Confirmed,
        OrderState::Dead => pb::DeliveryState::Dead,
        OrderState::Refunded | OrderState::Revoked => pb::DeliveryState::Revoked,
    }
}
