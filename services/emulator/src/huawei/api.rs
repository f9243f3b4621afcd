//! The Huawei IAP endpoints a verifier calls, on the HUAWEI ID and the AppTouch sites: the
//! OAuth client-credentials token endpoint, the Order service and the Subscription service,
//! with `Authorization: Basic base64("APPAT:" + token)` and `responseCode` answers.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{MONTH_MS, PKCS1, PSS, Purchase, record_cancel, signed};
use crate::keys::random_token;
use crate::lock::lock;
use crate::state::Shared;

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
pub(super) enum Site {
    HuaweiId,
    AppTouch,
}

impl Site {
    fn knows(self, p: &Purchase) -> bool {
        p.apptouch == (self == Site::AppTouch)
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct TokenRequest {
    grant_type: String,
    client_id: String,
    client_secret: String,
}

pub(super) async fn token(
    State(shared): State<Arc<Shared>>,
    Form(request): Form<TokenRequest>,
) -> Response {
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
pub(super) struct TokenBody {
    purchase_token: String,
    product_id: String,
}

pub(super) async fn order_verify(
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

pub(super) async fn order_confirm(
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
pub(super) struct CancelledQuery {
    start_at: Option<i64>,
    end_at: Option<i64>,
    max_rows: Option<usize>,
    #[serde(rename = "type")]
    kind: Option<u8>,
    continuation_token: Option<String>,
}

pub(super) async fn cancelled_list(
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
pub(super) struct SubscriptionBody {
    subscription_id: String,
    purchase_token: String,
    desired_expiration_time: Option<i64>,
}

pub(super) async fn subscription_api(
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
