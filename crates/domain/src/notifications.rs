//! Store server notifications: what a verified notification means for us ([`StoreEvent`]), and
//! the inbox that stores each one under the store's unique id before anything acts on it, so a
//! redelivered notification is a no-op and a crash mid-processing loses nothing.

use crate::ids::AppId;
use crate::order::Platform;
use crate::purchase::PurchaseProof;
use crate::refunds::{RefundCause, RefundShare};
use crate::subscriptions::SubscriptionRef;

// This area's ports live in `crate::ports`; re-exported under their old path.
pub use crate::ports::{
    ConsumptionReport, ConsumptionResponder, InboundNotification, NotificationDecoder,
    NotificationInbox, RefundConfirmation, StoredNotification,
};

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
