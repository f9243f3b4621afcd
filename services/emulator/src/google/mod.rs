//! Google Play: the service-account OAuth token endpoint and the Android Publisher v3 purchase
//! endpoints, with Google's JSON error format; control routes to make purchases and drive their
//! life cycle, each returning the RTDN Pub/Sub push body Google would send.

// Handlers fail with the HTTP response Google would send; boxing it would buy nothing here.
#![allow(clippy::result_large_err)]

mod api;
mod control;
mod errors;
pub(crate) mod model;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub(crate) use errors::error;

use crate::state::Shared;
use api::{
    order_action, product_action, product_get, product_v2_get, subscription_v1_action,
    subscription_v2_action, subscription_v2_get, token, voided_list,
};
use control::{
    license_key, make_purchase, purchase_control, purchase_view, service_account,
    subscription_control,
};

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
