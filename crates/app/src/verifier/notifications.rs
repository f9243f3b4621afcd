//! `POST /notifications/{apple|google|huawei}`: the stores' server notifications. Each body is
//! authenticated by its store's decoder, stored in the inbox under the store's unique id (a
//! redelivery is a no-op) and answered at once; processing happens asynchronously
//! (`NotificationHandler`). Answers: 200 stored or already stored; 400 a body that is not an
//! authentic notification (the store need not retry it); 401 a Google push without a valid OIDC
//! token when the app requires one; 503 when it cannot be stored now (the store retries).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use iap_domain::Platform;
use iap_domain::notifications::{NotificationDecoder, NotificationInbox};
use iap_domain::ports::StoreError;

/// What the receivers need.
#[derive(Clone)]
pub(crate) struct Receivers {
    pub(crate) decoders: HashMap<Platform, Arc<dyn NotificationDecoder>>,
    pub(crate) inbox: Arc<dyn NotificationInbox>,
}

pub(crate) fn router(receivers: Receivers) -> Router {
    Router::new()
        .route("/notifications/{store}", post(receive))
        .with_state(receivers)
}

async fn receive(
    State(receivers): State<Receivers>,
    Path(store): Path<String>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let Ok(platform) = store.parse::<Platform>() else {
        return (StatusCode::NOT_FOUND, format!("unknown store {store:?}"));
    };
    let Some(decoder) = receivers.decoders.get(&platform) else {
        return (
            StatusCode::NOT_FOUND,
            format!("{platform} notifications are not configured"),
        );
    };
    let decoded = match iap_domain::notifications::decode_checked(decoder.as_ref(), &body).await {
        Ok(decoded) => decoded,
        Err(StoreError::Unavailable { detail, .. }) => {
            return (StatusCode::SERVICE_UNAVAILABLE, detail);
        }
        Err(e) => {
            tracing::warn!(store = %platform, error = %e, "notification refused");
            metrics::counter!("iap_notifications_refused_total", "store" => platform.as_str())
                .increment(1);
            return (StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err(e) = decoder.authenticate(&decoded, authorization).await {
        tracing::warn!(store = %platform, error = %e, "notification push not authenticated");
        metrics::counter!("iap_notifications_refused_total", "store" => platform.as_str())
            .increment(1);
        let status = match e {
            StoreError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        };
        return (status, e.to_string());
    }
    let kind = decoded.inbound.notification_type.clone();
    match receivers.inbox.receive(decoded.inbound).await {
        Ok(new) => {
            let outcome = if new { "stored" } else { "duplicate" };
            metrics::counter!("iap_notifications_received_total", "store" => platform.as_str(), "outcome" => outcome).increment(1);
            tracing::info!(store = %platform, %kind, outcome, "notification received");
            (StatusCode::OK, outcome.to_owned())
        }
        Err(e) => {
            tracing::warn!(store = %platform, error = %e, "notification not stored");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot store the notification now".to_owned(),
            )
        }
    }
}
