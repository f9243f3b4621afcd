//! Store server notifications: what a verified notification means for us ([`StoreEvent`]), and
//! the inbox that stores each one under the store's unique id before anything acts on it, so a
//! redelivered notification is a no-op and a crash mid-processing loses nothing.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ids::AppId;
use crate::order::Platform;
use crate::ports::StorageError;
use crate::purchase::PurchaseProof;
use crate::refunds::{RefundCause, RefundShare};
use crate::subscriptions::SubscriptionRef;

/// A notification received and authenticated, ready for the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundNotification {
    /// Store.
    pub platform: Platform,
    /// The store's unique id (Apple `notificationUUID`, Pub/Sub `messageId`, Huawei event id).
    pub notification_id: String,
    /// The app it concerns, when known.
    pub app_id: Option<AppId>,
    /// Store type and subtype, e.g. `REFUND`, `DID_FAIL_TO_RENEW/GRACE_PERIOD`.
    pub notification_type: String,
    /// The store transaction or token it is about, for operators' searches.
    pub subject: Option<String>,
    /// The body exactly as received.
    pub raw_body: String,
    /// When the store says it happened.
    pub event_at: Option<DateTime<Utc>>,
}

/// A notification in the inbox, claimed for processing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredNotification {
    /// Inbox row id.
    pub id: String,
    /// Store.
    pub platform: Platform,
    /// Store type and subtype.
    pub notification_type: String,
    /// The body exactly as received.
    pub raw_body: String,
    /// Processing attempts so far, this one included.
    pub attempts: u32,
    /// When the inbox stored it (the start of the notification lag).
    pub received_at: DateTime<Utc>,
}

/// The notification inbox.
#[async_trait]
pub trait NotificationInbox: Send + Sync {
    /// Stores a notification unless its id is already there. `true` when it is new.
    async fn receive(&self, notification: InboundNotification) -> Result<bool, StorageError>;

    /// Claims up to `limit` unprocessed notifications whose time has come, hiding them from other
    /// processors for `lease` (a crashed processor's claim simply runs out).
    async fn claim_due(
        &self,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<StoredNotification>, StorageError>;

    /// Moves the claims on these still unprocessed notifications `lease` from now: the worker
    /// that took them renews while it works, so a short lease frees them soon after it dies.
    async fn extend_claims(&self, ids: &[String], lease: Duration) -> Result<(), StorageError>;

    /// Marks a notification processed, with what it led to.
    async fn mark_processed(&self, id: &str, outcome: &str) -> Result<(), StorageError>;

    /// Marks a notification done without effect because the store did not confirm what it
    /// claims: `reason` is the machine-readable cause (kept in `rejected_reason`), `outcome` the
    /// human detail. The row stays, under its body's key, so a replay of it is a duplicate.
    async fn mark_rejected(
        &self,
        id: &str,
        reason: &str,
        outcome: &str,
    ) -> Result<(), StorageError>;

    /// Records a failed attempt; it is tried again at `retry_at`.
    async fn retry_later(
        &self,
        id: &str,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StorageError>;
}

/// What a notification asks us to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// The store reports a paid purchase (Apple ONE_TIME_CHARGE, SUBSCRIBED, DID_RENEW; Google
    /// ONE_TIME_PRODUCT_PURCHASED): verify and record it like a client's VerifyPurchase, for the
    /// user of the order the purchase carries, then deliver. This is how a purchase whose client
    /// died before calling us is still granted.
    Purchased {
        /// App.
        app_id: AppId,
        /// The proof to verify with the store.
        proof: PurchaseProof,
        /// Our order id as the purchase carries it (Apple `appAccountToken`, Google obfuscated
        /// profile id), when the notification shows it.
        carried_order_id: Option<String>,
    },
    /// The store refunded or revoked a purchase: take the items back and mark the order.
    Refunded {
        /// Store.
        platform: Platform,
        /// The charge refunded (our replay key for it), or its purchase token.
        store_transaction_id: String,
        /// Revoked (family sharing removed, chargeback) rather than refunded.
        revoked: bool,
        /// The subscription the charge belongs to, refreshed afterwards.
        subscription: Option<SubscriptionRef>,
        /// How much was refunded, as far as the notification says (Apple's signed
        /// `revocationPercentage`); stores whose bodies can be forged answer it in
        /// [`NotificationDecoder::confirm_refund`].
        share: RefundShare,
        /// The store's initiator and reason, as far as the notification says.
        cause: RefundCause,
    },
    /// The store reversed the refund of a one-time purchase (Apple REFUND_REVERSED): the
    /// purchase is paid again. A refunded order of ours is granted again through a new order,
    /// once; a refund mark left for a purchase not redeemed yet is lifted.
    RefundReversed {
        /// Store.
        platform: Platform,
        /// The charge whose refund was reversed.
        store_transaction_id: String,
    },
    /// A subscription changed at the store (bought, renewed, failed to renew, entered or left
    /// grace, hold or pause, expired, changed plan, price or renewal preference): look at the
    /// store and apply what it says now.
    SubscriptionChanged {
        /// The subscription.
        subscription: SubscriptionRef,
        /// The paid charge the notification carries (Apple), granted as a plain purchase when
        /// the store cannot be asked about subscriptions (no App Store Server API key).
        paid: Option<PurchaseProof>,
        /// Our order id as that charge carries it.
        carried_order_id: Option<String>,
    },
    /// The store says a purchase changed without saying how (Google ONE_TIME_PRODUCT_CANCELED:
    /// a pending purchase dropped, or a paid one revoked): ask the store, and take the items
    /// back if it is no longer paid.
    Recheck {
        /// App.
        app_id: AppId,
        /// The purchase.
        proof: PurchaseProof,
    },
    /// Apple asks how a consumable or a subscription was used before deciding on a refund
    /// (CONSUMPTION_REQUEST): answered with what we delivered and the app's configured answers.
    ConsumptionRequested {
        /// App.
        app_id: AppId,
        /// The transaction the customer asked a refund for.
        store_transaction_id: String,
        /// Its environment.
        environment: crate::order::Environment,
        /// Apple's `consumptionRequestReason`.
        reason: Option<String>,
    },
    /// Nothing to do (a test notification, an informational type); the reason is recorded.
    Ignored(String),
}

/// A notification authenticated and understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedNotification {
    /// What goes into the inbox.
    pub inbound: InboundNotification,
    /// What it asks us to do.
    pub event: StoreEvent,
}

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

/// Decodes one body and checks every store identifier it carries against its store's format
/// ([`crate::store_ids::check_notification`]); the receiver, the processor and reconciliation
/// all decode through here, so an identifier outside the format is refused wherever it enters.
pub async fn decode_checked(
    decoder: &dyn NotificationDecoder,
    raw_body: &str,
) -> Result<DecodedNotification, crate::ports::StoreError> {
    let decoded = decoder.decode(raw_body).await?;
    crate::store_ids::check_notification(&decoded).map_err(|e| {
        crate::ports::StoreError::rejected(
            crate::order::RejectReason::Malformed,
            "identifier_invalid",
            e.to_string(),
        )
    })?;
    Ok(decoded)
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
