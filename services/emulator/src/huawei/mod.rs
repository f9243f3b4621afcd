//! Huawei IAP: the OAuth client-credentials token endpoint, the Order service (verify, confirm,
//! cancelledList) and the Subscription service (get, stop, delay, returnFee, withdrawal), with
//! `Authorization: Basic base64("APPAT:" + token)` and `responseCode` semantics; data signed
//! with SHA256WithRSA or SHA256WithRSA/PSS by a 3072-bit key per app. Control routes make
//! purchases and drive subscriptions, returning the v2 notification Huawei would send.

// Handlers fail with the HTTP response Huawei would send; boxing it would buy nothing here.
#![allow(clippy::result_large_err)]

mod api;
mod control;
pub(crate) mod model;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::state::Shared;
use api::{Site, cancelled_list, order_confirm, order_verify, subscription_api, token};
use control::{credentials, make_purchase, purchase_control, purchase_view, subscription_control};

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
