//! Huawei's control API (`/emulator/huawei/...`): an app's credentials, purchases (answering
//! what the IAP SDK hands the app), and the life cycle of purchases and subscriptions, each
//! returning the v2 notification Huawei would send.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{
    MONTH_MS, PKCS1, PSS, Purchase, Subscription, one, order_notification, record_cancel, signed,
    subscription_notification,
};
use crate::keys::random_token;
use crate::lock::lock;
use crate::state::Shared;

pub(super) async fn credentials(
    State(shared): State<Arc<Shared>>,
    Path(app_id): Path<String>,
) -> Json<Value> {
    let app = lock(&shared.huawei).app(&app_id);
    Json(json!({
        "app_id": app_id,
        "client_id": app_id,
        "client_secret": app.client_secret,
        "public_key_base64": app.key.public_spki_base64(),
    }))
}

#[derive(Debug, Deserialize)]
pub(super) struct MakePurchase {
    app_id: String,
    #[serde(default)]
    package_name: Option<String>,
    product_id: String,
    /// 0 consumable, 1 non-consumable, 2 auto-renewable subscription.
    kind: u8,
    #[serde(default)]
    developer_payload: String,
    #[serde(default)]
    sandbox: bool,
    /// Price × 100 (Huawei's unit).
    #[serde(default = "default_price")]
    price: i64,
    #[serde(default = "default_currency")]
    currency: String,
    #[serde(default)]
    signature_algorithm: Option<String>,
    #[serde(default)]
    pending: bool,
    /// Units of a consumable bought in one payment.
    #[serde(default = "one")]
    quantity: u32,
    /// Huawei's `accountFlag`: 1 for an AppTouch (carrier) account.
    #[serde(default)]
    account_flag: Option<u8>,
}

fn default_price() -> i64 {
    600
}
fn default_currency() -> String {
    "CNY".to_owned()
}

fn new_order_id() -> String {
    format!(
        "{}{}",
        Utc::now().format("%Y%m%d%H%M%S"),
        random_token(9)
            .to_ascii_lowercase()
            .replace(['-', '_'], "0")
    )
}

pub(super) async fn make_purchase(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<MakePurchase>,
) -> Response {
    shared.count("control.huawei.purchase");
    if request.kind > 2 || request.product_id.is_empty() || request.app_id.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "app_id, product_id and kind 0, 1 or 2 are required",
        )
            .into_response();
    }
    let algorithm = match request.signature_algorithm.as_deref() {
        None | Some(PKCS1) => PKCS1,
        Some(PSS) => PSS,
        Some(_) => {
            return (
                StatusCode::BAD_REQUEST,
                "signature_algorithm must be SHA256WithRSA or SHA256WithRSA/PSS",
            )
                .into_response();
        }
    };
    let now = Utc::now().timestamp_millis();
    // Real tokens are 92 characters.
    let token = format!("00000173{}", random_token(63))
        .chars()
        .take(92)
        .collect::<String>();
    let order_id = new_order_id();
    let subscription = (request.kind == 2).then(|| Subscription {
        id: format!(
            "{}",
            1_000_000_000_000_u64 + u64::try_from(now).unwrap_or(0) % 1_000_000_000_000
        ),
        original_purchase_time_ms: now,
        expiration_ms: now + MONTH_MS,
        renew_status: 1,
        periods: 1,
        grace_expiration_ms: None,
        cancel_time_ms: None,
        expiration_intent: None,
    });
    let purchase = Purchase {
        package: request
            .package_name
            .unwrap_or_else(|| format!("com.example.app{}", request.app_id)),
        app_id: request.app_id,
        product_id: request.product_id,
        token: token.clone(),
        order_id: order_id.clone(),
        kind: request.kind,
        purchase_time_ms: now,
        state: if request.pending { 3 } else { 0 },
        consumed: false,
        sandbox: request.sandbox,
        developer_payload: request.developer_payload,
        price: request.price,
        currency: request.currency,
        quantity: if subscription.is_some() {
            1
        } else {
            request.quantity.max(1)
        },
        apptouch: request.account_flag == Some(1),
        subscription,
    };
    let mut huawei = lock(&shared.huawei);
    let (data, signature) = signed(&mut huawei, &purchase, algorithm);
    let subscription_id = purchase.subscription.as_ref().map(|s| s.id.clone());
    // Huawei notifies payment success (ORDER 1) and a first subscription (INITIAL_BUY, 0).
    let notification = match (purchase.state, &purchase.subscription) {
        (3, _) => Value::Null,
        (_, Some(_)) => subscription_notification(&mut huawei, &purchase, 0),
        (_, None) => order_notification(&mut huawei, &purchase, 1),
    };
    huawei.purchases.insert(token.clone(), purchase);
    Json(json!({
        "purchase_token": token,
        "order_id": order_id,
        "subscription_id": subscription_id,
        "in_app_purchase_data": data,
        "data_signature": signature,
        "signature_algorithm": algorithm,
        "notification": notification,
    }))
    .into_response()
}

/// `GET /emulator/huawei/purchases/{token}`: what Huawei holds about a purchase, for a test's
/// checks (`purchase_state` as in InAppPurchaseData: 0 purchased, 1 cancelled, 2 refunded,
/// 3 pending; `confirmed` once the Order service's confirm was called).
pub(super) async fn purchase_view(
    State(shared): State<Arc<Shared>>,
    Path(token): Path<String>,
) -> Response {
    let huawei = lock(&shared.huawei);
    let Some(p) = huawei.purchases.get(&token) else {
        return (StatusCode::NOT_FOUND, "unknown purchase token").into_response();
    };
    Json(json!({
        "app_id": p.app_id,
        "product_id": p.product_id,
        "order_id": p.order_id,
        "purchase_state": p.state,
        "confirmed": p.consumed,
    }))
    .into_response()
}

pub(super) async fn purchase_control(
    State(shared): State<Arc<Shared>>,
    Path((token, action)): Path<(String, String)>,
) -> Response {
    shared.count(&format!("control.huawei.purchase.{action}"));
    let mut huawei = lock(&shared.huawei);
    let Some(p) = huawei.purchases.get_mut(&token) else {
        return (StatusCode::NOT_FOUND, "unknown purchase token").into_response();
    };
    let notification = match action.as_str() {
        "complete" if p.state == 3 => {
            p.state = 0;
            {
                let p = p.clone();
                order_notification(&mut huawei, &p, 1)
            }
        }
        "refund" if p.state == 0 => {
            p.state = 2;
            let p = p.clone();
            record_cancel(&mut huawei, &p, 0);
            if p.subscription.is_some() {
                subscription_notification(&mut huawei, &p, 1)
            } else {
                order_notification(&mut huawei, &p, 2)
            }
        }
        // The app consumed it on the device (consumeOwnedPurchase), without our server.
        "consume" if p.state == 0 && !p.consumed && p.subscription.is_none() => {
            p.consumed = true;
            Value::Null
        }
        "complete" | "refund" | "consume" => {
            return (
                StatusCode::CONFLICT,
                "the purchase is not in a state for that",
            )
                .into_response();
        }
        _ => {
            return (StatusCode::NOT_FOUND, "actions: complete, refund, consume").into_response();
        }
    };
    Json(json!({ "purchase_token": token, "notification": notification })).into_response()
}

pub(super) async fn subscription_control(
    State(shared): State<Arc<Shared>>,
    Path((subscription_id, action)): Path<(String, String)>,
) -> Response {
    shared.count(&format!("control.huawei.subscription.{action}"));
    let now = Utc::now().timestamp_millis();
    let mut huawei = lock(&shared.huawei);
    let Some(p) = huawei.purchase_by_subscription(&subscription_id) else {
        return (StatusCode::NOT_FOUND, "unknown subscription id").into_response();
    };
    let Some(s) = p.subscription.as_mut() else {
        return (StatusCode::NOT_FOUND, "unknown subscription id").into_response();
    };
    // statusUpdateNotification.notificationType (platforms/huawei.md §4).
    let notification_type = match action.as_str() {
        "renew" => {
            s.expiration_ms = s.expiration_ms.max(now) + MONTH_MS;
            s.periods += 1;
            s.grace_expiration_ms = None;
            p.order_id = new_order_id();
            p.purchase_time_ms = now;
            7
        }
        "enter_grace" => {
            s.grace_expiration_ms = Some(now + 3 * 24 * 3600 * 1000);
            s.expiration_ms = now;
            8
        }
        "hold" => {
            s.grace_expiration_ms = None;
            s.expiration_ms = now - 1000;
            9
        }
        "recover" => {
            s.expiration_ms = now + MONTH_MS;
            s.periods += 1;
            s.grace_expiration_ms = None;
            p.order_id = new_order_id();
            p.purchase_time_ms = now;
            6
        }
        "cancel" => {
            s.renew_status = 0;
            s.cancel_time_ms = Some(now);
            s.expiration_intent = Some(1);
            5
        }
        "expire" => {
            s.renew_status = 0;
            s.expiration_ms = now - 1000;
            s.grace_expiration_ms = None;
            s.expiration_intent = Some(4);
            5
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                "actions: renew, enter_grace, hold, recover, cancel, expire",
            )
                .into_response();
        }
    };
    let p = p.clone();
    let notification = subscription_notification(&mut huawei, &p, notification_type);
    Json(json!({ "purchase_token": p.token, "order_id": p.order_id, "notification": notification }))
        .into_response()
}
