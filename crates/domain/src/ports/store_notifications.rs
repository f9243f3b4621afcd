//! The stores' side of notifications: authenticating and decoding a body, asking the store
//! whether a claimed refund happened, and answering Apple's consumption requests. Adapters:
//! `iap-platform-*`.

use async_trait::async_trait;

use crate::ids::AppId;
use crate::notifications::{DecodedNotification, StoreEvent};
use crate::order::Platform;
use crate::refunds::{RefundCause, RefundShare};

/// What the store itself says about a refund or revocation that a notification claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundConfirmation {
    /// The store confirms it. `store_keys` are the purchase's identities as the store reported
    /// them (order or charge ids, purchase tokens): the revocation and the refund mark use these,
    /// never the notification's own words.
    Confirmed {
        /// The purchase's identities at the store.
        store_keys: Vec<String>,
        /// Revoked (chargeback, fraud) rather than refunded, as the store says.
        revoked: bool,
        /// How much of the purchase the store has refunded so far.
        share: RefundShare,
        /// The store's initiator and reason.
        cause: RefundCause,
    },
    /// The store does not confirm it: nothing is taken back.
    Unconfirmed {
        /// Machine-readable cause, e.g. `not_voided_at_store` (a metric label: a fixed set).
        reason: &'static str,
        /// Human detail (no tokens).
        detail: String,
    },
}

/// Authenticates one store's notification bodies and says what they mean. The receiver calls it
/// before storing (an unauthenticated body must not occupy a notification id), the processor
/// again when acting.
#[async_trait]
pub trait NotificationDecoder: Send + Sync {
    /// The store.
    fn platform(&self) -> Platform;

    /// Verifies and decodes one body as the store sent it.
    async fn decode(&self, raw_body: &str)
    -> Result<DecodedNotification, crate::ports::StoreError>;

    /// Checks how the body was sent, when the store authenticates the request itself (Google's
    /// OIDC-signed Pub/Sub push: the `Authorization` header). Called by the receiver only, after
    /// `decode`; by default there is nothing to check.
    async fn authenticate(
        &self,
        decoded: &DecodedNotification,
        authorization: Option<&str>,
    ) -> Result<(), crate::ports::StoreError> {
        let _ = (decoded, authorization);
        Ok(())
    }

    /// Asks the store whether the refund or revocation a decoded notification claims
    /// ([`StoreEvent::Refunded`]) really happened. A store whose notification body is itself
    /// signed by the store (Apple's JWS) keeps this default: the signed payload is the store's
    /// word. Stores whose bodies anyone can forge (an unauthenticated Pub/Sub push, Huawei's
    /// unsigned ORDER events) look the purchase up in the store's own refund records.
    async fn confirm_refund(
        &self,
        decoded: &DecodedNotification,
    ) -> Result<RefundConfirmation, crate::ports::StoreError> {
        match &decoded.event {
            StoreEvent::Refunded {
                store_transaction_id,
                revoked,
                share,
                cause,
                ..
            } => Ok(RefundConfirmation::Confirmed {
                store_keys: vec![store_transaction_id.clone()],
                revoked: *revoked,
                share: *share,
                cause: cause.clone(),
            }),
            _ => Ok(RefundConfirmation::Unconfirmed {
                reason: "not_a_refund",
                detail: "the notification claims no refund".into(),
            }),
        }
    }
}

/// What we tell Apple about a purchase whose customer asked for a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumptionReport {
    /// The transaction.
    pub store_transaction_id: String,
    /// Its environment.
    pub environment: crate::order::Environment,
    /// The game server acknowledged the grant.
    pub delivered: bool,
}

/// Answers a store's consumption request (Apple Send Consumption Information), with the app's
/// configured answers for what only the studio knows (consent, refund preference).
#[async_trait]
pub trait ConsumptionResponder: Send + Sync {
    /// Sends the answer. `Ok(false)` when the app is configured not to answer.
    async fn send_consumption(
        &self,
        app_id: &AppId,
        report: &ConsumptionReport,
    ) -> Result<bool, crate::ports::StoreError>;
}
