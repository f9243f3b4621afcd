//! App Store: legacy `verifyReceipt` (production and sandbox, 21007/21008, shared secret,
//! `exclude-old-transactions`), the App Store Server API (`/inApps/...`, ES256 bearer JWT), and
//! App Store Server Notifications V2. Signed data is a JWS (ES256) whose `x5c` chain runs
//! leaf → intermediate → root, generated here with Apple's OIDs, so a verifier that trusts the
//! emulator's root (`/emulator/apple/root.der`) checks it exactly as it checks Apple's.
//!
//! Receipts are the emulator's own opaque base64 blob (real receipts are PKCS#7 that only Apple
//! can sign); what matters — the `verifyReceipt` answer — follows Apple's format.

// Handlers fail with the HTTP response Apple would send; boxing it would buy nothing here.
#![allow(clippy::result_large_err)]

mod api;
mod control;
pub(crate) mod model;
mod signing;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post, put};

use crate::state::Shared;
use api::{
    consumption, lookup_order, notification_history, refund_history, subscription_statuses,
    transaction_history, transaction_info, verify_receipt,
};
use control::{
    api_key, make_purchase, root_der, shared_secret, subscription_control, transaction_control,
};

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/{env}/verifyReceipt", post(verify_receipt))
        .route("/{env}/inApps/v1/transactions/{id}", get(transaction_info))
        .route("/{env}/inApps/v2/history/{id}", get(transaction_history))
        .route(
            "/{env}/inApps/v1/subscriptions/{id}",
            get(subscription_statuses),
        )
        .route("/{env}/inApps/v1/lookup/{order_id}", get(lookup_order))
        .route("/{env}/inApps/v2/refund/lookup/{id}", get(refund_history))
        .route(
            "/{env}/inApps/v1/notifications/history",
            post(notification_history),
        )
        .route(
            "/{env}/inApps/v2/transactions/consumption/{id}",
            put(consumption),
        )
}

pub(crate) fn control_router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/apple/root.der", get(root_der))
        .route("/apple/api-key", get(api_key))
        .route("/apple/apps/{bundle}/shared-secret", get(shared_secret))
        .route("/apple/purchases", post(make_purchase))
        .route(
            "/apple/transactions/{id}/{action}",
            post(transaction_control),
        )
        .route(
            "/apple/subscriptions/{original_id}/{action}",
            post(subscription_control),
        )
}
