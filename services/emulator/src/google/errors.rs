//! Google's JSON error bodies (`error.code`, `error.status`, `error.errors[].reason`), as the
//! Android Publisher API sends them.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

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

pub(super) fn invalid_token() -> Response {
    error(StatusCode::BAD_REQUEST, "invalid", "Invalid Value")
}

pub(super) fn token_of_another_package() -> Response {
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

pub(super) fn gone() -> Response {
    error(
        StatusCode::GONE,
        "purchaseTokenNoLongerValid",
        "The purchase token is no longer valid.",
    )
}

pub(super) fn invalid_state() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "invalidPurchaseState",
        "The purchase is not in a valid state to perform the desired operation.",
    )
}
