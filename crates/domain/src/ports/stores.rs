//! The stores as purchase verification and delivery see them: verifying a proof of purchase,
//! asking for a subscription's state, and confirming a delivered purchase. Adapters:
//! `iap-platform-*`.

use std::time::Duration;

use async_trait::async_trait;

use crate::catalog::ProductPolicy;
use crate::ids::{AppId, OrderId};
use crate::order::{Platform, RejectReason};
use crate::ports::PaymentLedger;
use crate::purchase::{PurchaseProof, VerifiedPurchase};

/// A store's answer when it could not vouch for a purchase.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The purchase is definitively not acceptable.
    #[error("{reason} ({code}): {detail}")]
    Rejected {
        /// Machine-readable reason.
        reason: RejectReason,
        /// Stable, finer machine-readable cause in snake_case, e.g. `x5c_missing`,
        /// `certificate_expired`, `apple_oid_missing`, `signature_mismatch`, `untrusted_root`.
        code: &'static str,
        /// Human detail (no secrets, receipts or tokens).
        detail: String,
    },
    /// The store could not answer now (timeout, 5xx, 429, retryable status): retry later.
    #[error("store unavailable: {detail}")]
    Unavailable {
        /// Human detail.
        detail: String,
        /// When the store asked us to come back, if it said.
        retry_after: Option<Duration>,
    },
    /// Our configuration for this app and store is missing or wrong (credentials, keys, ids).
    #[error("store not configured: {0}")]
    Misconfigured(String),
}

impl StoreError {
    /// Shorthand for a rejection.
    pub fn rejected(reason: RejectReason, code: &'static str, detail: impl Into<String>) -> Self {
        StoreError::Rejected {
            reason,
            code,
            detail: detail.into(),
        }
    }

    /// Shorthand for an outage without retry advice.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        StoreError::Unavailable {
            detail: detail.into(),
            retry_after: None,
        }
    }
}

/// What a verifier needs besides the proof.
#[derive(Clone)]
pub struct VerifyContext<'a> {
    /// The app the purchase is claimed for.
    pub app_id: &'a AppId,
    /// The catalog entry of the product the proof names, when the proof names one.
    pub product: Option<&'a ProductPolicy>,
    /// The payment ledger, for a proof that names several transactions (a legacy receipt
    /// without a transaction id) and must be resolved to one not yet recorded.
    pub ledger: Option<&'a dyn PaymentLedger>,
}

impl std::fmt::Debug for VerifyContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyContext")
            .field("app_id", &self.app_id)
            .field("product", &self.product)
            .field("ledger", &self.ledger.is_some())
            .finish()
    }
}

/// Checks a proof of purchase with one store (signature, chain, app identity, store API) and
/// reports what the store says. It judges authenticity only: payment state, sandbox policy,
/// replay and binding are decided by the verification use case.
#[async_trait]
pub trait PurchaseVerifier: Send + Sync {
    /// The store this verifier talks to.
    fn platform(&self) -> Platform;

    /// Whether this deployment has settings for `app` on this store.
    fn serves(&self, app: &AppId) -> bool {
        let _ = app;
        true
    }

    /// Verifies one proof for one app.
    async fn verify(
        &self,
        ctx: VerifyContext<'_>,
        proof: &PurchaseProof,
    ) -> Result<VerifiedPurchase, StoreError>;

    /// Asks the store for a subscription's current state (Apple Get All Subscription Statuses,
    /// Google `subscriptionsv2.get`, Huawei subscription `get`); the latest period's charge is
    /// verified as strictly as a client's purchase.
    async fn subscription(
        &self,
        subscription: &crate::subscriptions::SubscriptionRef,
    ) -> Result<crate::subscriptions::SubscriptionSnapshot, StoreError> {
        Err(StoreError::Misconfigured(format!(
            "{} subscriptions cannot be queried",
            subscription.platform
        )))
    }
}

/// A delivered purchase that the store must be told about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseToConfirm {
    /// App.
    pub app_id: AppId,
    /// Product.
    pub product_id: crate::ids::ProductId,
    /// Kind (consume consumables, acknowledge the rest).
    pub kind: crate::order::ProductKind,
    /// The store's charge id.
    pub store_transaction_id: String,
    /// Google or Huawei purchase token.
    pub purchase_token: Option<String>,
    /// Environment the purchase was made in.
    pub environment: crate::order::Environment,
    /// Our order id (sent as Google `developerPayload` on acknowledge).
    pub order_id: OrderId,
    /// Subscription period end, when the purchase is a subscription.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What confirming at the store achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// The store recorded the consumption or acknowledgement now.
    Confirmed,
    /// The store had already recorded it (a retry after a lost reply).
    AlreadyConfirmed,
    /// This store has nothing to confirm server-side (Apple: the client finishes).
    NotApplicable,
}

/// Tells a store that a purchase was delivered: Google consume (consumables) or acknowledge
/// (everything else), Huawei confirm; Apple has no server-side step. Must be idempotent.
#[async_trait]
pub trait StoreConfirmer: Send + Sync {
    /// The store.
    fn platform(&self) -> Platform;

    /// Confirms one delivered purchase.
    async fn confirm(&self, purchase: &PurchaseToConfirm) -> Result<ConfirmOutcome, StoreError>;
}
