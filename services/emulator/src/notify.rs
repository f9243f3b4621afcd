//! Pushing the stores' server notifications to the URLs a test or studio configured, the way
//! the stores do (an HTTP POST of the store's body), optionally duplicated, delayed, or held and
//! released newest first, so receivers can be tested against what real stores do to them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lock::lock;
use crate::state::Shared;

/// Which store a notification comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Store {
    /// App Store Server Notifications V2.
    Apple,
    /// Real-time developer notifications (Pub/Sub push).
    Google,
    /// Huawei IAP server notifications (v2).
    Huawei,
}

/// How notifications are delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeliveryMode {
    /// Extra copies of every notification (stores deliver at least once).
    pub duplicate: u32,
    /// Wait before each delivery.
    pub delay_ms: u64,
    /// Hold notifications until this many are waiting, then deliver them newest first
    /// (0 or 1: in order).
    pub reverse_batches: u32,
    /// Times a delivery is tried again when the receiver did not answer 2xx (or did not
    /// answer), as stores resend: Apple up to 5 times (production only; sandbox tries once),
    /// Google Pub/Sub until acknowledged, Huawei periodically. 0: one attempt.
    pub retries: u32,
    /// Wait before the first retry, doubled for each later one (the stores wait hours; a test
    /// wants milliseconds), up to 32 times the first. 0 means 1000.
    pub retry_delay_ms: u64,
}

impl DeliveryMode {
    fn retry_delay(&self, retry: u32) -> Duration {
        let base = if self.retry_delay_ms == 0 {
            1000
        } else {
            self.retry_delay_ms
        };
        Duration::from_millis(base.saturating_mul(1 << retry.min(5)))
    }
}

/// Whether the store resends this notification when it is not acknowledged: Apple resends
/// production notifications only.
fn resent_by_store(store: Store, body: &Value) -> bool {
    if store != Store::Apple {
        return true;
    }
    let payload = body["signedPayload"]
        .as_str()
        .and_then(|jws| jws.split('.').nth(1))
        .and_then(|part| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
    payload.is_some_and(|p| p["data"]["environment"] == "Production")
}

/// One delivery attempt, for `GET /emulator/notifications/deliveries`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DeliveryRecord {
    store: Store,
    url: String,
    /// HTTP status the receiver answered, if it answered.
    status: Option<u16>,
    error: Option<String>,
    /// 0 for the first try, then 1, 2, … for the store's resends.
    attempt: u32,
}

/// The dispatcher's state.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    targets: Mutex<HashMap<Store, String>>,
    mode: Mutex<DeliveryMode>,
    held: Mutex<Vec<(Store, String, Value)>>,
    deliveries: Arc<Mutex<Vec<DeliveryRecord>>>,
    client: Mutex<Option<reqwest::Client>>,
}

impl Notifier {
    pub(crate) fn set_target(&self, store: Store, url: Option<String>) {
        let mut targets = lock(&self.targets);
        match url {
            Some(url) => targets.insert(store, url),
            None => targets.remove(&store),
        };
    }

    /// Queues one notification; delivery happens in the background.
    pub(crate) fn publish(&self, store: Store, body: Value) {
        let Some(url) = lock(&self.targets).get(&store).cloned() else {
            return;
        };
        let mode = lock(&self.mode).clone();
        let batch = {
            let mut held = lock(&self.held);
            held.push((store, url, body));
            if mode.reverse_batches > 1 && held.len() < mode.reverse_batches as usize {
                return;
            }
            let mut batch = std::mem::take(&mut *held);
            batch.reverse();
            batch
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let client = self.client();
        for (index, (store, url, body)) in batch.into_iter().enumerate() {
            let retries = if resent_by_store(store, &body) {
                mode.retries
            } else {
                0
            };
            for _ in 0..=mode.duplicate {
                let (client, url, body) = (client.clone(), url.clone(), body.clone());
                let deliveries = self.deliveries.clone();
                let mode = mode.clone();
                // Each batch member waits a little longer than the one before, so the receiver
                // sees them in the order chosen here.
                let delay = Duration::from_millis(mode.delay_ms + 20 * index as u64);
                runtime.spawn(async move {
                    tokio::time::sleep(delay).await;
                    for attempt in 0..=retries {
                        if attempt > 0 {
                            tokio::time::sleep(mode.retry_delay(attempt - 1)).await;
                        }
                        let result = client.post(&url).json(&body).send().await;
                        let record = match result {
                            Ok(response) => DeliveryRecord {
                                store,
                                url: url.clone(),
                                status: Some(response.status().as_u16()),
                                error: None,
                                attempt,
                            },
                            Err(e) => DeliveryRecord {
                                store,
                                url: url.clone(),
                                status: None,
                                error: Some(e.to_string()),
                                attempt,
                            },
                        };
                        let acknowledged = record.status.is_some_and(|s| (200..300).contains(&s));
                        lock(&deliveries).push(record);
                        if acknowledged {
                            break;
                        }
                    }
                });
            }
        }
    }

    /// Delivers what a batch holds now if the mode no longer batches: a store does not keep
    /// notifications back for ever.
    fn release_held(&self) {
        let mode = lock(&self.mode).clone();
        if mode.reverse_batches > 1 {
            return;
        }
        let held = std::mem::take(&mut *lock(&self.held));
        for (store, _, body) in held.into_iter().rev() {
            self.publish(store, body);
        }
    }

    fn client(&self) -> reqwest::Client {
        let mut slot = lock(&self.client);
        slot.get_or_insert_with(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default()
        })
        .clone()
    }
}

/// Takes what the stores produced during a request and hands it to the dispatcher.
pub(crate) fn flush(shared: &Shared) {
    let apple = std::mem::take(&mut lock(&shared.apple).outbox);
    let google = std::mem::take(&mut lock(&shared.google).outbox);
    let huawei = std::mem::take(&mut lock(&shared.huawei).outbox);
    for (store, bodies) in [
        (Store::Apple, apple),
        (Store::Google, google),
        (Store::Huawei, huawei),
    ] {
        for body in bodies {
            shared.notifier.publish(store, body);
        }
    }
}

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/notifications/targets/{store}",
            put(set_target).delete(clear_target),
        )
        .route("/notifications/mode", put(set_mode).get(get_mode))
        .route("/notifications/deliveries", get(deliveries))
}

#[derive(Debug, Deserialize)]
struct Target {
    url: String,
}

async fn set_target(
    State(shared): State<Arc<Shared>>,
    Path(store): Path<Store>,
    Json(target): Json<Target>,
) -> Response {
    if reqwest::Url::parse(&target.url).is_err() {
        return (StatusCode::BAD_REQUEST, "url must be an absolute URL").into_response();
    }
    shared.notifier.set_target(store, Some(target.url));
    StatusCode::NO_CONTENT.into_response()
}

async fn clear_target(State(shared): State<Arc<Shared>>, Path(store): Path<Store>) -> StatusCode {
    shared.notifier.set_target(store, None);
    StatusCode::NO_CONTENT
}

async fn set_mode(
    State(shared): State<Arc<Shared>>,
    Json(mode): Json<DeliveryMode>,
) -> Json<DeliveryMode> {
    *lock(&shared.notifier.mode) = mode.clone();
    shared.notifier.release_held();
    Json(mode)
}

async fn get_mode(State(shared): State<Arc<Shared>>) -> Json<DeliveryMode> {
    Json(lock(&shared.notifier.mode).clone())
}

async fn deliveries(State(shared): State<Arc<Shared>>) -> Json<Vec<DeliveryRecord>> {
    Json(lock(&shared.notifier.deliveries).clone())
}

/// Axum middleware: after every request, push what it produced.
pub(crate) async fn after_request(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let changes_state = request.method() != axum::http::Method::GET;
    let response = next.run(request).await;
    flush(&shared);
    if let Err(e) = if changes_state { shared.save() } else { Ok(()) } {
        tracing::error!(error = %e, "cannot save the emulator state");
    }
    response
}
