//! Huawei IAP: `InAppPurchaseData` signature checks (SHA256WithRSA and SHA256WithRSA/PSS), the
//! Order and Subscription services behind an app-level token, and the domain's
//! `PurchaseVerifier`. Notifications are not signed for orders, so nothing here grants from a
//! notification body: state always comes from a store query.

pub mod api;
pub mod signature;
pub mod verifier;

pub use verifier::{HuaweiAppConfig, HuaweiVerifier};
