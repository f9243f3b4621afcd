//! Google Play: the service-account OAuth token endpoint and the Android Publisher v3 purchase
//! endpoints, with Google's JSON error format; control routes to make purchases and drive their
//! life cycle, each returning the RTDN Pub/Sub push body Google would send.

// Handlers fail with the HTTP response Google would send; boxing it would buy nothing here.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::keys::{RsaKey, google_order_id, random_token};
use crate::state::{KeyCache, Shared, lock};

const SCOPE: &str = "https://www.googleapis.com/auth/androidpublisher";
const CLIENT_EMAIL: &str = "iap-emulator@iap-emulator.iam.gserviceaccount.com";
const MONTH_MS: i64 = 30 * 24 * 3600 * 1000;

/// Google Play's side of the emulator.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GoogleStore {
    service_account: RsaKey,
    service_account_key_id: String,
    // Derived from the address the emulator runs at, which may change between runs.
    #[serde(skip)]
    token_uri: String,
    #[serde(skip)]
    access_tokens: HashMap<String, i64>,
    license_keys: KeyCache<RsaKey>,
    purchases: HashMap<String, Purchase>,
    voided: Vec<Value>,
    message_ids: u64,
    /// Notifications made since the last request finished, for the push dispatcher.
    #[serde(skip)]
    pub(crate) outbox: Vec<Value>,
}

impl GoogleStore {
    pub(crate) fn new(base_url: &str) -> Self {
        Self {
            service_account: RsaKey::generate(2048),
            service_account_key_id: random_token(20),
            token_uri: format!("{base_url}/google/oauth2/token"),
            access_tokens: HashMap::new(),
            license_keys: KeyCache::default(),
            purchases: HashMap::new(),
            voided: Vec::new(),
            message_ids: 0,
            outbox: Vec::new(),
        }
    }

    fn license_key(&mut self, package: &str) -> RsaKey {
        self.license_keys
            .get_or_make(package, || RsaKey::generate(2048))
    }

    /// The Pub/Sub push body carrying a DeveloperNotification.
    #[allow(
        clippy::needless_pass_by_value,
        reason = "callers build the body in place"
    )]
    fn rtdn(&mut self, package: &str, notification: (&str, Value)) -> Value {
        self.message_ids += 1;
        let now = Utc::now();
        let developer_notification = json!({
            "version": "1.0",
            "packageName": package,
            "eventTimeMillis": now.timestamp_millis().to_string(),
            notification.0: notification.1,
        });
        let data = STANDARD.encode(developer_notification.to_string());
        let id = (9_000_000_000_u64 + self.message_ids).to_string();
        let published = rfc3339(now.timestamp_millis());
        let envelope = json!({
            "message": {
                "attributes": {},
                "data": data,
                "messageId": id, "message_id": id,
                "publishTime": published, "publish_time": published,
            },
            "subscription": "projects/iap-emulator/subscriptions/play-rtdn",
        });
        self.outbox.push(envelope.clone());
        envelope
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Inapp,
    Subs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum PurchaseState {
    Purchased,
    Cancelled,
    Pending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum SubscriptionState {
    Pending,
    Active,
    Paused,
    InGracePeriod,
    OnHold,
    Canceled,
    Expired,
}

impl SubscriptionState {
    fn wire(self) -> &'static str {
        match self {
            SubscriptionState::Pending => "SUBSCRIPTION_STATE_PENDING",
            SubscriptionState::Active => "SUBSCRIPTION_STATE_ACTIVE",
            SubscriptionState::Paused => "SUBSCRIPTION_STATE_PAUSED",
            SubscriptionState::InGracePeriod => "SUBSCRIPTION_STATE_IN_GRACE_PERIOD",
            SubscriptionState::OnHold => "SUBSCRIPTION_STATE_ON_HOLD",
            SubscriptionState::Canceled => "SUBSCRIPTION_STATE_CANCELED",
            SubscriptionState::Expired => "SUBSCRIPTION_STATE_EXPIRED",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Subscription {
    state: SubscriptionState,
    expiry_ms: i64,
    auto_renew: bool,
    latest_order_id: String,
    /// The renewal Google is collecting in grace or on hold (`renewalDeclined.pendingOrderId`;
    /// also the deprecated top-level `latestOrderId` then).
    #[serde(default)]
    pending_order_id: Option<String>,
    renewals: u32,
    linked_purchase_token: Option<String>,
    free_trial: bool,
    auto_resume_ms: Option<i64>,
    cancellation: Option<String>,
    etag: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Purchase {
    package: String,
    product_id: String,
    token: String,
    order_id: String,
    kind: Kind,
    purchase_time_ms: i64,
    state: PurchaseState,
    consumed: bool,
    acknowledged: bool,
    test: bool,
    quantity: u32,
    refundable_quantity: u32,
    account_id: Option<String>,
    profile_id: Option<String>,
    developer_payload: String,
    region: String,
    price_micros: i64,
    currency: String,
    // Google stops answering for a token 60 days after expiry (410).
    gone: bool,
    subscription: Option<Subscription>,
}

fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_else(Utc::now)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An error in Google's JSON format.
pub(crate) fn error(status: StatusCode, reason: &str, message: &str) -> Response {
    let canonical = match status.as_u16() {
        400 => Some("INVALID_ARGUMENT"),
        401 => Some("UNAUTHENTICATED"),
        403 => Some("PERMISSION_DENIED"),
        404 => Some("NOT_FOUND"),
        409 => Some("ABORTED"),
        429 => Some("RESOURCE_EXHAUSTED"),
        _ => None,
    };
    let mut body = json!({
        "error": {
            "code": status.as_u16(),
            "message": message,
            "errors": [{ "message": message, "domain": "global", "reason": reason }],
        }
    });
    if let Some(canonical) = canonical {
        body["error"]["status"] = json!(canonical);
    }
    (status, Json(body)).into_response()
}

fn invalid_token() -> Response {
    error(StatusCode::BAD_REQUEST, "invalid", "Invalid Value")
}

fn token_of_another_package() -> Response {
    let message = "The purchase token does not match the package name.";
    let body = json!({
        "error": {
            "code": 400,
            "message": message,
            "status": "INVALID_ARGUMENT",
            "errors": [{
                "domain": "androidpublisher",
                "reason": "purchaseTokenDoesNotMatchPackageName",
                "message": message,
                "locationType": "parameter",
                "location": "token",
            }],
        }
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn gone() -> Response {
    error(
        StatusCode::GONE,
        "purchaseTokenNoLongerValid",
        "The purchase token is no longer valid.",
    )
}

fn invalid_state() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "invalidPurchaseState",
        "The purchase is not in a valid state to perform the desired operation.",
    )
}

pub(crate) fn router() -> Router<Arc<Shared>> {
    let purchases = "/androidpublisher/v3/applications/{package}/purchases";
    Router::new()
        .route("/oauth2/token", post(token))
        .route(
            &format!("{purchases}/products/{{product}}/tokens/{{token}}"),
            get(product_get).post(product_action),
        )
        .route(
            &format!("{purchases}/productsv2/tokens/{{token}}"),
            get(product_v2_get),
        )
        .route(
            &format!("{purchases}/subscriptionsv2/tokens/{{token}}"),
            get(subscription_v2_get).post(subscription_v2_action),
        )
        .route(
            &format!("{purchases}/subscriptions/{{subscription}}/tokens/{{token}}"),
            post(subscription_v1_action),
        )
        .route(&format!("{purchases}/voidedpurchases"), get(voided_list))
        .route(
            "/androidpublisher/v3/applications/{package}/orders/{order}",
            post(order_action),
        )
}

pub(crate) fn control_router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/google/service-account.json", get(service_account))
        .route("/google/apps/{package}/license-key", get(license_key))
        .route("/google/purchases", post(make_purchase))
        .route("/google/purchases/{token}", get(purchase_view))
        .route("/google/purchases/{token}/{action}", post(purchase_control))
        .route(
            "/google/subscriptions/{token}/{action}",
            post(subscription_control),
        )
}

// ---- OAuth ----

#[derive(Debug, Deserialize)]
struct TokenRequest {
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

async fn token(State(shared): State<Arc<Shared>>, Form(request): Form<TokenRequest>) -> Response {
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

fn product_purchase(p: &Purchase) -> Value {
    let mut body = json!({
        "kind": "androidpublisher#productPurchase",
        "purchaseTimeMillis": p.purchase_time_ms.to_string(),
        "purchaseState": match p.state { PurchaseState::Purchased => 0, PurchaseState::Cancelled => 1, PurchaseState::Pending => 2 },
        "consumptionState": i32::from(p.consumed),
        "developerPayload": p.developer_payload,
        "orderId": p.order_id,
        "acknowledgementState": i32::from(p.acknowledged),
        "quantity": p.quantity,
        "refundableQuantity": p.refundable_quantity,
        "regionCode": p.region,
    });
    if p.test {
        body["purchaseType"] = json!(0);
    }
    if let Some(id) = &p.account_id {
        body["obfuscatedExternalAccountId"] = json!(id);
    }
    if let Some(id) = &p.profile_id {
        body["obfuscatedExternalProfileId"] = json!(id);
    }
    body
}

fn product_purchase_v2(p: &Purchase) -> Value {
    let state = match p.state {
        PurchaseState::Purchased => "PURCHASED",
        PurchaseState::Cancelled => "CANCELLED",
        PurchaseState::Pending => "PENDING",
    };
    let mut body = json!({
        "kind": "androidpublisher#productPurchaseV2",
        "orderId": p.order_id,
        "purchaseStateContext": { "purchaseState": state },
        "acknowledgementState": if p.acknowledged { "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED" } else { "ACKNOWLEDGEMENT_STATE_PENDING" },
        "regionCode": p.region,
        "productLineItem": [{
            "productId": p.product_id,
            "productOfferDetails": {
                "consumptionState": if p.consumed { "CONSUMPTION_STATE_CONSUMED" } else { "CONSUMPTION_STATE_YET_TO_BE_CONSUMED" },
                "quantity": p.quantity,
                "refundableQuantity": p.refundable_quantity,
                "offerTags": [],
            },
        }],
    });
    if p.state != PurchaseState::Pending {
        body["purchaseCompletionTime"] = json!(rfc3339(p.purchase_time_ms));
    }
    if p.test {
        body["testPurchaseContext"] = json!({ "fopType": "TEST" });
    }
    if let Some(id) = &p.account_id {
        body["obfuscatedExternalAccountId"] = json!(id);
    }
    if let Some(id) = &p.profile_id {
        body["obfuscatedExternalProfileId"] = json!(id);
    }
    body
}

fn subscription_purchase_v2(p: &Purchase) -> Value {
    let Some(s) = &p.subscription else {
        return json!({});
    };
    let units = p.price_micros / 1_000_000;
    let nanos = (p.price_micros % 1_000_000) * 1000;
    let mut body = json!({
        "kind": "androidpublisher#subscriptionPurchaseV2",
        "regionCode": p.region,
        "subscriptionState": s.state.wire(),
        "acknowledgementState": if p.acknowledged { "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED" } else { "ACKNOWLEDGEMENT_STATE_PENDING" },
        "etag": s.etag.to_string(),
        "externalAccountIdentifiers": {},
        "lineItems": [{
            "productId": p.product_id,
            "expiryTime": rfc3339(s.expiry_ms),
            "latestSuccessfulOrderId": s.latest_order_id,
            "autoRenewingPlan": {
                "autoRenewEnabled": s.auto_renew,
                "recurringPrice": { "currencyCode": p.currency, "units": units.to_string(), "nanos": nanos },
            },
            "offerDetails": { "basePlanId": "monthly", "offerTags": [] },
            "offerPhase": if s.free_trial && s.renewals == 0 { json!({ "freeTrial": {} }) } else { json!({ "basePrice": {} }) },
        }],
    });
    if s.state != SubscriptionState::Pending {
        body["startTime"] = json!(rfc3339(p.purchase_time_ms));
    }
    if let Some(id) = &p.account_id {
        body["externalAccountIdentifiers"]["obfuscatedExternalAccountId"] = json!(id);
    }
    if let Some(id) = &p.profile_id {
        body["externalAccountIdentifiers"]["obfuscatedExternalProfileId"] = json!(id);
    }
    if p.test {
        body["testPurchase"] = json!({});
    }
    if let Some(linked) = &s.linked_purchase_token {
        body["linkedPurchaseToken"] = json!(linked);
    }
    if let (SubscriptionState::Paused, Some(resume)) = (s.state, s.auto_resume_ms) {
        body["pausedStateContext"] = json!({ "autoResumeTime": rfc3339(resume) });
    }
    if let Some(kind) = &s.cancellation {
        body["canceledStateContext"] = json!({ kind.as_str(): {} });
    }
    // Deprecated but still sent: the newest order, which in grace or on hold is the renewal
    // Google has not collected yet.
    body["latestOrderId"] = json!(s.pending_order_id.as_ref().unwrap_or(&s.latest_order_id));
    if let Some(pending) = &s.pending_order_id {
        let context = json!({ "renewalDeclined": { "pendingOrderId": pending } });
        match s.state {
            SubscriptionState::InGracePeriod => body["inGracePeriodStateContext"] = context,
            SubscriptionState::OnHold => body["onHoldStateContext"] = context,
            _ => {}
        }
    }
    body
}

async fn product_get(
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
struct AcknowledgeBody {
    developer_payload: Option<String>,
}

async fn product_action(
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

async fn product_v2_get(
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

async fn subscription_v2_get(
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

async fn subscription_v2_action(
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

async fn subscription_v1_action(
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
struct VoidedQuery {
    start_time: Option<i64>,
    end_time: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<u8>,
    max_results: Option<usize>,
    token: Option<String>,
    include_quantity_based_partial_refund: Option<bool>,
}

async fn voided_list(
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

async fn order_action(
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

/// How a refund is recorded: Google's `voidedSource` and `voidedReason`, and for a
/// quantity-based partial refund of a one-time product the units refunded.
#[derive(Debug, Clone, Copy, Deserialize)]
struct VoidSpec {
    #[serde(default)]
    source: u8,
    #[serde(default = "remorse")]
    reason: u8,
    #[serde(default)]
    quantity: Option<u32>,
}

fn remorse() -> u8 {
    1
}

impl VoidSpec {
    /// A whole refund by `source`, for remorse.
    fn whole(source: u8) -> Self {
        Self {
            source,
            reason: remorse(),
            quantity: None,
        }
    }
}

/// Records a refund the way Google reports it (voided purchases list) and returns the RTDN.
fn void(google: &mut GoogleStore, token: &str, spec: VoidSpec, revoke: bool) -> Option<Value> {
    let notification = record_void(google, token, spec, revoke)?;
    let package = google.purchases.get(token)?.package.clone();
    Some(google.rtdn(&package, ("voidedPurchaseNotification", notification)))
}

/// Lists a refund or revocation among the voided purchases, as Google does for every refund,
/// chargeback and revocation of a one-time product or a subscription, and ends what it paid for.
/// Returns the body of the voided-purchase notification, for the caller to send or not.
fn record_void(
    google: &mut GoogleStore,
    token: &str,
    spec: VoidSpec,
    revoke: bool,
) -> Option<Value> {
    let now = Utc::now().timestamp_millis();
    let p = google.purchases.get_mut(token)?;
    let subscription = p.kind == Kind::Subs;
    // A quantity-based partial refund of a one-time product: fewer units than are still
    // refundable. Anything else refunds the whole purchase.
    let partial = spec
        .quantity
        .filter(|q| !subscription && *q > 0 && *q < p.refundable_quantity);
    let order_id = p
        .subscription
        .as_ref()
        .map_or_else(|| p.order_id.clone(), |s| s.latest_order_id.clone());
    let mut record = json!({
        "kind": "androidpublisher#voidedPurchase",
        "purchaseToken": p.token,
        "orderId": order_id,
        "purchaseTimeMillis": p.purchase_time_ms.to_string(),
        "voidedTimeMillis": now.to_string(),
        "voidedSource": spec.source,
        "voidedReason": spec.reason,
        "packageName": p.package,
        "_subscription": subscription,
        "_recordedMillis": now,
    });
    match partial {
        Some(units) => {
            // Listed only to callers that ask for partial refunds, as Google does.
            record["voidedQuantity"] = json!(units);
            record["_partial"] = json!(true);
            p.refundable_quantity -= units;
        }
        None => p.refundable_quantity = 0,
    }
    if let Some(s) = p.subscription.as_mut().filter(|_| revoke || subscription) {
        s.state = SubscriptionState::Expired;
        s.auto_renew = false;
        s.expiry_ms = now;
        s.etag += 1;
    }
    let notification = json!({
        "purchaseToken": token,
        "orderId": order_id,
        "productType": if subscription { 1 } else { 2 },
        // 1 a full refund, 2 a quantity-based partial refund.
        "refundType": if partial.is_some() { 2 } else { 1 },
    });
    google.voided.push(record);
    Some(notification)
}

// ---- control API ----

async fn service_account(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(lock(&shared.google).service_account_json())
}

impl GoogleStore {
    /// The service-account key file the token endpoint accepts.
    pub(crate) fn service_account_json(&self) -> Value {
        let google = self;
        json!({
            "type": "service_account",
            "project_id": "iap-emulator",
            "private_key_id": google.service_account_key_id,
            "private_key": google.service_account.private_pkcs8_pem(),
            "client_email": CLIENT_EMAIL,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": google.token_uri,
        })
    }

    /// A package's licence key, base64 DER SPKI.
    pub(crate) fn license_key_base64(&mut self, package: &str) -> String {
        self.license_key(package).public_spki_base64()
    }
}

async fn license_key(
    State(shared): State<Arc<Shared>>,
    Path(package): Path<String>,
) -> Json<Value> {
    let key = lock(&shared.google).license_key(&package);
    Json(json!({ "package_name": package, "public_key_base64": key.public_spki_base64() }))
}

#[derive(Debug, Deserialize)]
struct MakePurchase {
    package_name: String,
    product_id: String,
    kind: Kind,
    #[serde(default)]
    obfuscated_account_id: Option<String>,
    #[serde(default)]
    obfuscated_profile_id: Option<String>,
    #[serde(default)]
    test_purchase: bool,
    #[serde(default)]
    pending: bool,
    #[serde(default = "one")]
    quantity: u32,
    #[serde(default = "default_price")]
    price_micros: i64,
    #[serde(default = "default_currency")]
    currency: String,
    #[serde(default)]
    free_trial: bool,
    #[serde(default)]
    linked_purchase_token: Option<String>,
}

fn one() -> u32 {
    1
}
fn default_price() -> i64 {
    990_000
}
fn default_currency() -> String {
    "USD".to_owned()
}

/// The client-side `Purchase.getOriginalJson()`, with Google's field names.
fn original_json(p: &Purchase) -> String {
    let mut json = json!({
        "orderId": p.order_id,
        "packageName": p.package,
        "productId": p.product_id,
        "purchaseTime": p.purchase_time_ms,
        // In the raw JSON 4 means PENDING; purchases are 0.
        "purchaseState": if p.state == PurchaseState::Pending { 4 } else { 0 },
        "purchaseToken": p.token,
        "quantity": p.quantity,
        "acknowledged": p.acknowledged,
    });
    if p.kind == Kind::Subs {
        json["autoRenewing"] = json!(true);
    }
    if let Some(id) = &p.account_id {
        json["obfuscatedAccountId"] = json!(id);
    }
    if let Some(id) = &p.profile_id {
        json["obfuscatedProfileId"] = json!(id);
    }
    json.to_string()
}

async fn make_purchase(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<MakePurchase>,
) -> Response {
    shared.count("control.google.purchase");
    if request.quantity == 0 || request.product_id.is_empty() || request.package_name.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "package_name, product_id and a positive quantity are required",
        )
            .into_response();
    }
    let now = Utc::now().timestamp_millis();
    let token = format!("{}.AO-J1O{}", random_token(18), random_token(48));
    let order_id = google_order_id();
    let pending = request.pending;
    let subscription = (request.kind == Kind::Subs).then(|| Subscription {
        state: if pending {
            SubscriptionState::Pending
        } else {
            SubscriptionState::Active
        },
        expiry_ms: now + MONTH_MS,
        auto_renew: true,
        latest_order_id: order_id.clone(),
        pending_order_id: None,
        renewals: 0,
        linked_purchase_token: request.linked_purchase_token.clone(),
        free_trial: request.free_trial,
        auto_resume_ms: None,
        cancellation: None,
        etag: 1,
    });
    let purchase = Purchase {
        package: request.package_name.clone(),
        product_id: request.product_id.clone(),
        token: token.clone(),
        order_id: order_id.clone(),
        kind: request.kind,
        purchase_time_ms: now,
        state: if pending {
            PurchaseState::Pending
        } else {
            PurchaseState::Purchased
        },
        consumed: false,
        acknowledged: false,
        test: request.test_purchase,
        quantity: request.quantity,
        refundable_quantity: request.quantity,
        account_id: request.obfuscated_account_id,
        profile_id: request.obfuscated_profile_id,
        developer_payload: String::new(),
        region: "US".to_owned(),
        price_micros: request.price_micros,
        currency: request.currency,
        gone: false,
        subscription,
    };
    let json = original_json(&purchase);
    let mut google = lock(&shared.google);
    // The replaced subscription stops renewing: Google cancels it as a replacement.
    let replaced = request
        .linked_purchase_token
        .as_deref()
        .and_then(|t| google.purchases.get_mut(t))
        .and_then(|old| old.subscription.as_mut());
    if let Some(s) = replaced {
        s.auto_renew = false;
        s.state = SubscriptionState::Expired;
        s.expiry_ms = now;
        s.cancellation = Some("replacementCancellation".to_owned());
        s.etag += 1;
    }
    let signature = google
        .license_key(&request.package_name)
        .sign_sha1_base64(json.as_bytes());
    google.purchases.insert(token.clone(), purchase);
    let notification = if pending {
        None
    } else if request.kind == Kind::Subs {
        Some(google.rtdn(
            &request.package_name,
            (
                "subscriptionNotification",
                json!({ "version": "1.0", "notificationType": 4, "purchaseToken": token }),
            ),
        ))
    } else {
        Some(google.rtdn(
            &request.package_name,
            (
                "oneTimeProductNotification",
                json!({ "version": "1.0", "notificationType": 1, "purchaseToken": token, "sku": request.product_id }),
            ),
        ))
    };
    Json(json!({
        "purchase_token": token,
        "order_id": order_id,
        "original_json": json,
        "signature": signature,
        "notification": notification,
    }))
    .into_response()
}

/// `GET /emulator/google/purchases/{token}`: what Google holds about a purchase, for a test's
/// checks (was it acknowledged or consumed, is it still paid).
async fn purchase_view(State(shared): State<Arc<Shared>>, Path(token): Path<String>) -> Response {
    let google = lock(&shared.google);
    let Some(p) = google.purchases.get(&token) else {
        return (StatusCode::NOT_FOUND, "unknown purchase token").into_response();
    };
    let state = match p.state {
        PurchaseState::Purchased => "purchased",
        PurchaseState::Cancelled => "cancelled",
        PurchaseState::Pending => "pending",
    };
    Json(json!({
        "package_name": p.package,
        "product_id": p.product_id,
        "order_id": p.order_id,
        "state": state,
        "acknowledged": p.acknowledged,
        "consumed": p.consumed,
    }))
    .into_response()
}

async fn purchase_control(
    State(shared): State<Arc<Shared>>,
    Path((token, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    // `refund` takes `{"quantity": n, "source": s, "reason": r}` (all optional): a
    // quantity-based partial refund of n units, Google's voidedSource and voidedReason.
    let spec = if body.iter().all(u8::is_ascii_whitespace) {
        VoidSpec::whole(0)
    } else {
        match serde_json::from_slice::<VoidSpec>(&body) {
            Ok(spec) => spec,
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        }
    };
    shared.count(&format!("control.google.purchase.{action}"));
    let mut google = lock(&shared.google);
    let Some(p) = google.purchases.get_mut(&token) else {
        return (StatusCode::NOT_FOUND, "unknown purchase token").into_response();
    };
    let package = p.package.clone();
    let notification = match action.as_str() {
        "complete" => {
            if p.state != PurchaseState::Pending {
                return (StatusCode::CONFLICT, "purchase is not pending").into_response();
            }
            p.state = PurchaseState::Purchased;
            p.purchase_time_ms = Utc::now().timestamp_millis();
            let (kind, product) = (p.kind, p.product_id.clone());
            if let Some(s) = p.subscription.as_mut() {
                s.state = SubscriptionState::Active;
            }
            if kind == Kind::Subs {
                google.rtdn(
                    &package,
                    (
                        "subscriptionNotification",
                        json!({ "version": "1.0", "notificationType": 4, "purchaseToken": token }),
                    ),
                )
            } else {
                google.rtdn(&package, ("oneTimeProductNotification", json!({ "version": "1.0", "notificationType": 1, "purchaseToken": token, "sku": product })))
            }
        }
        "cancel_pending" => {
            if p.state != PurchaseState::Pending {
                return (StatusCode::CONFLICT, "purchase is not pending").into_response();
            }
            p.state = PurchaseState::Cancelled;
            let product = p.product_id.clone();
            google.rtdn(&package, ("oneTimeProductNotification", json!({ "version": "1.0", "notificationType": 2, "purchaseToken": token, "sku": product })))
        }
        "refund" => match void(&mut google, &token, spec, true) {
            Some(n) => n,
            None => return (StatusCode::NOT_FOUND, "unknown purchase token").into_response(),
        },
        // Simulates the token's end of life (60 days after expiry): the API answers 410.
        "invalidate_token" => {
            p.gone = true;
            return Json(json!({ "purchase_token": token })).into_response();
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                "actions: complete, cancel_pending, refund, invalidate_token",
            )
                .into_response();
        }
    };
    Json(json!({ "purchase_token": token, "notification": notification })).into_response()
}

async fn subscription_control(
    State(shared): State<Arc<Shared>>,
    Path((token, action)): Path<(String, String)>,
) -> Response {
    shared.count(&format!("control.google.subscription.{action}"));
    let now = Utc::now().timestamp_millis();
    let mut google = lock(&shared.google);
    let Some(p) = google.purchases.get_mut(&token) else {
        return (StatusCode::NOT_FOUND, "unknown purchase token").into_response();
    };
    let package = p.package.clone();
    let base_order = p.order_id.clone();
    let Some(s) = p.subscription.as_mut() else {
        return (StatusCode::BAD_REQUEST, "not a subscription").into_response();
    };
    // RTDN SubscriptionNotification.notificationType (platforms/google.md §3).
    let notification_type = match action.as_str() {
        "renew" => {
            s.latest_order_id = format!("{base_order}..{}", s.renewals);
            s.pending_order_id = None;
            s.renewals += 1;
            s.expiry_ms = s.expiry_ms.max(now) + MONTH_MS;
            s.state = SubscriptionState::Active;
            2
        }
        "enter_grace" => {
            s.pending_order_id = Some(format!("{base_order}..{}", s.renewals));
            s.state = SubscriptionState::InGracePeriod;
            s.expiry_ms = now + 3 * 24 * 3600 * 1000;
            6
        }
        "hold" => {
            s.pending_order_id = Some(format!("{base_order}..{}", s.renewals));
            s.state = SubscriptionState::OnHold;
            s.expiry_ms = now - 1000;
            5
        }
        "recover" | "resume" => {
            // The renewal collected: the pending order is the paid one now.
            s.latest_order_id = s
                .pending_order_id
                .take()
                .unwrap_or_else(|| format!("{base_order}..{}", s.renewals));
            s.renewals += 1;
            s.state = SubscriptionState::Active;
            s.expiry_ms = now + MONTH_MS;
            s.auto_resume_ms = None;
            1
        }
        "cancel" => {
            s.auto_renew = false;
            s.state = SubscriptionState::Canceled;
            s.cancellation = Some("userInitiatedCancellation".to_owned());
            3
        }
        "restart" => {
            s.auto_renew = true;
            s.state = SubscriptionState::Active;
            s.cancellation = None;
            7
        }
        "pause" => {
            s.state = SubscriptionState::Paused;
            s.auto_resume_ms = Some(now + MONTH_MS);
            s.expiry_ms = now;
            10
        }
        "expire" => {
            s.state = SubscriptionState::Expired;
            s.auto_renew = false;
            s.expiry_ms = now - 1000;
            13
        }
        "revoke" => {
            s.state = SubscriptionState::Expired;
            s.auto_renew = false;
            s.expiry_ms = now;
            s.cancellation = Some("developerInitiatedCancellation".to_owned());
            12
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                "actions: renew, enter_grace, hold, recover, resume, cancel, restart, pause, expire, revoke",
            )
                .into_response();
        }
    };
    s.etag += 1;
    let latest_order_id = s.latest_order_id.clone();
    // A revocation refunds the latest period: Google lists it among voided purchases, where
    // a backend confirms the SUBSCRIPTION_REVOKED it receives.
    if notification_type == 12 {
        record_void(&mut google, &token, VoidSpec::whole(2), true);
    }
    let notification = google.rtdn(
        &package,
        ("subscriptionNotification", json!({ "version": "1.0", "notificationType": notification_type, "purchaseToken": token })),
    );
    Json(json!({ "purchase_token": token, "latest_order_id": latest_order_id, "notification": notification })).into_response()
}

impl GoogleStore {
    /// After loading a saved state: the parts that depend on where the emulator runs now.
    pub(crate) fn rebase(&mut self, base_url: &str) {
        self.token_uri = format!("{base_url}/google/oauth2/token");
    }
}
