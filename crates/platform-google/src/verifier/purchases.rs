//! Google's answers read as purchases and subscription states: productsv2 for one-time
//! products, subscriptionsv2 for subscriptions.

use serde_json::Value;

use iap_domain::ports::StoreError;
use iap_domain::purchase::{PurchaseStatus, SubscriptionStatus, VerifiedPurchase};
use iap_domain::subscriptions::{SubscriptionSnapshot, SubscriptionState};
use iap_domain::{Environment, Money, Platform, ProductId, ProductKind, RejectReason};

use super::{rejected, string, time};

pub(crate) fn product_purchase(
    token: &str,
    product: &ProductId,
    v2: Value,
) -> Result<VerifiedPurchase, StoreError> {
    let line = v2["productLineItem"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["productId"] == product.as_str()))
        .ok_or_else(|| {
            rejected(
                RejectReason::ProductMismatch,
                "product_mismatch",
                "the purchase is for another product",
            )
        })?;
    let status = match v2["purchaseStateContext"]["purchaseState"].as_str() {
        Some("PURCHASED") => PurchaseStatus::Purchased,
        Some("PENDING") => PurchaseStatus::Pending,
        _ => PurchaseStatus::Cancelled,
    };
    let order_id =
        string(&v2["orderId"]).filter(|id| iap_domain::store_ids::order_id("orderId", id).is_ok());
    let offer = &line["productOfferDetails"];
    let mut quantity = offer["quantity"]
        .as_u64()
        .and_then(|q| u32::try_from(q).ok())
        .unwrap_or(1)
        .max(1);
    // A refund does not change `purchaseState`: Google lowers `refundableQuantity` (and lists
    // the purchase among voided purchases). Nothing left means nothing to grant; a partial
    // refund before redemption leaves only the rest to grant.
    let mut status = status;
    if let Some(left) = offer["refundableQuantity"]
        .as_u64()
        .and_then(|q| u32::try_from(q).ok())
    {
        if left == 0 && status == PurchaseStatus::Purchased {
            status = PurchaseStatus::Refunded {
                at: None,
                reason: Some("refundable_quantity_zero".to_owned()),
            };
        } else if left > 0 {
            quantity = quantity.min(left);
        }
    }
    Ok(VerifiedPurchase {
        platform: Platform::Google,
        environment: if v2.get("testPurchaseContext").is_some() {
            Environment::Sandbox
        } else {
            Environment::Production
        },
        // The replay key is Google's own id of the charge as Google returned it (one order per
        // purchase), not the text the client sent; only a purchase without an order (Google:
        // "may not be set if there is no order") falls back to the token, already checked
        // against Google's alphabet at the edge.
        store_transaction_id: order_id.clone().unwrap_or_else(|| token.to_owned()),
        original_transaction_id: None,
        purchase_token: Some(token.to_owned()),
        store_order_id: order_id,
        product_id: product.clone(),
        quantity,
        status,
        purchased_at: time(&v2["purchaseCompletionTime"]),
        expires_at: None,
        carried_order_id: string(&v2["obfuscatedExternalProfileId"]),
        store_account_id: string(&v2["obfuscatedExternalAccountId"]),
        is_trial: false,
        price: None,
        kind: None,
        linked_purchase_token: None,
        acknowledged: Some(v2["acknowledgementState"] == "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"),
        consumed: Some(offer["consumptionState"] == "CONSUMPTION_STATE_CONSUMED"),
        subscription_status: None,
        subscription_group: None,
        raw: v2,
        finish_withheld: false,
        latest_receipt: None,
    })
}

pub(crate) fn subscription_purchase(
    token: &str,
    product: &ProductId,
    v2: Value,
) -> Result<VerifiedPurchase, StoreError> {
    let line = v2["lineItems"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["productId"] == product.as_str()))
        .ok_or_else(|| {
            rejected(
                RejectReason::ProductMismatch,
                "product_mismatch",
                "the subscription is for another product",
            )
        })?;
    let state = v2["subscriptionState"].as_str().unwrap_or("");
    let (status, subscription_status) = match state {
        "SUBSCRIPTION_STATE_PENDING" => (PurchaseStatus::Pending, None),
        "SUBSCRIPTION_STATE_PENDING_PURCHASE_CANCELED" => (PurchaseStatus::Cancelled, None),
        "SUBSCRIPTION_STATE_IN_GRACE_PERIOD" => (
            PurchaseStatus::Purchased,
            Some(SubscriptionStatus::InGracePeriod),
        ),
        "SUBSCRIPTION_STATE_ON_HOLD" => {
            (PurchaseStatus::Purchased, Some(SubscriptionStatus::OnHold))
        }
        "SUBSCRIPTION_STATE_PAUSED" => {
            (PurchaseStatus::Purchased, Some(SubscriptionStatus::Paused))
        }
        "SUBSCRIPTION_STATE_EXPIRED" => {
            (PurchaseStatus::Purchased, Some(SubscriptionStatus::Expired))
        }
        _ => (PurchaseStatus::Purchased, Some(SubscriptionStatus::Active)),
    };
    // Each renewal is its own order: the order id of the paid period, not the token, is the
    // replay key. In grace or on hold Google is still collecting the renewal, and the
    // deprecated top-level `latestOrderId` names that unpaid order (as does
    // `renewalDeclined.pendingOrderId`): only `latestSuccessfulOrderId` names a paid period
    // there, and without it nothing is paid to grant.
    let collecting = matches!(
        state,
        "SUBSCRIPTION_STATE_IN_GRACE_PERIOD" | "SUBSCRIPTION_STATE_ON_HOLD"
    );
    let pending_order =
        string(&v2["inGracePeriodStateContext"]["renewalDeclined"]["pendingOrderId"])
            .or_else(|| string(&v2["onHoldStateContext"]["renewalDeclined"]["pendingOrderId"]));
    let order_id = string(&line["latestSuccessfulOrderId"]).or_else(|| {
        string(&v2["latestOrderId"]).filter(|id| !collecting && pending_order.as_ref() != Some(id))
    });
    let status = if collecting && order_id.is_none() {
        PurchaseStatus::Pending
    } else {
        status
    };
    let price = {
        let price = &line["autoRenewingPlan"]["recurringPrice"];
        // A price beyond i64 micros is no price Google sends; it is dropped, not wrapped.
        let micros = price["units"]
            .as_str()
            .and_then(|u| u.parse::<i64>().ok())
            .and_then(|units| units.checked_mul(1_000_000))
            .and_then(|micros| micros.checked_add(price["nanos"].as_i64().unwrap_or(0) / 1000));
        match (string(&price["currencyCode"]), micros) {
            (Some(currency), Some(amount_micros)) => Some(Money {
                currency,
                amount_micros,
            }),
            _ => None,
        }
    };
    let ids = &v2["externalAccountIdentifiers"];
    Ok(VerifiedPurchase {
        platform: Platform::Google,
        environment: if v2.get("testPurchase").is_some() {
            Environment::Sandbox
        } else {
            Environment::Production
        },
        store_transaction_id: order_id.clone().unwrap_or_else(|| token.to_owned()),
        original_transaction_id: None,
        purchase_token: Some(token.to_owned()),
        store_order_id: order_id,
        product_id: product.clone(),
        quantity: 1,
        status,
        purchased_at: time(&v2["startTime"]),
        expires_at: time(&line["expiryTime"]),
        carried_order_id: string(&ids["obfuscatedExternalProfileId"]),
        // Google names the paying Google account only for Subscribe with Google; otherwise the
        // account id is the one the app set.
        store_account_id: string(&v2["subscribeWithGoogleInfo"]["profileId"])
            .or_else(|| string(&ids["obfuscatedExternalAccountId"])),
        is_trial: line["offerPhase"].get("freeTrial").is_some(),
        price,
        kind: Some(ProductKind::AutoRenewable),
        linked_purchase_token: string(&v2["linkedPurchaseToken"]),
        acknowledged: Some(v2["acknowledgementState"] == "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"),
        consumed: None,
        subscription_status,
        subscription_group: None,
        raw: v2,
        finish_withheld: false,
        latest_receipt: None,
    })
}

/// The store's view of a subscription from `subscriptionsv2.get`. Without a product (RTDN
/// subscription notifications no longer name one) the first line item's is taken.
pub(super) fn subscription_snapshot(
    token: &str,
    product: Option<&ProductId>,
    v2: Value,
) -> Result<SubscriptionSnapshot, StoreError> {
    let items = v2["lineItems"].as_array().cloned().unwrap_or_default();
    let product = match product {
        Some(p) => p.clone(),
        None => items
            .first()
            .and_then(|i| i["productId"].as_str())
            .and_then(|p| ProductId::parse(p).ok())
            .ok_or_else(|| {
                rejected(
                    RejectReason::Malformed,
                    "field_missing",
                    "the subscription has no line item",
                )
            })?,
    };
    let line = items
        .iter()
        .find(|i| i["productId"] == product.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    let latest = subscription_purchase(token, &product, v2)?;
    let state = match (&latest.status, latest.subscription_status) {
        // Pending with a status: in grace or on hold with no paid period named (nothing to
        // grant), the entitlement still as Google says.
        (PurchaseStatus::Purchased | PurchaseStatus::Pending, Some(status)) => status.into(),
        (PurchaseStatus::Refunded { .. }, _) => SubscriptionState::Revoked,
        // Pending, or a pending purchase cancelled: no entitlement.
        _ => SubscriptionState::Expired,
    };
    let plan = &line["autoRenewingPlan"];
    Ok(SubscriptionSnapshot {
        // In grace Google moves expiryTime forward with the grace period.
        grace_until: (state == SubscriptionState::InGrace)
            .then_some(latest.expires_at)
            .flatten(),
        expires_at: latest.expires_at,
        auto_renew: plan["autoRenewEnabled"].as_bool(),
        auto_renew_product_id: None,
        price_change_state: string(&plan["priceChangeDetails"]["priceChangeState"]),
        state,
        latest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_state(state: &str, successful: Option<&str>) -> Value {
        let mut line = serde_json::json!({
            "productId": "vip_monthly",
            "expiryTime": "2099-01-01T00:00:00Z",
        });
        if let Some(id) = successful {
            line["latestSuccessfulOrderId"] = serde_json::json!(id);
        }
        serde_json::json!({
            "subscriptionState": state,
            "startTime": "2026-01-01T00:00:00Z",
            // Deprecated, still sent: the newest order, here the renewal Google is collecting.
            "latestOrderId": "GPA.1111-2222-3333-44444..1",
            "inGracePeriodStateContext": { "renewalDeclined": { "pendingOrderId": "GPA.1111-2222-3333-44444..1" } },
            "lineItems": [line],
        })
    }

    #[test]
    fn in_grace_or_on_hold_the_unpaid_renewal_order_is_never_the_period_granted() {
        let product = ProductId::parse("vip_monthly").unwrap();
        for state in [
            "SUBSCRIPTION_STATE_IN_GRACE_PERIOD",
            "SUBSCRIPTION_STATE_ON_HOLD",
        ] {
            // The paid period is the one named.
            let paid = subscription_purchase(
                "tok",
                &product,
                in_state(state, Some("GPA.1111-2222-3333-44444")),
            )
            .unwrap();
            assert_eq!(paid.store_transaction_id, "GPA.1111-2222-3333-44444");
            // No paid period named: the unpaid renewal is not taken for one.
            let unpaid = subscription_purchase("tok", &product, in_state(state, None)).unwrap();
            assert_ne!(unpaid.store_transaction_id, "GPA.1111-2222-3333-44444..1");
            assert_eq!(unpaid.status, PurchaseStatus::Pending, "{state}");
        }
        // Active (the renewal collected), the latest order is the paid one.
        let mut renewed = in_state("SUBSCRIPTION_STATE_ACTIVE", None);
        renewed
            .as_object_mut()
            .unwrap()
            .remove("inGracePeriodStateContext");
        let active = subscription_purchase("tok", &product, renewed).unwrap();
        assert_eq!(active.store_transaction_id, "GPA.1111-2222-3333-44444..1");
        assert_eq!(active.status, PurchaseStatus::Purchased);
    }
}
