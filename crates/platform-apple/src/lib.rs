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
pub use verifier::{AppleAppConfig, AppleVerifier};
