//! The interfaces the use cases need from the outside world. Adapters implement them:
//! `iap-storage` (database), `iap-lock` (locks), `iap-platform-*` (stores), and the services
//! (game server client, delivery trigger).

use std::time::Duration;

use async_trait::async_trait;

use crate::catalog::ProductPolicy;
use crate::ids::{AppId, OrderId, UserId};
use crate::order::{NewOrder, Order, Platform, RejectReason};
use crate::purchase::{PurchaseProof, VerifiedPurchase};

/// A storage failure, classified so callers can answer UNAVAILABLE (retry) or INTERNAL.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database cannot be reached or is overloaded; nothing was written.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back (a bug or a newer schema).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Other(String),
}

/// Result of inserting an order.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    /// A new order was stored.
    Created(Order),
    /// An order with the same idempotency key already existed and is returned instead.
    Existing(Order),
}

/// Orders: creation and plain reads.
#[async_trait]
pub trait OrderRepository: Send + Sync {
    /// Stores a new order in state CREATED. An idempotency key already used by the same app and
    /// user returns the existing order.
    async fn create_order(&self, order: NewOrder) -> Result<CreateOutcome, StorageError>;

    /// Reads one order.
    async fn get_order(&self, id: OrderId) -> Result<Option<Order>, StorageError>;

    /// Counts a user's orders still in state CREATED.
    async fn count_unpaid_orders(&self, app: &AppId, user: &UserId) -> Result<u64, StorageError>;
}

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

/// A held lock: the key and the random token that proves ownership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Key locked (without any deployment prefix).
    pub key: String,
    /// Random token; only its holder can renew or release.
    pub token: String,
}

/// Why a lock operation could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock server cannot be reached. Callers go on without the lock: correctness rests on
    /// the database fence, the lock only keeps two workers from calling the game at once.
    #[error("lock unavailable: {0}")]
    Unavailable(String),
}

/// An advisory, expiring lock (Redis `SET NX PX` with a token, or in-process).
#[async_trait]
pub trait WorkLock: Send + Sync {
    /// Takes `key` for `ttl` if nobody holds it; `None` when it is held.
    async fn acquire(&self, key: &str, ttl: Duration) -> Result<Option<Lease>, LockError>;

    /// Extends a lease still held by its token; `false` when it was lost (expired or taken).
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, LockError>;

    /// Releases a lease still held by its token; `false` when it had already been lost.
    async fn release(&self, lease: &Lease) -> Result<bool, LockError>;
}

/// Who already redeemed a store purchase (the row under `UNIQUE(platform, store transaction id)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedPurchase {
    /// The order it paid.
    pub order_id: OrderId,
    /// App.
    pub app_id: AppId,
    /// The user who redeemed it first.
    pub user_id: UserId,
    /// It was a free trial taken after an earlier one by the same user or store account in the
    /// same subscription group.
    pub repeat_trial: bool,
}

/// Which order a verified payment pays.
#[derive(Debug, Clone)]
pub enum PaymentTarget {
    /// An order in state CREATED (moved to PAID only if it still is).
    ExistingOrder(OrderId),
    /// A new order, stored directly as PAID.
    NewOrder(NewOrder),
    /// An order support compensated (补单) before its store purchase arrived. The purchase is
    /// recorded against it, only if no purchase was recorded against it yet, and grants nothing
    /// again; `top_up`, when the store was paid for more than the compensation granted, is a
    /// new PAID order for the difference, which then carries the purchase.
    CompensatedOrder {
        /// The compensated order.
        id: OrderId,
        /// The order for the units paid beyond the compensation.
        top_up: Option<NewOrder>,
    },
}

impl PaymentTarget {
    /// The order the payment is recorded on: the top-up when there is one.
    pub fn order_id(&self) -> OrderId {
        match self {
            PaymentTarget::ExistingOrder(id) => *id,
            PaymentTarget::NewOrder(new) => new.id,
            PaymentTarget::CompensatedOrder { id, top_up } => {
                top_up.as_ref().map_or(*id, |new| new.id)
            }
        }
    }
}

/// A verified payment to commit: store transaction row, order → PAID and the delivery outbox
/// event, in one database transaction.
#[derive(Debug, Clone)]
pub struct PaymentToRecord {
    /// The order paid.
    pub target: PaymentTarget,
    /// What the store vouched for.
    pub purchase: VerifiedPurchase,
    /// App.
    pub app_id: AppId,
    /// The redeeming user.
    pub user_id: UserId,
    /// Why this order.
    pub binding_reason: crate::order::BindingReason,
    /// For a free trial: the subscription group its use is recorded under (per user and per
    /// store account), so a later trial in the same group is recognised as a repeat.
    pub trial_group: Option<String>,
    /// For an auto-renewable subscription's first period: the subscription row to create (a
    /// later period updates the existing row instead).
    pub subscription: Option<crate::subscriptions::NewSubscription>,
}

/// What recording a payment did.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordOutcome {
    /// Committed: the order is PAID.
    Recorded {
        /// The paid order.
        order: Box<Order>,
        /// The payment is a free trial and the user or store account had one before in the
        /// same subscription group.
        repeat_trial: bool,
    },
    /// Another request recorded this store purchase first.
    AlreadyRecorded(RecordedPurchase),
    /// The existing order stopped being CREATED in the meantime (paid by another purchase);
    /// nothing was written.
    OrderNoLongerUnpaid,
    /// The store refunded or revoked this purchase before it was redeemed here (a
    /// [`RefundMark`] holds one of its identities); nothing was written.
    RefundedBeforeRedemption {
        /// Revoked (chargeback, family sharing removed) rather than refunded.
        revoked: bool,
    },
}

/// A refund or revocation the store reported, recorded for a purchase that may not have been
/// redeemed here yet, so that its later redemption is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundMark {
    /// Store.
    pub platform: Platform,
    /// The store's identities of the refunded charge as the store reported them (Apple
    /// `transactionId`; Google order id or purchase token; Huawei order id or purchase token).
    /// Only ids of that one charge: a subscription's token is named only when the whole
    /// subscription was revoked.
    pub store_keys: Vec<String>,
    /// Revoked rather than refunded.
    pub revoked: bool,
    /// What reported it (notification type, reconciliation), for operators.
    pub source: String,
}

/// What marking a refund found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkOutcome {
    /// The purchase was not redeemed here: the mark is stored (or was already).
    Marked,
    /// The purchase was redeemed here (possibly a moment ago, in a race with the refund): the
    /// caller takes its items back. No mark was stored.
    Redeemed(RecordedPurchase),
}

/// Payments: the replay fence and the commit of a verified purchase.
#[async_trait]
pub trait PaymentLedger: Send + Sync {
    /// Who redeemed this store purchase, if anyone.
    async fn find_purchase(
        &self,
        platform: Platform,
        store_transaction_id: &str,
    ) -> Result<Option<RecordedPurchase>, StorageError>;

    /// Which of `ids` (store transaction ids of one store) are recorded already: a legacy
    /// receipt verified without a transaction id is resolved to its oldest transaction not yet
    /// recorded. One lookup per id unless the ledger does better.
    async fn recorded_among(
        &self,
        platform: Platform,
        ids: &[String],
    ) -> Result<Vec<String>, StorageError> {
        let mut recorded = Vec::new();
        for id in ids {
            if self.find_purchase(platform, id).await?.is_some() {
                recorded.push(id.clone());
            }
        }
        Ok(recorded)
    }

    /// Who owns the subscription with this store key (see
    /// [`crate::subscriptions::subscription_key`]): a later period of it is a renewal of theirs.
    async fn find_subscription_owner(
        &self,
        platform: Platform,
        key: &str,
    ) -> Result<Option<RecordedPurchase>, StorageError> {
        let _ = (platform, key);
        Ok(None)
    }

    /// Who redeemed the purchase with this Google or Huawei purchase token (refund notifications
    /// that name only the token).
    async fn find_purchase_by_token(
        &self,
        platform: Platform,
        purchase_token: &str,
    ) -> Result<Option<RecordedPurchase>, StorageError> {
        let _ = (platform, purchase_token);
        Ok(None)
    }

    /// The user's oldest order still CREATED for this product on this store.
    async fn oldest_unpaid_order(
        &self,
        app: &AppId,
        user: &UserId,
        product: &crate::ids::ProductId,
        platform: Platform,
    ) -> Result<Option<Order>, StorageError>;

    /// The user's oldest compensation (a manual order support granted) of this product on this
    /// store, made since `since`, that no store purchase was recorded against yet.
    async fn open_compensation(
        &self,
        app: &AppId,
        user: &UserId,
        product: &crate::ids::ProductId,
        platform: Platform,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Order>, StorageError>;

    /// Commits a payment atomically (see [`PaymentToRecord`]). A payment whose purchase carries
    /// a refund mark under any of its identities is not recorded
    /// ([`RecordOutcome::RefundedBeforeRedemption`]).
    async fn record_payment(&self, payment: PaymentToRecord)
    -> Result<RecordOutcome, StorageError>;

    /// Finds the purchase a refund names, under any of `mark.store_keys` (transaction id, purchase
    /// token or store order id), or, when none is redeemed, stores the mark. The lookup and the
    /// insert are serialised with [`PaymentLedger::record_payment`] on the same identities, so a
    /// redemption racing the refund is either found here or refused there.
    async fn mark_refund(&self, mark: RefundMark) -> Result<MarkOutcome, StorageError>;
}
