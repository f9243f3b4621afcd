//! Google Play's control API (`/emulator/google/...`): the service account and licence keys,
//! purchases (answering what Play Billing hands the app), and their life cycle, each returning
//! the RTDN Pub/Sub push body Google would send.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{
    Kind, Purchase, PurchaseState, Subscription, SubscriptionState, VoidSpec, original_json,
    record_void, void,
};
use crate::keys::{google_order_id, random_token};
use crate::lock::lock;
use crate::state::Shared;

const MONTH_MS: i64 = 30 * 24 * 3600 * 1000;

pub(super) async fn service_account(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(lock(&shared.google).service_account_json())
}

pub(super) async fn license_key(
    State(shared): State<Arc<Shared>>,
    Path(package): Path<String>,
) -> Json<Value> {
    let key = lock(&shared.google).license_key(&package);
    Json(json!({ "package_name": package, "public_key_base64": key.public_spki_base64() }))
}

#[derive(Debug, Deserialize)]
pub(super) struct MakePurchase {
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

pub(super) async fn make_purchase(
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
pub(super) async fn purchase_view(
    State(shared): State<Arc<Shared>>,
    Path(token): Path<String>,
) -> Response {
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

pub(super) async fn purchase_control(
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

pub(super) async fn subscription_control(
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
