//! `InAppPurchaseData`, the client's or the store's: its signature checked, its fields read as
//! a purchase or a subscription state.

use serde_json::Value;

use iap_domain::ports::StoreError;
use iap_domain::purchase::{PurchaseStatus, VerifiedPurchase};
use iap_domain::subscriptions::{SubscriptionSnapshot, SubscriptionState};
use iap_domain::{Environment, Money, Platform, ProductId, ProductKind, RejectReason};

use crate::signature::IapPublicKey;

use super::{number, rejected, string};

/// Signature-checks signed data and parses it.
pub(crate) fn signed_json(
    key: &IapPublicKey,
    data: &str,
    signature: &str,
    algorithm: Option<&str>,
) -> Result<Value, StoreError> {
    if !key.verifies(data, signature, algorithm) {
        return Err(rejected(
            RejectReason::SignatureInvalid,
            "signature_invalid",
            "InAppPurchaseData is not signed by the app's key",
        ));
    }
    serde_json::from_str(data).map_err(|_| {
        rejected(
            RejectReason::Malformed,
            "purchase_data_malformed",
            "InAppPurchaseData is not JSON",
        )
    })
}

pub(crate) fn to_verified(
    token: &str,
    product: &ProductId,
    data: Value,
    consumed_known: Option<bool>,
) -> Result<VerifiedPurchase, StoreError> {
    let status = match number(&data["purchaseState"]) {
        Some(0) => PurchaseStatus::Purchased,
        Some(3) => PurchaseStatus::Pending,
        Some(2) => PurchaseStatus::Refunded {
            at: None,
            reason: None,
        },
        _ => PurchaseStatus::Cancelled,
    };
    let kind = match number(&data["kind"]) {
        Some(0) => Some(ProductKind::Consumable),
        Some(1) => Some(ProductKind::NonConsumable),
        Some(2) => Some(ProductKind::AutoRenewable),
        Some(3) => Some(ProductKind::NonRenewing),
        _ => None,
    };
    let order_id = string(&data["orderId"]).ok_or_else(|| {
        rejected(
            RejectReason::Malformed,
            "field_missing",
            "InAppPurchaseData has no orderId",
        )
    })?;
    // price is the real price × 100; Money carries micros.
    let price = match (string(&data["currency"]), number(&data["price"])) {
        (Some(currency), Some(hundredths)) => Some(Money {
            currency,
            amount_micros: hundredths.saturating_mul(10_000),
        }),
        _ => None,
    };
    let millis = |v: &Value| number(v).and_then(chrono::DateTime::from_timestamp_millis);
    Ok(VerifiedPurchase {
        platform: Platform::Huawei,
        environment: if number(&data["purchaseType"]) == Some(0) {
            Environment::Sandbox
        } else {
            Environment::Production
        },
        store_transaction_id: order_id.clone(),
        original_transaction_id: string(&data["subscriptionId"]),
        purchase_token: Some(token.to_owned()),
        store_order_id: Some(order_id),
        product_id: product.clone(),
        quantity: number(&data["quantity"])
            .and_then(|q| u32::try_from(q).ok())
            .unwrap_or(1)
            .max(1),
        status,
        purchased_at: millis(&data["purchaseTime"]),
        expires_at: millis(&data["expirationDate"]),
        carried_order_id: string(&data["developerPayload"]),
        store_account_id: None,
        is_trial: number(&data["trialFlag"]) == Some(1),
        price,
        kind,
        linked_purchase_token: None,
        acknowledged: None,
        consumed: consumed_known.or_else(|| number(&data["consumptionState"]).map(|c| c == 1)),
        subscription_status: None,
        subscription_group: string(&data["productGroup"]),
        raw: data,
        finish_withheld: false,
        latest_receipt: None,
    })
}

/// A Huawei subscription's state from its InAppPurchaseData: refunded (`purchaseState` 2),
/// valid (`subIsvalid`) within the period or within `graceExpirationTime`, or not valid while
/// Huawei still retries billing (`renewStatus` 1: on hold) or for good (expired).
pub(super) fn subscription_snapshot(latest: VerifiedPurchase) -> SubscriptionSnapshot {
    let now = chrono::Utc::now();
    let data = &latest.raw;
    let millis = |v: &Value| number(v).and_then(chrono::DateTime::from_timestamp_millis);
    let grace_until = millis(&data["graceExpirationTime"]).filter(|g| *g > now);
    let valid = data["subIsvalid"].as_bool().unwrap_or(false);
    let renewing = number(&data["renewStatus"]) == Some(1);
    let state = match (&latest.status, valid) {
        (PurchaseStatus::Refunded { .. }, _) => SubscriptionState::Revoked,
        (PurchaseStatus::Purchased, true)
            if grace_until.is_some() && latest.expires_at.is_none_or(|e| e <= now) =>
        {
            SubscriptionState::InGrace
        }
        (PurchaseStatus::Purchased, true) => SubscriptionState::Active,
        (PurchaseStatus::Purchased, false) if renewing => SubscriptionState::OnHold,
        _ => SubscriptionState::Expired,
    };
    SubscriptionSnapshot {
        state,
        expires_at: latest.expires_at,
        grace_until,
        auto_renew: Some(renewing),
        auto_renew_product_id: None,
        price_change_state: number(&data["priceConsentStatus"]).map(|s| s.to_string()),
        latest,
    }
}
