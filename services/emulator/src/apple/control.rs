//! The App Store's control API (`/emulator/apple/...`): its keys and shared secrets, purchases
//! (answering what StoreKit hands the app), and the life cycle of transactions and
//! subscriptions, each returning the notification Apple would send.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{AppleStore, Env, Renewal, Transaction, receipt_blob};
use crate::keys::random_token;
use crate::lock::lock;
use crate::state::Shared;

const DAY_MS: i64 = 24 * 3600 * 1000;
const MONTH_MS: i64 = 30 * DAY_MS;

pub(super) async fn root_der(State(shared): State<Arc<Shared>>) -> Response {
    let der = lock(&shared.apple).keys.root_der.clone();
    (
        [(axum::http::header::CONTENT_TYPE, "application/pkix-cert")],
        der,
    )
        .into_response()
}

pub(super) async fn api_key(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let apple = lock(&shared.apple);
    Json(json!({
        "issuer_id": apple.keys.api_issuer_id,
        "key_id": apple.keys.api_key_id,
        "private_key_pem": apple.keys.api_private_key_pem,
    }))
}

pub(super) async fn shared_secret(
    State(shared): State<Arc<Shared>>,
    Path(bundle): Path<String>,
) -> Json<Value> {
    let secret = lock(&shared.apple).shared_secret(&bundle);
    Json(json!({ "bundle_id": bundle, "shared_secret": secret }))
}

#[derive(Debug, Deserialize)]
pub(super) struct MakePurchase {
    bundle_id: String,
    product_id: String,
    product_type: String,
    #[serde(default = "one")]
    quantity: u32,
    #[serde(default)]
    app_account_token: Option<String>,
    #[serde(default = "sandbox")]
    environment: String,
    #[serde(default = "default_price")]
    price: i64,
    #[serde(default = "default_currency")]
    currency: String,
    #[serde(default = "default_app_apple_id")]
    app_apple_id: i64,
    #[serde(default)]
    free_trial: bool,
    #[serde(default = "default_customer")]
    customer: String,
    #[serde(default)]
    subscription_group: Option<String>,
}

fn one() -> u32 {
    1
}
fn sandbox() -> String {
    "Sandbox".to_owned()
}
fn default_price() -> i64 {
    990
}
fn default_currency() -> String {
    "USD".to_owned()
}
fn default_app_apple_id() -> i64 {
    crate::DEFAULT_APP_APPLE_ID
}

fn default_customer() -> String {
    "customer-1".to_owned()
}

const PRODUCT_TYPES: &[&str] = &[
    "Consumable",
    "Non-Consumable",
    "Auto-Renewable Subscription",
    "Non-Renewing Subscription",
];

fn purchase_reply(apple: &AppleStore, t: &Transaction, notification: &Value) -> Value {
    let ids: Vec<String> = apple
        .transactions
        .iter()
        .filter(|o| {
            o.bundle_id == t.bundle_id && o.customer == t.customer && o.environment == t.environment
        })
        .filter(|o| !(o.product_type == "Consumable" && o.finished))
        .map(|o| o.transaction_id.clone())
        .collect();
    json!({
        "transaction_id": t.transaction_id,
        "original_transaction_id": t.original_transaction_id,
        "order_id": t.order_id,
        "signed_transaction": apple.signed_transaction(t),
        "receipt_data": receipt_blob(&t.bundle_id, t.environment, &t.customer, &ids),
        "notification": notification,
    })
}

pub(super) async fn make_purchase(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<MakePurchase>,
) -> Response {
    shared.count("control.apple.purchase");
    if !PRODUCT_TYPES.contains(&request.product_type.as_str()) {
        return (StatusCode::BAD_REQUEST, "product_type must be Consumable, Non-Consumable, Auto-Renewable Subscription or Non-Renewing Subscription").into_response();
    }
    let env = match request.environment.as_str() {
        "Production" => Env::Production,
        "Sandbox" => Env::Sandbox,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "environment must be Production or Sandbox",
            )
                .into_response();
        }
    };
    let bad_token = request
        .app_account_token
        .as_deref()
        .is_some_and(|t| uuid::Uuid::parse_str(t).is_err());
    if bad_token {
        return (StatusCode::BAD_REQUEST, "app_account_token must be a UUID").into_response();
    }
    let now = Utc::now().timestamp_millis();
    let mut apple = lock(&shared.apple);
    let id = apple.new_transaction_id(env);
    let subscription = request.product_type == "Auto-Renewable Subscription";
    let t = Transaction {
        transaction_id: id.clone(),
        original_transaction_id: id.clone(),
        web_order_line_item_id: subscription.then(|| apple.new_transaction_id(env)),
        bundle_id: request.bundle_id,
        app_apple_id: request.app_apple_id,
        product_id: request.product_id.clone(),
        product_type: request.product_type.clone(),
        subscription_group: request
            .subscription_group
            .or_else(|| subscription.then(|| "21000001".to_owned())),
        quantity: request.quantity.max(1),
        purchase_date_ms: now,
        original_purchase_date_ms: now,
        expires_date_ms: subscription.then_some(now + MONTH_MS),
        app_account_token: request.app_account_token.map(|t| t.to_ascii_lowercase()),
        environment: env,
        price: request.price,
        currency: request.currency,
        free_trial: request.free_trial,
        reason: "PURCHASE".to_owned(),
        revocation_date_ms: None,
        revocation_percentage: None,
        is_upgraded: false,
        finished: false,
        customer: request.customer,
        order_id: random_token(8)
            .to_ascii_uppercase()
            .replace(['-', '_'], "Q")
            .chars()
            .take(10)
            .collect(),
        signed_date_ms: now,
    };
    if subscription {
        apple.renewals.insert(
            id,
            Renewal {
                auto_renew: true,
                auto_renew_product_id: request.product_id,
                status: 1,
                grace_expires_ms: None,
                expiration_intent: None,
            },
        );
    }
    apple.transactions.push(t.clone());
    let notification = if subscription {
        apple.notify("SUBSCRIBED", Some("INITIAL_BUY"), &t)
    } else {
        apple.notify("ONE_TIME_CHARGE", None, &t)
    };
    Json(purchase_reply(&apple, &t, &notification)).into_response()
}

/// `refund`'s optional body: `{"percentage": n}` refunds n milliunits of the transaction
/// (Apple's `REFUND_PRORATED`, 100000 being 100 %); without it, the whole (`REFUND_FULL`).
#[derive(Debug, Default, Deserialize)]
struct RefundAction {
    #[serde(default)]
    percentage: Option<u32>,
}

pub(super) async fn transaction_control(
    State(shared): State<Arc<Shared>>,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    shared.count(&format!("control.apple.transaction.{action}"));
    let refund = if body.iter().all(u8::is_ascii_whitespace) {
        RefundAction::default()
    } else {
        match serde_json::from_slice::<RefundAction>(&body) {
            Ok(refund) => refund,
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        }
    };
    let mut apple = lock(&shared.apple);
    let Some(index) = apple
        .transactions
        .iter()
        .position(|t| t.transaction_id == id)
    else {
        return (StatusCode::NOT_FOUND, "unknown transaction id").into_response();
    };
    let notification = match action.as_str() {
        // What `Transaction.finish()` does on the device: a finished consumable leaves receipts.
        "finish" => {
            apple.transactions[index].finished = true;
            Value::Null
        }
        "refund" => {
            let now = Utc::now().timestamp_millis();
            apple.transactions[index].revocation_date_ms = Some(now);
            apple.transactions[index].revocation_percentage =
                refund.percentage.filter(|p| *p < 100_000);
            apple.transactions[index].signed_date_ms = now;
            let t = apple.transactions[index].clone();
            if let Some(r) = apple.renewals.get_mut(&t.original_transaction_id) {
                r.status = 5;
                r.auto_renew = false;
            }
            apple.notify("REFUND", None, &t)
        }
        // Apple reverses a refund (REFUND_REVERSED): the signed transaction no longer carries
        // the revocation fields.
        "reverse_refund" => {
            if apple.transactions[index].revocation_date_ms.is_none() {
                return (StatusCode::CONFLICT, "transaction is not refunded").into_response();
            }
            let now = Utc::now().timestamp_millis();
            apple.transactions[index].revocation_date_ms = None;
            apple.transactions[index].revocation_percentage = None;
            apple.transactions[index].signed_date_ms = now;
            let t = apple.transactions[index].clone();
            apple.notify("REFUND_REVERSED", None, &t)
        }
        "consumption_request" => {
            let t = apple.transactions[index].clone();
            apple.notify("CONSUMPTION_REQUEST", None, &t)
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                "actions: finish, refund, reverse_refund, consumption_request",
            )
                .into_response();
        }
    };
    Json(json!({ "transaction_id": id, "notification": notification })).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct SubscriptionAction {
    #[serde(default)]
    product_id: Option<String>,
}

pub(super) async fn subscription_control(
    State(shared): State<Arc<Shared>>,
    Path((original, action)): Path<(String, String)>,
    body: Option<Json<SubscriptionAction>>,
) -> Response {
    shared.count(&format!("control.apple.subscription.{action}"));
    let now = Utc::now().timestamp_millis();
    let mut apple = lock(&shared.apple);
    let Some(latest) = apple.latest_of(&original).cloned() else {
        return (StatusCode::NOT_FOUND, "unknown original transaction id").into_response();
    };
    if !apple.renewals.contains_key(&original) {
        return (
            StatusCode::BAD_REQUEST,
            "not an auto-renewable subscription",
        )
            .into_response();
    }
    // A renewal is a new transaction of the same chain.
    let renew = |apple: &mut AppleStore, product: &str, reason: &'static str| -> Transaction {
        let mut next = latest.clone();
        next.transaction_id = apple.new_transaction_id(latest.environment);
        next.web_order_line_item_id = Some(apple.new_transaction_id(latest.environment));
        next.product_id = product.to_owned();
        next.purchase_date_ms = now;
        next.expires_date_ms = Some(latest.expires_date_ms.unwrap_or(now).max(now) + MONTH_MS);
        next.free_trial = false;
        next.reason = reason.to_owned();
        next.signed_date_ms = now;
        next.finished = false;
        apple.transactions.push(next.clone());
        next
    };
    let set = |apple: &mut AppleStore, f: &dyn Fn(&mut Renewal)| {
        if let Some(r) = apple.renewals.get_mut(&original) {
            f(r);
        }
    };
    if action == "restore" {
        // StoreKit 1 `restoreCompletedTransactions` on a new device: a new transaction id for
        // the same period, which keeps its `web_order_line_item_id` ("a unique identifier for
        // purchase events across devices"). Apple sends no notification for it.
        let mut restored = latest.clone();
        restored.transaction_id = apple.new_transaction_id(latest.environment);
        restored.signed_date_ms = now;
        restored.finished = false;
        apple.transactions.push(restored.clone());
        return Json(purchase_reply(&apple, &restored, &Value::Null)).into_response();
    }
    let (kind, subtype, t) = match action.as_str() {
        "renew" => {
            let t = renew(&mut apple, &latest.product_id, "RENEWAL");
            set(&mut apple, &|r| r.status = 1);
            ("DID_RENEW", None, t)
        }
        "enter_grace" => {
            set(&mut apple, &|r| {
                r.status = 4;
                r.grace_expires_ms = Some(now + 6 * DAY_MS);
                r.expiration_intent = Some(2);
            });
            ("DID_FAIL_TO_RENEW", Some("GRACE_PERIOD"), latest.clone())
        }
        "billing_retry" => {
            set(&mut apple, &|r| {
                r.status = 3;
                r.grace_expires_ms = None;
                r.expiration_intent = Some(2);
            });
            ("DID_FAIL_TO_RENEW", None, latest.clone())
        }
        "grace_expired" => {
            set(&mut apple, &|r| {
                r.status = 3;
                r.grace_expires_ms = None;
            });
            ("GRACE_PERIOD_EXPIRED", None, latest.clone())
        }
        "recover" => {
            let t = renew(&mut apple, &latest.product_id, "RENEWAL");
            set(&mut apple, &|r| {
                r.status = 1;
                r.grace_expires_ms = None;
                r.expiration_intent = None;
            });
            ("DID_RENEW", Some("BILLING_RECOVERY"), t)
        }
        "disable_auto_renew" => {
            set(&mut apple, &|r| r.auto_renew = false);
            (
                "DID_CHANGE_RENEWAL_STATUS",
                Some("AUTO_RENEW_DISABLED"),
                latest.clone(),
            )
        }
        "enable_auto_renew" => {
            set(&mut apple, &|r| r.auto_renew = true);
            (
                "DID_CHANGE_RENEWAL_STATUS",
                Some("AUTO_RENEW_ENABLED"),
                latest.clone(),
            )
        }
        "expire" => {
            let index = apple
                .transactions
                .iter()
                .position(|t| t.transaction_id == latest.transaction_id);
            if let Some(i) = index {
                apple.transactions[i].expires_date_ms = Some(now - 1000);
            }
            set(&mut apple, &|r| {
                r.status = 2;
                r.auto_renew = false;
                r.expiration_intent = Some(1);
            });
            let t = apple
                .latest_of(&original)
                .cloned()
                .unwrap_or_else(|| latest.clone());
            ("EXPIRED", Some("VOLUNTARY"), t)
        }
        "upgrade" => {
            let Some(product) = body.and_then(|Json(b)| b.product_id) else {
                return (
                    StatusCode::BAD_REQUEST,
                    "upgrade needs {\"product_id\": ...}",
                )
                    .into_response();
            };
            if let Some(i) = apple
                .transactions
                .iter()
                .position(|t| t.transaction_id == latest.transaction_id)
            {
                apple.transactions[i].is_upgraded = true;
            }
            let t = renew(&mut apple, &product, "PURCHASE");
            set(&mut apple, &move |r| {
                r.auto_renew_product_id.clone_from(&product);
                r.status = 1;
            });
            ("DID_CHANGE_RENEWAL_PREF", Some("UPGRADE"), t)
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                "actions: renew, restore, enter_grace, billing_retry, grace_expired, recover, disable_auto_renew, enable_auto_renew, expire, upgrade",
            )
                .into_response();
        }
    };
    let notification = apple.notify(kind, subtype, &t);
    Json(purchase_reply(&apple, &t, &notification)).into_response()
}
