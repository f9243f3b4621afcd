//! Google Play: a service-account token source, a small Android Publisher v3 client, and the
//! domain's `PurchaseVerifier` (productsv2 for one-time products, subscriptionsv2 for
//! subscriptions, optional local SHA1withRSA check of the purchase JSON as a fast reject).

pub mod api;
pub mod auth;
pub mod push;
pub mod signature;
pub mod verifier;

pub use verifier::{GoogleAppConfig, GoogleVerifier};
