//! The App Store side of verification: StoreKit 2 / App Store Server Notifications JWS checked
//! the way Apple's own libraries check them (`jws`), and the decoded payloads (`model`).
//! No network here: the receipt and App Store Server API clients build on this.

pub mod jws;
#[allow(
    missing_docs,
    reason = "fields carry Apple's documented names; see platforms/apple.md"
)]
pub mod model;
pub mod receipt;
pub mod server_api;

pub mod verifier;

pub use jws::{ChainTrust, JwsError, VerifiedJws};

/// The pure steps behind the network calls, for the fuzz targets in `fuzz/` only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use iap_domain::ProductId;
    use iap_domain::ports::StoreError;
    use iap_domain::purchase::VerifiedPurchase;
    use serde_json::Value;

    /// The mapping of a verifyReceipt answer to the purchase it proves.
    pub fn receipt_purchase(
        bundle_id: &str,
        reply: &Value,
        product: Option<&ProductId>,
        transaction_id: Option<&str>,
    ) -> Result<VerifiedPurchase, StoreError> {
        crate::verifier::receipt_purchase(bundle_id, reply, product, transaction_id, &[])
    }

    /// Whether a verifyReceipt status (and its `is-retryable` flag) is retried.
    pub fn receipt_retryable(status: i64, body: &Value) -> bool {
        crate::receipt::retryable(status, body)
    }
}
pub use verifier::{AppleAppConfig, AppleVerifier};
