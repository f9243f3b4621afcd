//! Huawei IAP: `InAppPurchaseData` signature checks (SHA256WithRSA and SHA256WithRSA/PSS), the
//! Order and Subscription services behind an app-level token, and the domain's
//! `PurchaseVerifier`. Notifications are not signed for orders, so nothing here grants from a
//! notification body: state always comes from a store query.

pub mod api;
pub mod signature;
pub mod verifier;

pub use verifier::{HuaweiAppConfig, HuaweiVerifier};

/// The pure steps behind the network calls, for the fuzz targets in `fuzz/` only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use iap_domain::ProductId;
    use iap_domain::ports::StoreError;
    use iap_domain::purchase::VerifiedPurchase;
    use serde_json::Value;

    use crate::signature::IapPublicKey;

    /// The signature check and parse of `InAppPurchaseData` (client's or store's).
    pub fn signed_json(
        key: &IapPublicKey,
        data: &str,
        signature: &str,
        algorithm: Option<&str>,
    ) -> Result<Value, StoreError> {
        crate::verifier::signed_json(key, data, signature, algorithm)
    }

    /// The mapping of checked `InAppPurchaseData` to a purchase.
    pub fn to_verified(
        token: &str,
        product: &ProductId,
        data: Value,
        consumed_known: Option<bool>,
    ) -> Result<VerifiedPurchase, StoreError> {
        crate::verifier::to_verified(token, product, data, consumed_known)
    }
}
