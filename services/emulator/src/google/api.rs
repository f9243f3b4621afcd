//! The Google Play endpoints a verifier calls: the service-account OAuth token endpoint and
//! the Android Publisher v3 purchase, subscription, voided-purchase and order endpoints.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::errors::{error, gone, invalid_state, invalid_token, token_of_another_package};
use super::model::{
    CLIENT_EMAIL, Kind, Purchase, PurchaseState, SubscriptionState, VoidSpec, product_purchase,
    product_purchase_v2, record_void, rfc3339, subscription_purchase_v2, void,
};
use crate::keys::random_token;
use crate::lock::lock;
use crate::state::Shared;

const SCOPE: &str = "https://www.googleapis.com/auth/androidpublisher";

// ---- OAuth ----

#[derive(Debug, Deserialize)]
pub(super) struct TokenRequest {
    grant_type: String,
    assertion: String,
}

#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: String,
    scope: String,
    iat: i64,
    exp: i64,
}

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

pub(super) async fn token(
    State(shared): State<Arc<Shared>>,
    Form(request): Form<TokenRequest>,
) -> Response {
    shared.count("google.oauth2.token");
    if request.grant_type != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        return oauth_error("unsupported_grant_type", "Invalid grant_type");
    }
    let public_der = {
        let google = lock(&shared.google);
        rsa::pkcs1::EncodeRsaPublicKey::to_pkcs1_der(&google.service_account.public())
    };
    let Ok(public_der) = public_der else {
        return oauth_error("invalid_grant", "emulator key unavailable");
    };
    let key = jsonwebtoken::DecodingKey::from_rsa_der(public_der.as_bytes());
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // google-auth always sends aud=https://oauth2.googleapis.com/token, even with another
    // token_uri; Google checks it, a stand-in on another address cannot demand its own URL.
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iat", "iss"]);
    let claims =
        match jsonwebtoken::decode::<AssertionClaims>(&request.assertion, &key, &validation) {
            Ok(data) => data.claims,
            Err(e) => {
                return oauth_error(
                    "invalid_grant",
                    &format!("Invalid JWT Signature or claims: {e}"),
                );
            }
        };
    if claims.iss != CLIENT_EMAIL {
        return oauth_error("invalid_grant", "Invalid issuer");
    }
    if claims.exp - claims.iat > 3600 {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes)",
        );
    }
    if !claims.scope.split(' ').any(|s| s == SCOPE) {
        return oauth_error("invalid_scope", "The androidpublisher scope is required");
    }
    let access_token = format!("ya29.emulator-{}", random_token(32));
    let expires = Utc::now().timestamp() + 3599;
    lock(&shared.google)
        .access_tokens
        .insert(access_token.clone(), expires);
    Json(json!({ "access_token": access_token, "expires_in": 3599, "token_type": "Bearer" }))
        .into_response()
}

fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(bearer) = bearer else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "required",
            "Request is missing required authentication credential. Expected OAuth 2 access token.",
        ));
    };
    let valid = lock(&shared.google)
        .access_tokens
        .get(bearer)
        .is_some_and(|exp| *exp > Utc::now().timestamp());
    if valid {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            "authError",
            "Invalid Credentials",
        ))
    }
}

// ---- Android Publisher ----

/// Looks up a token of `package`, applying Google's answers for unknown and expired tokens.
fn with_purchase<T>(
    shared: &Shared,
    headers: &HeaderMap,
    package: &str,
    token: &str,
    f: impl FnOnce(&mut Purchase) -> Result<T, Response>,
) -> Result<T, Response> {
    authorize(shared, headers)?;
    let mut google = lock(&shared.google);
    // The path segments arrive percent-decoded, as Google reads them: `tok%23x` is the token
    // `tok#x`, which Google does not know (400 `invalid`, "Invalid Value"). A token Google knows
    // under another package is refused with its own reason (issue hyochan/react-native-iap#815).
    let purchase = google.purchases.get_mut(token).ok_or_else(invalid_token)?;
    if purchase.package != package {
        return Err(token_of_another_package());
    }
    if purchase.gone {
        return Err(gone());
    }
    f(purchase)
}

pub(super) async fn product_get(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((package, product, token)): Path<(String, String, String)>,
) -> Response {
    shared.count("google.products.get");
    with_purchase(&shared, &headers, &package, &token, |p| {
        if p.kind != Kind::Inapp || p.product_id != product {
            return Err(invalid_token());
        }
        Ok(Json(product_purchase(p)).into_response())
    })
    .unwrap_or_else(|e| e)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AcknowledgeBody {
    developer_payload: Option<String>,
}

pub(super) async fn product_action(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((package, product, token_action)): Path<(String, String, String)>,
    body: Option<Json<AcknowledgeBody>>,
) -> Response {
    let Some((token, action)) = token_action.rsplit_once(':') else {
        return error(StatusCode::NOT_FOUND, "notFound", "Method not found.");
    };
    shared.count(&format!("google.products.{action}"));
    with_purchase(&shared, &headers, &package, token, |p| {
        if p.kind != Kind::Inapp || p.product_id != product {
            return Err(invalid_token());
        }
        if p.state != PurchaseState::Purchased {
            return Err(invalid_state());
        }
        match action {
            "acknowledge" => {
                // Acknowledging twice is harmless; acknowledging a consumed purchase is not
                // (consumption already acknowledged it).
                if p.consumed {
                    return Err(invalid_state());
                }
                p.acknowledged = true;
                if let Some(Json(AcknowledgeBody {
                    developer_payload: Some(payload),
                })) = body
                {
                    p.developer_payload = payload;
                }
            }
            "consume" => {
                if p.consumed {
                    return Err(invalid_state());
                }
                p.consumed = true;
                p.acknowledged = true;
            }
            _ => {
                return Err(error(
                    StatusCode::NOT_FOUND,
                    "notFound",
                    "Method not found.",
                ));
            }
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .unwrap_or_else(|e| e)
}

pub(super) async fn product_v2_get(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((package, token)): Path<(String, String)>,
) -> Response {
    shared.count("google.productsv2.get");
    with_purchase(&shared, &headers, &package, &token, |p| {
        if p.kind != Kind::Inapp {
            return Err(invalid_token());
        }
        Ok(Json(product_purchase_v2(p)).into_response())
    })
    .unwrap_or_else(|e| e)
}

pub(super) async fn subscription_v2_get(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((package, token)): Path<(String, String)>,
) -> Response {
    shared.count("google.subscriptionsv2.get");
    with_purchase(&shared, &headers, &package, &token, |p| {
        if p.kind != Kind::Subs {
            return Err(invalid_token());
        }
        Ok(Json(subscription_purchase_v2(p)).into_response())
    })
    .unwrap_or_else(|e| e)
}

pub(super) async fn subscription_v2_action(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((package, token_action)): Path<(String, String)>,
    // Read the body even when unused: a connection with an unread body cannot be reused.
    body: axum::body::Bytes,
) -> Response {
    let Some((token, action)) = token_action.rsplit_once(':') else {
        return error(StatusCode::NOT_FOUND, "notFound", "Method not found.");
    };
    shared.count(&format!("google.subscriptionsv2.{action}"));
    let response = with_purchase(&shared, &headers, &package, token, |p| {
        let s = p.subscription.as_mut().ok_or_else(invalid_token)?;
        match action {
            "cancel" => {
                s.auto_renew = false;
                s.state = SubscriptionState::Canceled;
                s.cancellation = Some("developerInitiatedCancellation".to_owned());
            }
            "defer" => {
                let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let context = &request["deferralContext"];
                if context["etag"].as_str() != Some(s.etag.to_string().as_str()) {
                    return Err(error(StatusCode::BAD_REQUEST, "invalid", "The etag does not match the subscription's current etag."));
                }
                // google-duration: seconds with an `s` suffix, e.g. "86400s".
                let seconds = context["deferDuration"]
                    .as_str()
                    .and_then(|d| d.strip_suffix('s'))
                    .and_then(|d| d.parse::<f64>().ok())
                    .filter(|d| *d > 0.0);
                let Some(seconds) = seconds else {
                    return Err(error(StatusCode::BAD_REQUEST, "invalid", "deferDuration must be a positive duration such as \"86400s\"."));
                };
                #[allow(clippy::cast_possible_truncation, reason = "durations are far below i64 milliseconds")]
                let new_expiry = s.expiry_ms + (seconds * 1000.0) as i64;
                if context["validateOnly"] != json!(true) {
                    s.expiry_ms = new_expiry;
                    s.etag += 1;
                }
                let product = p.product_id.clone();
                return Ok(Json(json!({ "itemExpiryTimeDetails": [{ "productId": product, "expiryTime": rfc3339(new_expiry) }] })).into_response());
            }
            "revoke" => {
                s.auto_renew = false;
                s.state = SubscriptionState::Expired;
                s.expiry_ms = Utc::now().timestamp_millis();
                s.cancellation = Some("developerInitiatedCancellation".to_owned());
            }
            _ => {
                return Err(error(
                    StatusCode::NOT_FOUND,
                    "notFound",
                    "Method not found.",
                ));
            }
        }
        s.etag += 1;
        Ok(Json(json!({})).into_response())
    })
    .unwrap_or_else(|e| e);
    // A revocation refunds (fully or prorated): Google lists it among voided purchases.
    if action == "revoke" && response.status().is_success() {
        record_void(&mut lock(&shared.google), token, VoidSpec::whole(1), true);
    }
    response
}

pub(super) async fn subscription_v1_action(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((package, _subscription, token_action)): Path<(String, String, String)>,
    // Read the body even when unused: a connection with an unread body cannot be reused.
    _body: axum::body::Bytes,
) -> Response {
    let Some((token, action)) = token_action.rsplit_once(':') else {
        return error(StatusCode::NOT_FOUND, "notFound", "Method not found.");
    };
    shared.count(&format!("google.subscriptions.{action}"));
    with_purchase(&shared, &headers, &package, token, |p| {
        if p.kind != Kind::Subs || action != "acknowledge" {
            return Err(error(
                StatusCode::NOT_FOUND,
                "notFound",
                "Method not found.",
            ));
        }
        let state = p.subscription.as_ref().map(|s| s.state);
        if matches!(
            state,
            Some(SubscriptionState::Pending | SubscriptionState::Expired)
        ) {
            return Err(invalid_state());
        }
        p.acknowledged = true;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .unwrap_or_else(|e| e)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct VoidedQuery {
    start_time: Option<i64>,
    end_time: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<u8>,
    max_results: Option<usize>,
    token: Option<String>,
    include_quantity_based_partial_refund: Option<bool>,
}

pub(super) async fn voided_list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(package): Path<String>,
    Query(query): Query<VoidedQuery>,
) -> Response {
    shared.count("google.voidedpurchases.list");
    if let Err(e) = authorize(&shared, &headers) {
        return e;
    }
    let now = Utc::now().timestamp_millis();
    let start = query.start_time.unwrap_or(now - 30 * 24 * 3600 * 1000);
    let end = query.end_time.unwrap_or(now);
    let include_subscriptions = query.kind == Some(1);
    let google = lock(&shared.google);
    let matching: Vec<Value> = google
        .voided
        .iter()
        .filter(|v| v["packageName"] == package)
        .filter(|v| include_subscriptions || v["_subscription"] != json!(true))
        .filter(|v| {
            query.include_quantity_based_partial_refund == Some(true)
                || v["_partial"] != json!(true)
        })
        .filter(|v| {
            let recorded = v["_recordedMillis"].as_i64().unwrap_or(0);
            recorded >= start && recorded <= end
        })
        .cloned()
        .collect();
    let offset: usize = query
        .token
        .as_deref()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let page = query.max_results.unwrap_or(1000).clamp(1, 1000);
    let items: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(page)
        .map(|v| {
            let mut v = v.clone();
            if let Some(map) = v.as_object_mut() {
                map.retain(|k, _| !k.starts_with('_') && k != "packageName");
            }
            v
        })
        .collect();
    let mut body = json!({
        "voidedPurchases": items,
        "pageInfo": { "totalResults": matching.len(), "resultPerPage": page, "startIndex": offset },
    });
    if offset + page < matching.len() {
        body["tokenPagination"] = json!({ "nextPageToken": (offset + page).to_string() });
    }
    Json(body).into_response()
}

pub(super) async fn order_action(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((package, order_action)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    // Read the body even when unused: a connection with an unread body cannot be reused.
    _body: axum::body::Bytes,
) -> Response {
    let Some((order_id, "refund")) = order_action.rsplit_once(':') else {
        return error(StatusCode::NOT_FOUND, "notFound", "Method not found.");
    };
    shared.count("google.orders.refund");
    if let Err(e) = authorize(&shared, &headers) {
        return e;
    }
    let revoke = query.get("revoke").is_some_and(|v| v == "true");
    let mut google = lock(&shared.google);
    let token = google
        .purchases
        .values()
        .find(|p| {
            p.package == package
                && (p.order_id == order_id
                    || p.subscription
                        .as_ref()
                        .is_some_and(|s| s.latest_order_id == order_id))
        })
        .map(|p| p.token.clone());
    let Some(token) = token else {
        return error(
            StatusCode::NOT_FOUND,
            "notFound",
            "The order was not found.",
        );
    };
    void(&mut google, &token, VoidSpec::whole(1), revoke);
    Json(json!({})).into_response()
}
