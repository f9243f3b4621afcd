//! The one place where use-case errors become gRPC statuses. Every non-OK status carries a
//! `google.rpc.ErrorInfo` (domain `iap.v1`, a stable machine-readable `reason`, metadata) next to
//! the human message; invalid arguments also carry a `BadRequest` naming the field; outages a
//! `RetryInfo`.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use iap_domain::IdError;
use iap_domain::RejectReason;
use iap_domain::ports::StorageError;
use iap_domain::store_ids::StoreIdError;
use iap_domain::usecases::admin::AdminError;
use iap_domain::usecases::create_order::CreateOrderError;
use iap_domain::usecases::deliver::DeliverError;
use iap_domain::usecases::unclaimed::UnclaimedError;
use iap_domain::usecases::verify_purchase::VerifyError;

/// `ErrorInfo.domain` of every error this system returns.
pub const ERROR_DOMAIN: &str = "iap.v1";

/// Converts a use-case error into the status the client sees.
pub trait IntoStatus {
    /// The status.
    fn into_status(self) -> Status;
}

/// A status with an `ErrorInfo`.
pub fn with_reason(
    code: Code,
    reason: &str,
    message: impl Into<String>,
    metadata: HashMap<String, String>,
) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata),
    )
}

/// INVALID_ARGUMENT naming the field, reason `INVALID_ARGUMENT`.
pub fn invalid_argument(field: &str, problem: &str) -> Status {
    let mut details = ErrorDetails::with_bad_request_violation(field, problem);
    details.set_error_info(
        "INVALID_ARGUMENT",
        ERROR_DOMAIN,
        HashMap::from([("field".to_owned(), field.to_owned())]),
    );
    Status::with_error_details(
        Code::InvalidArgument,
        format!("{field}: {problem}"),
        details,
    )
}

/// NOT_FOUND with reason `<WHAT>_NOT_FOUND`.
pub fn not_found(reason: &str, message: impl Into<String>) -> Status {
    with_reason(Code::NotFound, reason, message, HashMap::new())
}

/// UNAVAILABLE with a retry hint.
pub fn unavailable(
    reason: &str,
    message: impl Into<String>,
    retry_after: Option<Duration>,
) -> Status {
    let mut details =
        ErrorDetails::with_retry_info(Some(retry_after.unwrap_or(Duration::from_secs(1))));
    details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(Code::Unavailable, message, details)
}

impl IntoStatus for StorageError {
    fn into_status(self) -> Status {
        match self {
            StorageError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                unavailable(
                    "DATABASE_UNAVAILABLE",
                    "the database is unavailable; retry later",
                    None,
                )
            }
            StorageError::Corrupt(detail) | StorageError::Other(detail) => {
                // The detail may name tables and values: logged, not returned.
                tracing::error!(error = %detail, "database error");
                with_reason(
                    Code::Internal,
                    "INTERNAL",
                    "internal storage error",
                    HashMap::new(),
                )
            }
        }
    }
}

/// INVALID_ARGUMENT with reason `IDENTIFIER_INVALID`: a store identifier outside its store's
/// documented format. Metadata names the field and the problem (never the value).
pub fn identifier_invalid(field: &str, problem: &str) -> Status {
    let mut details = ErrorDetails::with_bad_request_violation(field, problem);
    details.set_error_info(
        "IDENTIFIER_INVALID",
        ERROR_DOMAIN,
        HashMap::from([
            ("field".to_owned(), field.to_owned()),
            ("problem".to_owned(), problem.to_owned()),
        ]),
    );
    Status::with_error_details(
        Code::InvalidArgument,
        format!("{field}: {problem}"),
        details,
    )
}

impl IntoStatus for StoreIdError {
    fn into_status(self) -> Status {
        identifier_invalid(self.field, self.problem)
    }
}

impl IntoStatus for IdError {
    fn into_status(self) -> Status {
        invalid_argument(self.field, self.problem)
    }
}

impl IntoStatus for CreateOrderError {
    fn into_status(self) -> Status {
        match self {
            CreateOrderError::InvalidField(e) => e.into_status(),
            CreateOrderError::InvalidIdentifier(e) => e.into_status(),
            CreateOrderError::InvalidArgument { field, problem } => {
                invalid_argument(field, &problem)
            }
            CreateOrderError::UnknownApp(app) => {
                not_found("UNKNOWN_APP", format!("app {app} is not configured"))
            }
            e @ CreateOrderError::UnknownProduct { .. } => {
                not_found("UNKNOWN_PRODUCT", e.to_string())
            }
            CreateOrderError::LimitExceeded(detail) => with_reason(
                Code::ResourceExhausted,
                "ORDER_LIMIT_EXCEEDED",
                detail,
                HashMap::new(),
            ),
            CreateOrderError::Storage(e) => e.into_status(),
        }
    }
}

impl IntoStatus for VerifyError {
    fn into_status(self) -> Status {
        let finish = self.finish_transaction();
        match self {
            VerifyError::UnknownApp(app) => {
                not_found("UNKNOWN_APP", format!("app {app} is not configured"))
            }
            e @ VerifyError::StoreNotConfigured(_) => with_reason(
                Code::FailedPrecondition,
                "STORE_NOT_CONFIGURED",
                e.to_string(),
                HashMap::from([("finish_transaction".to_owned(), finish.to_string())]),
            ),
            VerifyError::Rejected {
                reason,
                code,
                detail,
            } => {
                // The client switches on `reason` and finishes the store transaction when
                // `finish_transaction` says so; `code` is the finer cause for logs and support.
                let metadata = HashMap::from([
                    ("code".to_owned(), code.to_owned()),
                    ("finish_transaction".to_owned(), finish.to_string()),
                ]);
                let status_code = if reason == RejectReason::Malformed {
                    Code::InvalidArgument
                } else {
                    Code::FailedPrecondition
                };
                with_reason(
                    status_code,
                    reason.as_str(),
                    format!("purchase rejected: {detail}"),
                    metadata,
                )
            }
            VerifyError::StoreUnavailable {
                detail,
                retry_after,
            } => {
                tracing::warn!(error = %detail, "store unavailable");
                unavailable(
                    "STORE_UNAVAILABLE",
                    "the store could not be reached; retry later",
                    retry_after,
                )
            }
            VerifyError::StoreMisconfigured(detail) => {
                tracing::error!(error = %detail, "store misconfigured");
                // Our settings are wrong, not the purchase: the client keeps it open and
                // retries once an operator fixed them.
                with_reason(
                    Code::FailedPrecondition,
                    "STORE_MISCONFIGURED",
                    detail,
                    HashMap::from([("finish_transaction".to_owned(), finish.to_string())]),
                )
            }
            VerifyError::InvalidIdentifier(e) => e.into_status(),
            VerifyError::Storage(e) => e.into_status(),
        }
    }
}

impl IntoStatus for DeliverError {
    fn into_status(self) -> Status {
        match self {
            DeliverError::NotFound(id) => {
                not_found("ORDER_NOT_FOUND", format!("order {id} not found"))
            }
            e @ DeliverError::GrantInFlight(_) => with_reason(
                Code::Aborted,
                "GRANT_IN_FLIGHT",
                e.to_string(),
                HashMap::new(),
            ),
            DeliverError::Game(e) => {
                tracing::warn!(error = %e, "game server did not acknowledge");
                unavailable(
                    "GAME_SERVER_UNAVAILABLE",
                    "the game server did not acknowledge; retry later",
                    None,
                )
            }
            DeliverError::Storage(e) => e.into_status(),
        }
    }
}

impl IntoStatus for AdminError {
    fn into_status(self) -> Status {
        let message = self.to_string();
        let plain =
            |code: Code, reason: &str| with_reason(code, reason, message.clone(), HashMap::new());
        match self {
            AdminError::InvalidArgument { field, problem } => invalid_argument(field, &problem),
            AdminError::OrderNotFound(_) => not_found("ORDER_NOT_FOUND", message),
            AdminError::NotificationNotFound(_) => not_found("NOTIFICATION_NOT_FOUND", message),
            AdminError::UnknownApp(_) => not_found("UNKNOWN_APP", message),
            AdminError::UnknownProduct { .. } => not_found("UNKNOWN_PRODUCT", message),
            AdminError::WrongState { reason, state, .. } => with_reason(
                Code::FailedPrecondition,
                reason,
                message,
                HashMap::from([("state".to_owned(), state.as_str().to_owned())]),
            ),
            AdminError::IdempotencyKeyReused(_) => {
                plain(Code::FailedPrecondition, "IDEMPOTENCY_KEY_REUSED")
            }
            AdminError::OrderChanged(_) => plain(Code::Aborted, "ORDER_CHANGED"),
            AdminError::GrantInFlight(_) => plain(Code::Aborted, "GRANT_IN_FLIGHT"),
            AdminError::DeliveryNotConfigured => {
                plain(Code::FailedPrecondition, "DELIVERY_NOT_CONFIGURED")
            }
            AdminError::DeliveryUnavailable(detail) => {
                tracing::warn!(error = %detail, "delivery unavailable for an operator's action");
                unavailable(
                    "DELIVERY_UNAVAILABLE",
                    "the delivery service or the game server did not answer; retry later",
                    None,
                )
            }
            AdminError::Storage(e) => e.into_status(),
        }
    }
}

impl IntoStatus for UnclaimedError {
    fn into_status(self) -> Status {
        let message = self.to_string();
        match self {
            UnclaimedError::InvalidArgument { field, problem } => invalid_argument(field, &problem),
            UnclaimedError::NotFound(_) => not_found("UNCLAIMED_PURCHASE_NOT_FOUND", message),
            UnclaimedError::AlreadyClaimed {
                user_id, order_id, ..
            } => with_reason(
                Code::FailedPrecondition,
                "UNCLAIMED_PURCHASE_ALREADY_CLAIMED",
                message,
                HashMap::from([
                    ("user_id".to_owned(), user_id.to_string()),
                    ("order_id".to_owned(), order_id.to_string()),
                ]),
            ),
            UnclaimedError::Refunded(_) => with_reason(
                Code::FailedPrecondition,
                "UNCLAIMED_PURCHASE_REFUNDED",
                message,
                HashMap::new(),
            ),
            // The store's or the policy's refusal at claim time, or an outage: the same statuses
            // and reasons a VerifyPurchase would get.
            UnclaimedError::Verify(e) => e.into_status(),
            UnclaimedError::Storage(e) => e.into_status(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_a_machine_reason() {
        let status = CreateOrderError::LimitExceeded("too many".into()).into_status();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "ORDER_LIMIT_EXCEEDED"
        );

        let status = StorageError::Unavailable("connection refused".into()).into_status();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.get_details_retry_info().is_some());
        assert!(!status.message().contains("refused"));

        let status = AdminError::InvalidArgument {
            field: "operator",
            problem: "is required".into(),
        }
        .into_status();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.get_details_bad_request().unwrap().field_violations[0].field,
            "operator"
        );
        let status = AdminError::OrderNotFound("x".into()).into_status();
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "ORDER_NOT_FOUND"
        );

        let status = invalid_argument("user_id", "is required");
        assert_eq!(
            status.get_details_bad_request().unwrap().field_violations[0].field,
            "user_id"
        );
    }
}
