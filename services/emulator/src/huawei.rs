//! Huawei IAP: the OAuth client-credentials token endpoint, the Order service (verify, confirm,
//! cancelledList) and the Subscription service (get, stop, delay, returnFee, withdrawal), with
//! `Authorization: Basic base64("APPAT:" + token)` and `responseCode` semantics; data signed
//! with SHA256WithRSA or SHA256WithRSA/PSS by a 3072-bit key per app. Control routes make
//! purchases and drive subscriptions, returning the v2 notification Huawei would send.

// Handlers fail with the HTTP response Huawei would send; boxing it would buy nothing here.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::keys::{RsaKey, random_token};
use crate::state::{Shared, lock};

const PSS: &str = "SHA256WithRSA/PSS";
const PKCS1: &str = "SHA256WithRSA";
const MONTH_MS: i64 = 30 * 24 * 3600 * 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct App {
    client_secret: String,
    key: RsaKey,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Purchase {
    app_id: String,
    package: String,
    product_id: String,
    token: String,
    order_id: String,
    kind: u8,
    purchase_time_ms: i64,
    state: i8,
    consumed: bool,
    sandbox: bool,
    developer_payload: String,
    price: i64,
    currency: String,
    /// Units bought in one payment (InAppPurchaseData `quantity`).
    #[serde(default = "one")]
    quantity: u32,
    /// Paid with an AppTouch (carrier) account (`accountFlag` 1): known only to the AppTouch
    /// site, as at Huawei.
    #[serde(default)]
    apptouch: bool,
    subscription: Option<Subscription>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Subscription {
    id: String,
    original_purchase_time_ms: i64,
    expiration_ms: i64,
    renew_status: u8,
    periods: u32,
    grace_expiration_ms: Option<i64>,
    cancel_time_ms: Option<i64>,
    expiration_intent: Option<u8>,
}

/// Huawei's side of the emulator.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct HuaweiStore {
    apps: HashMap<String, App>,
    #[serde(skip)]
    access_tokens: HashMap<String, (String, i64)>,
    purchases: HashMap<String, Purchase>,
    cancelled: Vec<(i64, bool, Value)>,
    /// Notifications made since the last request finished, for the push dispatcher.
    #[serde(skip)]
    pub(crate) outbox: Vec<Value>,
}

impl HuaweiStore {
    fn app(&mut self, app_id: &str) -> App {
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

    fn purchase_by_subscription(&mut self, subscription_id: &str) -> Option<&mut Purchase> {
        self.purchases.values_mut().find(|p| {
            p.subscription
                .as_ref()
                .is_some_and(|s| s.id == subscription_id)
        })
    }
}

fn in_app_purchase_data(p: &Purchase) -> String {
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

fn respond(code: &str, message: &str) -> Response {
    Json(json!({ "responseCode": code, "responseMessage": message })).into_response()
}

/// Which algorithm the caller asked for in `HW-IAP-APPINFO` (PKCS#1 v1.5 otherwise).
fn requested_algorithm(headers: &HeaderMap) -> &'static str {
    let asked = headers
        .get("hw-iap-appinfo")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| serde_json::from_str::<Value>(v).ok())
        .is_some_and(|v| v["signatureAlgorithm"] == PSS);
    if asked { PSS } else { PKCS1 }
}

/// Which of Huawei's sites a request reached: the HUAWEI ID sites (one stands for all of them,
/// as Huawei routes between them) or the AppTouch site, which alone knows AppTouch accounts'
/// purchases and knows no others (docs/stores.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Site {
    HuaweiId,
    AppTouch,
}

impl Site {
    fn knows(self, p: &Purchase) -> bool {
        p.apptouch == (self == Site::AppTouch)
    }
}

pub(crate) fn router() -> Router<Arc<Shared>> {
    let mut router = Router::new().route("/oauth2/v3/token", post(token));
    for (site, orders, subscriptions) in [
        (Site::HuaweiId, "/orders", "/subscr"),
        (Site::AppTouch, "/orders-at", "/subscr-at"),
    ] {
        router = router
            .route(
                &format!("{orders}/applications/purchases/tokens/verify"),
                post(move |s, h, b| order_verify(s, h, b, site)),
            )
            .route(
                &format!("{orders}/applications/v2/purchases/confirm"),
                post(move |s, h, b| order_confirm(s, h, b, site)),
            )
            .route(
                &format!("{orders}/applications/v2/purchases/cancelledList"),
                post(move |s, h, b| cancelled_list(s, h, b, site)),
            )
            .route(
                &format!("{subscriptions}/sub/applications/v2/purchases/{{action}}"),
                post(move |s, h, a, b| subscription_api(s, h, a, b, site)),
            );
    }
    router
}

pub(crate) fn control_router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/huawei/apps/{app_id}/credentials", get(credentials))
        .route("/huawei/purchases", post(make_purchase))
        .route("/huawei/purchases/{token}", get(purchase_view))
        .route("/huawei/purchases/{token}/{action}", post(purchase_control))
        .route(
            "/huawei/subscriptions/{subscription_id}/{action}",
            post(subscription_control),
        )
}

#[derive(Debug, Deserialize)]
struct TokenRequest {
    grant_type: String,
    client_id: String,
    client_secret: String,
}

async fn token(State(shared): State<Arc<Shared>>, Form(request): Form<TokenRequest>) -> Response {
    shared.count("huawei.oauth2.token");
    if request.grant_type != "client_credentials" {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "unsupported_grant_type", "error_description": "grant_type must be client_credentials" }))).into_response();
    }
    let mut huawei = lock(&shared.huawei);
    let known = huawei
        .apps
        .get(&request.client_id)
        .is_some_and(|a| a.client_secret == request.client_secret);
    if !known {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "invalid_client", "error_description": "client_id or client_secret is wrong" }))).into_response();
    }
    let access_token = format!("CgB6e3x{}", random_token(48));
    huawei.access_tokens.insert(
        access_token.clone(),
        (request.client_id, Utc::now().timestamp() + 3600),
    );
    Json(json!({ "access_token": access_token, "expires_in": 3600, "token_type": "Bearer" }))
        .into_response()
}

/// The app whose token authorises the call, from `Basic base64("APPAT:" + token)`.
fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<String, Response> {
    let unauthorized = || {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "responseCode": "6", "responseMessage": "invalid access token" })),
        )
            .into_response()
    };
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok())
        .ok_or_else(unauthorized)?;
    let token = basic.strip_prefix("APPAT:").ok_or_else(unauthorized)?;
    let huawei = lock(&shared.huawei);
    match huawei.access_tokens.get(token) {
        Some((app, expires)) if *expires > Utc::now().timestamp() => Ok(app.clone()),
        _ => Err(unauthorized()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenBody {
    purchase_token: String,
    product_id: String,
}

fn signed(huawei: &mut HuaweiStore, p: &Purchase, algorithm: &str) -> (String, String) {
    let data = in_app_purchase_data(p);
    let key = huawei.app(&p.app_id).key;
    let signature = key.sign_sha256_base64(data.as_bytes(), algorithm == PSS);
    (data, signature)
}

async fn order_verify(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<TokenBody>,
    site: Site,
) -> Response {
    shared.count("huawei.orders.verify");
    let app = match authorize(&shared, &headers) {
        Ok(app) => app,
        Err(e) => return e,
    };
    let algorithm = requested_algorithm(&headers);
    let mut huawei = lock(&shared.huawei);
    let Some(p) = huawei
        .purchases
        .get(&body.purchase_token)
        .filter(|p| p.app_id == app && site.knows(p))
        .cloned()
    else {
        return respond("8", "invalid purchase token");
    };
    if p.subscription.is_some() {
        return respond(
            "6",
            "rights invalid: subscription tokens are verified with the Subscription service",
        );
    }
    if p.product_id != body.product_id {
        return respond("5", "productId does not match the purchase token");
    }
    if p.consumed {
        return respond("9", "the purchase has been confirmed");
    }
    let (data, signature) = signed(&mut huawei, &p, algorithm);
    Json(json!({
        "responseCode": "0",
        "responseMessage": "success",
        "purchaseTokenData": data,
        "dataSignature": signature,
        "signatureAlgorithm": algorithm,
    }))
    .into_response()
}

async fn order_confirm(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<TokenBody>,
    site: Site,
) -> Response {
    shared.count("huawei.orders.confirm");
    let app = match authorize(&shared, &headers) {
        Ok(app) => app,
        Err(e) => return e,
    };
    let mut huawei = lock(&shared.huawei);
    let Some(p) = huawei
        .purchases
        .get_mut(&body.purchase_token)
        .filter(|p| p.app_id == app && site.knows(p))
    else {
        return respond("8", "the user does not own the product");
    };
    if p.product_id != body.product_id {
        return respond("5", "productId does not match the purchase token");
    }
    if p.state != 0 {
        return respond("8", "the purchase is not in the purchased state");
    }
    if p.consumed {
        return respond("9", "the product has been consumed");
    }
    p.consumed = true;
    respond("0", "success")
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelledQuery {
    start_at: Option<i64>,
    end_at: Option<i64>,
    max_rows: Option<usize>,
    #[serde(rename = "type")]
    kind: Option<u8>,
    continuation_token: Option<String>,
}

async fn cancelled_list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(query): Json<CancelledQuery>,
    site: Site,
) -> Response {
    shared.count("huawei.orders.cancelledList");
    let app = match authorize(&shared, &headers) {
        Ok(app) => app,
        Err(e) => return e,
    };
    let now = Utc::now().timestamp_millis();
    let (start, end) = (
        query.start_at.unwrap_or(now - MONTH_MS),
        query.end_at.unwrap_or(now),
    );
    let with_subscriptions = query.kind == Some(1);
    let huawei = lock(&shared.huawei);
    let matching: Vec<&Value> = huawei
        .cancelled
        .iter()
        .filter(|(at, subscription, v)| {
            *at >= start
                && *at <= end
                && (with_subscriptions || !subscription)
                && v["_appId"] == app
                && (v["_appTouch"] == true) == (site == Site::AppTouch)
        })
        .map(|(_, _, v)| v)
        .collect();
    let offset: usize = query
        .continuation_token
        .as_deref()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let rows = query.max_rows.unwrap_or(1000).clamp(1, 1000);
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(rows)
        .map(|v| {
            let mut v = (*v).clone();
            if let Some(map) = v.as_object_mut() {
                map.remove("_appId");
                map.remove("_appTouch");
            }
            v
        })
        .collect();
    let mut body = json!({
        "responseCode": "0",
        "responseMessage": "success",
        // Huawei sends the list as a JSON string, not an array.
        "cancelledPurchaseList": Value::Array(page).to_string(),
    });
    if offset + rows < matching.len() {
        body["continuationToken"] = json!((offset + rows).to_string());
    }
    Json(body).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionBody {
    subscription_id: String,
    purchase_token: String,
    desired_expiration_time: Option<i64>,
}

async fn subscription_api(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(action): Path<String>,
    Json(body): Json<SubscriptionBody>,
    site: Site,
) -> Response {
    shared.count(&format!("huawei.subscriptions.{action}"));
    let app = match authorize(&shared, &headers) {
        Ok(app) => app,
        Err(e) => return e,
    };
    let algorithm = requested_algorithm(&headers);
    let now = Utc::now().timestamp_millis();
    let mut huawei = lock(&shared.huawei);
    let Some(p) = huawei.purchases.get_mut(&body.purchase_token).filter(|p| {
        p.app_id == app
            && site.knows(p)
            && p.subscription
                .as_ref()
                .is_some_and(|s| s.id == body.subscription_id)
    }) else {
        return respond("8", "invalid subscriptionId or purchaseToken");
    };
    let Some(s) = p.subscription.as_mut() else {
        return respond("6", "not a subscription");
    };
    let mut extra = json!({});
    match action.as_str() {
        "get" => {}
        "stop" => {
            s.renew_status = 0;
            s.cancel_time_ms = Some(now);
            s.expiration_intent = Some(1);
        }
        "delay" => {
            let Some(desired) = body
                .desired_expiration_time
                .filter(|d| *d > s.expiration_ms)
            else {
                return respond(
                    "5",
                    "desiredExpirationTime must be later than the current expiration",
                );
            };
            s.expiration_ms = desired;
            extra = json!({ "newExpirationTime": desired });
        }
        "returnFee" => {}
        "withdrawal" => {
            s.renew_status = 0;
            s.expiration_ms = now;
            s.cancel_time_ms = Some(now);
            p.state = 2;
        }
        _ => return (StatusCode::NOT_FOUND, "unknown subscription operation").into_response(),
    }
    let p = p.clone();
    if matches!(action.as_str(), "returnFee" | "withdrawal") {
        record_cancel(&mut huawei, &p, 1);
    }
    if action != "get" {
        let mut reply = json!({ "responseCode": "0", "responseMessage": "success" });
        if let (Some(map), Some(extra)) = (reply.as_object_mut(), extra.as_object()) {
            map.extend(extra.clone());
        }
        return Json(reply).into_response();
    }
    let (data, signature) = signed(&mut huawei, &p, algorithm);
    Json(json!({
        "responseCode": "0",
        "responseMessage": "success",
        "inappPurchaseData": data,
        "dataSignature": signature,
        "signatureAlgorithm": algorithm,
    }))
    .into_response()
}

fn record_cancel(huawei: &mut HuaweiStore, p: &Purchase, source: u8) {
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

// ---- control API ----

async fn credentials(State(shared): State<Arc<Shared>>, Path(app_id): Path<String>) -> Json<Value> {
    let app = lock(&shared.huawei).app(&app_id);
    Json(json!({
        "app_id": app_id,
        "client_id": app_id,
        "client_secret": app.client_secret,
        "public_key_base64": app.key.public_spki_base64(),
    }))
}

#[derive(Debug, Deserialize)]
struct MakePurchase {
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

fn one() -> u32 {
    1
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

async fn make_purchase(
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

/// The v2 ORDER notification (unsigned, per Huawei).
fn order_notification(huawei: &mut HuaweiStore, p: &Purchase, notification_type: u8) -> Value {
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
fn subscription_notification(
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

/// `GET /emulator/huawei/purchases/{token}`: what Huawei holds about a purchase, for a test's
/// checks (`purchase_state` as in InAppPurchaseData: 0 purchased, 1 cancelled, 2 refunded,
/// 3 pending; `confirmed` once the Order service's confirm was called).
async fn purchase_view(State(shared): State<Arc<Shared>>, Path(token): Path<String>) -> Response {
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

async fn purchase_control(
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

async fn subscription_control(
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
