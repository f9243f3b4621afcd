//! The App Store endpoints a verifier calls: legacy `verifyReceipt` and the App Store Server
//! API (`/inApps/...`, ES256 bearer JWT), answering with Apple's bodies and error codes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{AppleStore, Env, Transaction, add_date, receipt_blob};
use crate::lock::lock;
use crate::state::Shared;

fn api_error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        Json(json!({ "errorCode": code, "errorMessage": message })),
    )
        .into_response()
}

fn not_found() -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        4_040_010,
        "Transaction id not found.",
    )
}

// ---- verifyReceipt ----

pub(super) async fn verify_receipt(
    State(shared): State<Arc<Shared>>,
    Path(env): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    shared.count("apple.verifyReceipt");
    let Some(endpoint) = Env::from_path(&env) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let status = |code: u32| Json(json!({ "status": code })).into_response();
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return status(21000);
    };
    let receipt = request["receipt-data"]
        .as_str()
        .and_then(|r| STANDARD.decode(r).ok())
        .and_then(|r| serde_json::from_slice::<Value>(&r).ok())
        .filter(|r| r["emulator"] == "receipt-v1");
    let Some(receipt) = receipt else {
        return status(21002);
    };
    let receipt_env = if receipt["environment"] == "Sandbox" {
        Env::Sandbox
    } else {
        Env::Production
    };
    match (endpoint, receipt_env) {
        (Env::Production, Env::Sandbox) => return status(21007),
        (Env::Sandbox, Env::Production) => return status(21008),
        _ => {}
    }
    let bundle = receipt["bundle_id"].as_str().unwrap_or_default().to_owned();
    let customer = receipt["customer"].as_str().unwrap_or_default().to_owned();
    let ids: Vec<String> = receipt["transaction_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let exclude_old = request["exclude-old-transactions"]
        .as_bool()
        .unwrap_or(false);

    let mut apple = lock(&shared.apple);
    let current: Vec<Transaction> = apple
        .transactions
        .iter()
        .filter(|t| t.bundle_id == bundle && t.customer == customer && t.environment == receipt_env)
        // Finished consumables leave the receipt, as on the App Store.
        .filter(|t| !(t.product_type == "Consumable" && t.finished))
        .cloned()
        .collect();
    let has_subscription = current.iter().any(Transaction::is_subscription);
    if has_subscription {
        let expected = apple.shared_secret(&bundle);
        match request["password"].as_str() {
            None => return status(21003),
            Some(given) if given != expected => return status(21004),
            Some(_) => {}
        }
    }
    let in_app: Vec<Value> = ids
        .iter()
        .filter_map(|id| apple.find(id))
        .map(Transaction::receipt_entry)
        .collect();
    let mut latest: Vec<&Transaction> = current.iter().collect();
    if exclude_old {
        let mut newest: HashMap<&str, &Transaction> = HashMap::new();
        for t in &current {
            let slot = newest
                .entry(t.original_transaction_id.as_str())
                .or_insert(t);
            if t.purchase_date_ms > slot.purchase_date_ms {
                *slot = t;
            }
        }
        latest = newest.into_values().collect();
    }
    latest.sort_by_key(|t| t.purchase_date_ms);
    let now = Utc::now().timestamp_millis();
    let mut receipt_body = json!({
        "receipt_type": if receipt_env == Env::Sandbox { "ProductionSandbox" } else { "Production" },
        "adam_id": current.first().map_or(0, |t| t.app_apple_id),
        "bundle_id": bundle,
        "application_version": "1",
        "original_application_version": "1.0",
        "in_app": in_app,
    });
    add_date(&mut receipt_body, "receipt_creation_date", now);
    add_date(&mut receipt_body, "request_date", now);
    add_date(
        &mut receipt_body,
        "original_purchase_date",
        current.first().map_or(now, |t| t.original_purchase_date_ms),
    );
    let mut reply = json!({
        "status": 0,
        "environment": receipt_env.wire(),
        "receipt": receipt_body,
        "latest_receipt": receipt_blob(&bundle, receipt_env, &customer, &current.iter().map(|t| t.transaction_id.clone()).collect::<Vec<_>>()),
        "latest_receipt_info": latest.iter().map(|t| t.receipt_entry()).collect::<Vec<_>>(),
    });
    if has_subscription {
        let mut seen = std::collections::HashSet::new();
        let pending: Vec<Value> = current
            .iter()
            .filter(|t| t.is_subscription() && seen.insert(t.original_transaction_id.clone()))
            .map(|t| {
                let r = apple.renewals.get(&t.original_transaction_id);
                let mut p = json!({
                    "original_transaction_id": t.original_transaction_id,
                    "product_id": t.product_id,
                    "auto_renew_product_id": r.map_or(t.product_id.clone(), |r| r.auto_renew_product_id.clone()),
                    "auto_renew_status": if r.is_some_and(|r| r.auto_renew) { "1" } else { "0" },
                    "is_in_billing_retry_period": if r.is_some_and(|r| matches!(r.status, 3 | 4)) { "1" } else { "0" },
                });
                if let Some(intent) = r.and_then(|r| r.expiration_intent) {
                    p["expiration_intent"] = json!(intent.to_string());
                }
                if let Some(grace) = r.and_then(|r| r.grace_expires_ms) {
                    add_date(&mut p, "grace_period_expires_date", grace);
                }
                p
            })
            .collect();
        reply["pending_renewal_info"] = json!(pending);
    }
    Json(reply).into_response()
}

// ---- App Store Server API ----

#[derive(Debug, Deserialize)]
struct ApiClaims {
    iss: String,
    aud: String,
    bid: String,
    // Apple documents `iat`, but its Python and Java libraries leave it out.
    iat: Option<i64>,
    exp: i64,
}

/// Checks the ES256 bearer token; returns the bundle id it is for.
fn authorize(apple: &AppleStore, headers: &HeaderMap) -> Result<String, Response> {
    let unauthorized = || (StatusCode::UNAUTHORIZED, "Unauthenticated").into_response();
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(unauthorized)?;
    let header = jsonwebtoken::decode_header(token).map_err(|_| unauthorized())?;
    if header.alg != jsonwebtoken::Algorithm::ES256
        || header.kid.as_deref() != Some(apple.keys.api_key_id.as_str())
    {
        return Err(unauthorized());
    }
    let key = jsonwebtoken::DecodingKey::from_ec_pem(apple.keys.api_public_key_pem.as_bytes())
        .map_err(|_| unauthorized())?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&["appstoreconnect-v1"]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let claims = jsonwebtoken::decode::<ApiClaims>(token, &key, &validation)
        .map_err(|_| unauthorized())?
        .claims;
    // Apple refuses tokens valid for more than an hour.
    let issued = claims.iat.unwrap_or_else(|| Utc::now().timestamp());
    if claims.iss != apple.keys.api_issuer_id
        || claims.aud != "appstoreconnect-v1"
        || claims.exp - issued > 3600
    {
        return Err(unauthorized());
    }
    Ok(claims.bid)
}

/// Finds a transaction of this environment and bundle, or Apple's 404 / 400.
fn api_transaction(
    apple: &AppleStore,
    env: Env,
    bundle: &str,
    id: &str,
) -> Result<Transaction, Response> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            4_000_006,
            "Invalid transaction id.",
        ));
    }
    apple
        .find(id)
        .filter(|t| t.environment == env && t.bundle_id == bundle)
        .cloned()
        .ok_or_else(not_found)
}

fn api_context(shared: &Shared, env: &str, headers: &HeaderMap) -> Result<(Env, String), Response> {
    let env = Env::from_path(env).ok_or_else(|| StatusCode::NOT_FOUND.into_response())?;
    let bundle = authorize(&lock(&shared.apple), headers)?;
    Ok((env, bundle))
}

pub(super) async fn transaction_info(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((env, id)): Path<(String, String)>,
) -> Response {
    shared.count("apple.transactions.get");
    let result = api_context(&shared, &env, &headers).and_then(|(env, bundle)| {
        let apple = lock(&shared.apple);
        let t = api_transaction(&apple, env, &bundle, &id)?;
        Ok(Json(json!({ "signedTransactionInfo": apple.signed_transaction(&t) })).into_response())
    });
    result.unwrap_or_else(|e| e)
}

pub(super) async fn transaction_history(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((env, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    shared.count("apple.history.get");
    let result = api_context(&shared, &env, &headers).and_then(|(env, bundle)| {
        let apple = lock(&shared.apple);
        let t = api_transaction(&apple, env, &bundle, &id)?;
        let mut all: Vec<&Transaction> = apple
            .transactions
            .iter()
            .filter(|o| o.customer == t.customer && o.bundle_id == bundle && o.environment == env)
            .collect();
        if query.get("sort").map(String::as_str) == Some("DESCENDING") {
            all.reverse();
        }
        let offset: usize = query
            .get("revision")
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        let page: Vec<String> = all
            .iter()
            .skip(offset)
            .take(20)
            .map(|t| apple.signed_transaction(t))
            .collect();
        let next = offset + page.len();
        Ok(Json(json!({
            "revision": next.to_string(),
            "hasMore": next < all.len(),
            "bundleId": bundle,
            "appAppleId": t.app_apple_id,
            "environment": env.wire(),
            "signedTransactions": page,
        }))
        .into_response())
    });
    result.unwrap_or_else(|e| e)
}

pub(super) async fn subscription_statuses(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((env, id)): Path<(String, String)>,
) -> Response {
    shared.count("apple.subscriptions.get");
    let result = api_context(&shared, &env, &headers).and_then(|(env, bundle)| {
        let apple = lock(&shared.apple);
        let t = api_transaction(&apple, env, &bundle, &id)?;
        let mut groups: HashMap<String, Vec<Value>> = HashMap::new();
        let mut originals: Vec<&String> = apple
            .transactions
            .iter()
            .filter(|o| o.customer == t.customer && o.bundle_id == bundle && o.environment == env && o.is_subscription())
            .map(|o| &o.original_transaction_id)
            .collect();
        originals.dedup();
        for original in originals {
            let Some(latest) = apple.latest_of(original) else { continue };
            if groups.values().flatten().any(|v| v["originalTransactionId"] == original.as_str()) {
                continue;
            }
            let status = apple.renewals.get(original).map_or(1, |r| r.status);
            groups.entry(latest.subscription_group.clone().unwrap_or_default()).or_default().push(json!({
                "status": status,
                "originalTransactionId": original,
                "signedTransactionInfo": apple.signed_transaction(latest),
                "signedRenewalInfo": apple.keys.sign(&apple.renewal_payload(latest)),
            }));
        }
        let data: Vec<Value> = groups
            .into_iter()
            .map(|(group, last)| json!({ "subscriptionGroupIdentifier": group, "lastTransactions": last }))
            .collect();
        Ok(Json(json!({ "environment": env.wire(), "bundleId": bundle, "appAppleId": t.app_apple_id, "data": data })).into_response())
    });
    result.unwrap_or_else(|e| e)
}

pub(super) async fn lookup_order(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((env, order_id)): Path<(String, String)>,
) -> Response {
    shared.count("apple.lookup.get");
    let result = api_context(&shared, &env, &headers).map(|(env, bundle)| {
        let apple = lock(&shared.apple);
        let found: Vec<String> = apple
            .transactions
            .iter()
            .filter(|t| t.order_id == order_id && t.bundle_id == bundle && t.environment == env)
            .map(|t| apple.signed_transaction(t))
            .collect();
        let status = i32::from(found.is_empty());
        Json(json!({ "status": status, "signedTransactions": found })).into_response()
    });
    result.unwrap_or_else(|e| e)
}

pub(super) async fn refund_history(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((env, id)): Path<(String, String)>,
) -> Response {
    shared.count("apple.refund.get");
    let result = api_context(&shared, &env, &headers).and_then(|(env, bundle)| {
        let apple = lock(&shared.apple);
        let t = api_transaction(&apple, env, &bundle, &id)?;
        let refunded: Vec<String> = apple
            .transactions
            .iter()
            .filter(|o| o.customer == t.customer && o.bundle_id == bundle && o.environment == env && o.revocation_date_ms.is_some())
            .map(|o| apple.signed_transaction(o))
            .collect();
        Ok(Json(json!({ "signedTransactions": refunded, "revision": refunded.len().to_string(), "hasMore": false })).into_response())
    });
    result.unwrap_or_else(|e| e)
}

pub(super) async fn notification_history(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(env): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    shared.count("apple.notifications.history");
    let result = api_context(&shared, &env, &headers).map(|(env, bundle)| {
        let apple = lock(&shared.apple);
        let start = body["startDate"].as_i64().unwrap_or(0);
        let end = body["endDate"].as_i64().unwrap_or(i64::MAX);
        let only = body["transactionId"].as_str();
        let items: Vec<Value> = apple
            .notifications
            .iter()
            .filter(|(at, id, _)| *at >= start && *at <= end && only.is_none_or(|o| o == id))
            .filter(|(_, id, _)| apple.find(id).is_some_and(|t| t.bundle_id == bundle && t.environment == env))
            .map(|(at, _, body)| {
                json!({ "signedPayload": body["signedPayload"], "sendAttempts": [{ "attemptDate": at, "sendAttemptResult": "SUCCESS" }] })
            })
            .collect();
        Json(json!({ "notificationHistory": items, "hasMore": false })).into_response()
    });
    result.unwrap_or_else(|e| e)
}

pub(super) async fn consumption(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((env, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    shared.count("apple.consumption.put");
    let result = api_context(&shared, &env, &headers).and_then(|(env, bundle)| {
        let apple = lock(&shared.apple);
        api_transaction(&apple, env, &bundle, &id)?;
        if body["customerConsented"] != json!(true) {
            return Err(api_error(
                StatusCode::BAD_REQUEST,
                4_000_027,
                "Invalid customer consented.",
            ));
        }
        if body["deliveryStatus"] != "DELIVERED"
            && body["consumptionPercentage"].as_i64().unwrap_or(0) != 0
        {
            return Err(api_error(
                StatusCode::BAD_REQUEST,
                4_000_049,
                "Invalid consumption percentage.",
            ));
        }
        Ok(StatusCode::ACCEPTED.into_response())
    });
    result.unwrap_or_else(|e| e)
}
