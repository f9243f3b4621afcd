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

use crate::state::{Shared, lock};

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
}

/// One delivery attempt, for `GET /emulator/notifications/deliveries`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DeliveryRecord {
    store: Store,
    url: String,
    /// HTTP status the receiver answered, if it answered.
    status: Option<u16>,
    error: Option<String>,
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
            for _ in 0..=mode.duplicate {
                let (client, url, body) = (client.clone(), url.clone(), body.clone());
                let deliveries = self.deliveries.clone();
                // Each batch member waits a little longer than the one before, so the receiver
                // sees them in the order chosen here.
                let delay = Duration::from_millis(mode.delay_ms + 20 * index as u64);
                runtime.spawn(async move {
                    tokio::time::sleep(delay).await;
                    let result = client.post(&url).json(&body).send().await;
                    let record = match result {
                        Ok(response) => DeliveryRecord {
                            store,
                            url,
                            status: Some(response.status().as_u16()),
                            error: None,
                        },
                        Err(e) => DeliveryRecord {
                            store,
                            url,
                            status: None,
                            error: Some(e.to_string()),
                        },
                    };
                    lock(&deliveries).push(record);
                });
            }
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
