//! Huawei's records — apps with their client secrets and signing keys, access tokens,
//! purchases and subscriptions, cancelled orders — and their wire shapes: InAppPurchaseData,
//! its signature, and the v2 ORDER and SUBSCRIPTION notifications.

use std::collections::HashMap;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::keys::{RsaKey, random_token};

pub(super) const PSS: &str = "SHA256WithRSA/PSS";
pub(super) const PKCS1: &str = "SHA256WithRSA";
pub(super) const MONTH_MS: i64 = 30 * 24 * 3600 * 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct App {
    pub(super) client_secret: String,
    pub(super) key: RsaKey,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Purchase {
    pub(super) app_id: String,
    pub(super) package: String,
    pub(super) product_id: String,
    pub(super) token: String,
    pub(super) order_id: String,
    pub(super) kind: u8,
    pub(super) purchase_time_ms: i64,
    pub(super) state: i8,
    pub(super) consumed: bool,
    pub(super) sandbox: bool,
    pub(super) developer_payload: String,
    pub(super) price: i64,
    pub(super) currency: String,
    /// Units bought in one payment (InAppPurchaseData `quantity`).
    #[serde(default = "one")]
    pub(super) quantity: u32,
    /// Paid with an AppTouch (carrier) account (`accountFlag` 1): known only to the AppTouch
    /// site, as at Huawei.
    #[serde(default)]
    pub(super) apptouch: bool,
    pub(super) subscription: Option<Subscription>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Subscription {
    pub(super) id: String,
    pub(super) original_purchase_time_ms: i64,
    pub(super) expiration_ms: i64,
    pub(super) renew_status: u8,
    pub(super) periods: u32,
    pub(super) grace_expiration_ms: Option<i64>,
    pub(super) cancel_time_ms: Option<i64>,
    pub(super) expiration_intent: Option<u8>,
}

/// Huawei's side of the emulator.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct HuaweiStore {
    pub(super) apps: HashMap<String, App>,
    #[serde(skip)]
    pub(super) access_tokens: HashMap<String, (String, i64)>,
    pub(super) purchases: HashMap<String, Purchase>,
    pub(super) cancelled: Vec<(i64, bool, Value)>,
    /// Notifications made since the last request finished, for the push dispatcher.
    #[serde(skip)]
    pub(crate) outbox: Vec<Value>,
}

impl HuaweiStore {
    pub(super) fn app(&mut self, app_id: &str) -> App {
        self.apps
            .entry(app_id.to_owned())
            .or_insert_with(|| App {
                client_secret: random_token(24),
                key: RsaKey::generate(3072),
            })
            .clone()
    }

    /// An app's client secret and public key (generated on first use).
    pub(crate) fn credentials(&mut self, app_id: &str) -> (String, String) {
        let app = self.app(app_id);
        (app.client_secret, app.key.public_spki_base64())
    }

    pub(super) fn purchase_by_subscription(
        &mut self,
        subscription_id: &str,
    ) -> Option<&mut Purchase> {
        self.purchases.values_mut().find(|p| {
            p.subscription
                .as_ref()
                .is_some_and(|s| s.id == subscription_id)
        })
    }
}

pub(super) fn in_app_purchase_data(p: &Purchase) -> String {
    let mut data = json!({
        "autoRenewing": p.subscription.as_ref().is_some_and(|s| s.renew_status == 1),
        "orderId": p.order_id,
        "packageName": p.package,
        "applicationId": p.app_id.parse::<i64>().unwrap_or(0),
        "kind": p.kind,
        "productId": p.product_id,
        "productName": p.product_id,
        "purchaseTime": p.purchase_time_ms,
        "purchaseTimeMillis": p.purchase_time_ms,
        "purchaseState": p.state,
        "developerPayload": p.developer_payload,
        "quantity": p.quantity,
        "purchaseToken": p.token,
        "consumptionState": i32::from(p.consumed),
        "confirmed": i32::from(p.consumed),
        "currency": p.currency,
        "price": p.price,
        "country": "CN",
        "payOrderId": if p.sandbox { format!("SandBox_{}", p.order_id) } else { format!("pay{}", p.order_id) },
        "payType": "4",
    });
    // Absent in production, 0 for sandbox purchases.
    if p.sandbox {
        data["purchaseType"] = json!(0);
    }
    // Present only for AppTouch accounts.
    if p.apptouch {
        data["accountFlag"] = json!(1);
    }
    if let Some(s) = &p.subscription {
        let now = Utc::now().timestamp_millis();
        data["subscriptionId"] = json!(s.id);
        data["oriSubscriptionId"] = json!(s.id);
        data["lastOrderId"] = json!(p.order_id);
        data["productGroup"] = json!("premium");
        data["oriPurchaseTime"] = json!(s.original_purchase_time_ms);
        data["expirationDate"] = json!(s.expiration_ms);
        data["renewStatus"] = json!(s.renew_status);
        data["subIsvalid"] =
            json!(s.expiration_ms > now || s.grace_expiration_ms.is_some_and(|g| g > now));
        data["quantity"] = json!(1);
        data["numOfPeriods"] = json!(s.periods);
        data["trialFlag"] = json!(0);
        data["introductoryFlag"] = json!(0);
        data["retryFlag"] = json!(i32::from(s.grace_expiration_ms.is_some()));
        if let Some(g) = s.grace_expiration_ms {
            data["graceExpirationTime"] = json!(g);
        }
        if let Some(t) = s.cancel_time_ms {
            data["cancelTime"] = json!(t);
        }
        if let Some(i) = s.expiration_intent {
            data["expirationIntent"] = json!(i);
        }
    }
    data.to_string()
}

pub(super) fn signed(huawei: &mut HuaweiStore, p: &Purchase, algorithm: &str) -> (String, String) {
    let data = in_app_purchase_data(p);
    let key = huawei.app(&p.app_id).key;
    let signature = key.sign_sha256_base64(data.as_bytes(), algorithm == PSS);
    (data, signature)
}

pub(super) fn record_cancel(huawei: &mut HuaweiStore, p: &Purchase, source: u8) {
    let now = Utc::now().timestamp_millis();
    huawei.cancelled.push((
        now,
        p.subscription.is_some(),
        json!({
            "orderId": p.order_id,
            "productId": p.product_id,
            "purchaseToken": p.token,
            "purchaseTime": p.purchase_time_ms,
            "cancelledTime": now,
            "cancelledSource": source,
            "cancelledReason": 1,
            "_appId": p.app_id,
            "_appTouch": p.apptouch,
        }),
    ));
}

pub(super) fn one() -> u32 {
    1
}

/// The v2 ORDER notification (unsigned, per Huawei).
pub(super) fn order_notification(
    huawei: &mut HuaweiStore,
    p: &Purchase,
    notification_type: u8,
) -> Value {
    let body = json!({
        "version": "v2",
        "eventType": "ORDER",
        "notifyTime": Utc::now().timestamp_millis(),
        "applicationId": p.app_id,
        "orderNotification": {
            "version": "v2",
            "notificationType": notification_type,
            "purchaseToken": p.token,
            "productId": p.product_id,
        },
    });
    huawei.outbox.push(body.clone());
    body
}

/// The v2 SUBSCRIPTION notification, signed like the data it carries.
pub(super) fn subscription_notification(
    huawei: &mut HuaweiStore,
    p: &Purchase,
    notification_type: u8,
) -> Value {
    let Some(s) = &p.subscription else {
        return Value::Null;
    };
    let (receipt, receipt_signature) = signed(huawei, p, PKCS1);
    let mut inner = json!({
        "environment": if p.sandbox { "SandBox" } else { "PROD" },
        "notificationType": notification_type,
        "subscriptionId": s.id,
        "purchaseToken": p.token,
        "orderId": p.order_id,
        "productId": p.product_id,
        "applicationId": p.app_id,
        "autoRenewStatus": s.renew_status,
        "latestReceipt": p.token,
        "latestReceiptInfo": receipt,
        "latestReceiptInfoSignature": receipt_signature,
    });
    if let Some(t) = s.cancel_time_ms {
        inner["cancellationDate"] = json!(t);
    }
    if let Some(i) = s.expiration_intent {
        inner["expirationIntent"] = json!(i);
    }
    let status = inner.to_string();
    let signature = huawei
        .app(&p.app_id)
        .key
        .sign_sha256_base64(status.as_bytes(), false);
    let body = json!({
        "version": "v2",
        "eventType": "SUBSCRIPTION",
        "notifyTime": Utc::now().timestamp_millis(),
        "applicationId": p.app_id,
        "subNotification": {
            "version": "v2",
            "statusUpdateNotification": status,
            "notificationSignature": signature,
            "signatureAlgorithm": PKCS1,
        },
    });
    huawei.outbox.push(body.clone());
    body
}
