//! Google Play: a service-account token source, a small Android Publisher v3 client, and the
//! domain's `PurchaseVerifier` (productsv2 for one-time products, subscriptionsv2 for
//! subscriptions, optional local SHA1withRSA check of the purchase JSON as a fast reject).

pub mod api;
pub mod auth;
pub mod push;
pub mod signature;
pub mod verifier;
mod voided;

pub use verifier::{GoogleAppConfig, GoogleVerifier};

/// The pure steps behind the network calls, for the fuzz targets in `fuzz/` only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use iap_domain::ProductId;
    use iap_domain::ports::StoreError;
    use iap_domain::purchase::{SignedData, VerifiedPurchase};
    use serde_json::Value;

    use crate::signature::LicenseKey;

    /// The local check of `getOriginalJson()` and its signature.
    pub fn check_signed_data(
        package: &str,
        license_key: Option<&LicenseKey>,
        signed: &SignedData,
        token: &str,
        product: &ProductId,
    ) -> Result<(), StoreError> {
        crate::verifier::check_signed_data(package, license_key, signed, token, product)
    }

    /// The mapping of a productsv2 answer.
    pub fn product_purchase(
        token: &str,
        product: &ProductId,
        v2: Value,
    ) -> Result<VerifiedPurchase, StoreError> {
        crate::verifier::product_purchase(token, product, v2)
    }

    /// The mapping of a subscriptionsv2 answer.
    pub fn subscription_purchase(
        token: &str,
        product: &ProductId,
        v2: Value,
    ) -> Result<VerifiedPurchase, StoreError> {
        crate::verifier::subscription_purchase(token, product, v2)
    }
}
