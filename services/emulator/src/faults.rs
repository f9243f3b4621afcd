//! Fault injection: the next requests matching a prefix fail the way stores fail (5xx, 429 with
//! Retry-After, Google's 409 concurrentUpdate) or answer slowly.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::lock::lock;
use crate::state::Shared;

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// 500 Internal Server Error.
    Http500,
    /// 503 Service Unavailable.
    Http503,
    /// 429 Too Many Requests with `Retry-After: 1`.
    Http429,
    /// Google's 409 `concurrentUpdate`.
    Google409,
    /// Answer normally after `latency_ms`.
    Latency,
    /// Start a response and cut the connection in the middle of the body.
    DropConnection,
}

/// One armed fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Requests whose path starts with this (e.g. `/google/androidpublisher`).
    pub path_prefix: String,
    /// What happens.
    pub kind: FaultKind,
    /// How many matching requests it affects (then it disarms).
    #[serde(default = "one")]
    pub count: u32,
    /// Delay for `latency`.
    #[serde(default)]
    pub latency_ms: u64,
}

fn one() -> u32 {
    1
}

pub(crate) async fn inject(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let fault = {
        let mut faults = lock(&shared.faults);
        let found = faults.iter_mut().find(|f| {
            f.count > 0 && !path.starts_with("/emulator") && path.starts_with(&f.path_prefix)
        });
        let fault = found.map(|f| {
            f.count -= 1;
            f.clone()
        });
        faults.retain(|f| f.count > 0);
        fault
    };
    let Some(fault) = fault else {
        return next.run(request).await;
    };
    shared.count(&format!(
        "fault.{}",
        serde_json::to_value(fault.kind)
            .unwrap_or_default()
            .as_str()
            .unwrap_or("?")
    ));
    match fault.kind {
        FaultKind::Latency => {
            tokio::time::sleep(Duration::from_millis(fault.latency_ms)).await;
            next.run(request).await
        }
        FaultKind::DropConnection => {
            let broken = truncated_body();
            (StatusCode::OK, axum::body::Body::from_stream(broken)).into_response()
        }
        FaultKind::Http500 => (StatusCode::INTERNAL_SERVER_ERROR, "injected fault").into_response(),
        FaultKind::Http503 => (StatusCode::SERVICE_UNAVAILABLE, "injected fault").into_response(),
        // Apple's App Store Server API answers with its error body and `Retry-After` as a UNIX
        // time in milliseconds; the others with seconds.
        FaultKind::Http429 if path.starts_with("/apple/") => {
            let body = axum::Json(
                serde_json::json!({ "errorCode": 4_290_000, "errorMessage": "Rate limit exceeded." }),
            );
            let mut response = (StatusCode::TOO_MANY_REQUESTS, body).into_response();
            let at = chrono::Utc::now().timestamp_millis() + 1000;
            if let Ok(value) = HeaderValue::from_str(&at.to_string()) {
                response.headers_mut().insert("retry-after", value);
            }
            response
        }
        FaultKind::Http429 => {
            let mut response = (StatusCode::TOO_MANY_REQUESTS, "injected fault").into_response();
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            response
        }
        FaultKind::Google409 => crate::google::error(
            StatusCode::CONFLICT,
            "concurrentUpdate",
            "The operation could not be performed since the object was already in the process of being updated.",
        ),
    }
}

/// A body that sends a first chunk and then fails, so the server aborts the connection in the
/// middle of the response and the client sees a truncated reply.
fn truncated_body() -> impl tokio_stream::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(b"{\"partial\":".to_vec()),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected connection drop",
        )),
    ];
    tokio_stream::iter(chunks)
}
