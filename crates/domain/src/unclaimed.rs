//! Paid but unclaimed: a purchase the store verified as paid that no order and no user could be
//! found for (a notification without Apple `appAccountToken`, Google obfuscated ids or Huawei
//! `developerPayload`, and no order of ours). It is money taken from a player, so it is kept —
//! with the proof needed to ask the store again — until an operator claims it for a user, the
//! player's own client redeems it, or the store refunds it. The port [`UnclaimedStore`] is
//! implemented by `iap-storage`; the use case is [`crate::usecases::unclaimed`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::admin::{AuditEntry, KeysetPosition};
use crate::ids::{AppId, OrderId, ProductId, UserId};
use crate::order::{Environment, Order, Platform};
use crate::ports::{PaymentToRecord, RecordOutcome, RecordedPurchase, StorageError};
use crate::purchase::{PurchaseProof, VerifiedPurchase};

/// Who a kept purchase went to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnclaimedClaim {
    /// The user it was granted to.
    pub user_id: UserId,
    /// When.
    pub claimed_at: DateTime<Utc>,
    /// The order that records the payment.
    pub order_id: OrderId,
    /// The operator who claimed it; `None` when the player's own client redeemed it.
    pub operator: Option<String>,
    /// Why, as the operator wrote it (or how it was redeemed).
    pub reason: Option<String>,
}

/// Where a kept purchase stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnclaimedState {
    /// Paid, nobody has it yet: claimable.
    Open,
    /// Granted to a user (claimed by an operator or redeemed by its client).
    Claimed,
    /// The store refunded or revoked it before anyone claimed it: never claimable.
    Refunded,
}

impl UnclaimedState {
    /// The name operators see.
    pub fn as_str(self) -> &'static str {
        match self {
            UnclaimedState::Open => "open",
            UnclaimedState::Claimed => "claimed",
            UnclaimedState::Refunded => "refunded",
        }
    }
}

/// A kept purchase, without its proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnclaimedPurchase {
    /// Our id (a UUID).
    pub id: uuid::Uuid,
    /// Store.
    pub platform: Platform,
    /// The store's identity of the purchase (the replay key; for Google one-time products often
    /// the purchase token itself: mask it before showing).
    pub store_transaction_id: String,
    /// Apple `originalTransactionId`, when there is one.
    pub original_transaction_id: Option<String>,
    /// Google or Huawei purchase token. Secret: the use case clears it before anything leaves.
    pub purchase_token: Option<String>,
    /// Google `GPA.…` or Huawei orderId.
    pub store_order_id: Option<String>,
    /// App.
    pub app_id: AppId,
    /// Product.
    pub product_id: ProductId,
    /// Units the store says were paid.
    pub quantity: u32,
    /// Where the store says it was made.
    pub environment: Environment,
    /// When the player paid.
    pub purchased_at: Option<DateTime<Utc>>,
    /// What reported it (a notification type).
    pub source: String,
    /// When it was first kept.
    pub first_seen_at: DateTime<Utc>,
    /// When it was last reported.
    pub last_seen_at: DateTime<Utc>,
    /// When the store refunded or revoked it, if it did while unclaimed.
    pub refunded_at: Option<DateTime<Utc>>,
    /// Who it went to.
    pub claim: Option<UnclaimedClaim>,
}

impl UnclaimedPurchase {
    /// Where it stands. A refund after a claim is the claimed order's business (it is revoked
    /// like any other), so a claimed row stays claimed.
    pub fn state(&self) -> UnclaimedState {
        if self.claim.is_some() {
            UnclaimedState::Claimed
        } else if self.refunded_at.is_some() {
            UnclaimedState::Refunded
        } else {
            UnclaimedState::Open
        }
    }
}

/// A kept purchase with its proof, for a claim only.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptPurchase {
    /// What operators see.
    pub purchase: UnclaimedPurchase,
    /// The proof to verify again with the store. Secret: never logged or returned.
    pub proof: PurchaseProof,
}

/// A verified, paid purchase nobody could be found for.
#[derive(Debug, Clone)]
pub struct UnclaimedToKeep {
    /// App.
    pub app_id: AppId,
    /// What the store vouched for.
    pub purchase: VerifiedPurchase,
    /// The proof it was verified from.
    pub proof: PurchaseProof,
    /// What reported it (a notification type).
    pub source: String,
}

/// What keeping a purchase did.
#[derive(Debug, Clone, PartialEq)]
pub enum KeepOutcome {
    /// Kept: `new` when this call stored it, false when it was kept before (the same purchase
    /// reported again stays one row).
    Kept {
        /// The row.
        purchase: Box<UnclaimedPurchase>,
        /// This call stored it.
        new: bool,
    },
    /// The purchase is already redeemed here: nothing to keep.
    Redeemed(RecordedPurchase),
}

/// Which kept purchases a listing covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnclaimedFilter {
    /// Only this store.
    pub platform: Option<Platform>,
    /// Only this app.
    pub app_id: Option<AppId>,
    /// Claimed and refunded ones too (open ones only otherwise).
    pub include_settled: bool,
}

/// An operator's claim of a kept purchase, to record with its payment.
#[derive(Debug, Clone)]
pub struct ClaimToRecord {
    /// The kept purchase.
    pub id: uuid::Uuid,
    /// The payment, through the normal path: a new order for the user, PAID, with its outbox
    /// event.
    pub payment: PaymentToRecord,
    /// The audit entry, written in the same commit.
    pub audit: AuditEntry,
}

/// What recording a claim did.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    /// Committed: the row is claimed, the order PAID and due, the audit entry written.
    Claimed(Box<Order>),
    /// No kept purchase has this id.
    NotFound,
    /// Claimed (or redeemed by its client) first; nothing was written.
    AlreadyClaimed(UnclaimedClaim),
    /// The store refunded it while unclaimed; nothing was written.
    Refunded,
    /// The payment was not recorded (another redemption of the purchase, a refund mark); nothing
    /// was written.
    NotRecorded(RecordOutcome),
}

/// Open kept purchases of one store, for the gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenUnclaimed {
    /// Store.
    pub platform: Platform,
    /// How many.
    pub count: u64,
    /// When the oldest was first kept.
    pub oldest_first_seen_at: Option<DateTime<Utc>>,
}

/// Where kept purchases live. Keeping and claiming take the same per-identity locks as
/// [`crate::ports::PaymentLedger::record_payment`] and `mark_refund`, so a keep, a claim, a
/// redemption and a refund of one purchase are serialised; and a redemption through the normal
/// path resolves the kept row in its own commit.
#[async_trait]
pub trait UnclaimedStore: Send + Sync {
    /// Keeps a purchase; idempotent on the store's identity of it. A purchase a refund mark
    /// holds is kept as refunded.
    async fn keep_unclaimed(&self, keep: UnclaimedToKeep) -> Result<KeepOutcome, StorageError>;

    /// One kept purchase with its proof.
    async fn kept_purchase(&self, id: uuid::Uuid) -> Result<Option<KeptPurchase>, StorageError>;

    /// Kept purchases, oldest first, after `after`, at most `limit`.
    async fn list_unclaimed(
        &self,
        filter: &UnclaimedFilter,
        after: Option<KeysetPosition>,
        limit: u32,
    ) -> Result<Vec<UnclaimedPurchase>, StorageError>;

    /// Kept purchases with `id` as any of their store ids (operators' lookups).
    async fn find_unclaimed(&self, id: &str) -> Result<Vec<UnclaimedPurchase>, StorageError>;

    /// Records a claim in one commit: the row claimed only if it still is open, the payment
    /// recorded as [`crate::ports::PaymentLedger::record_payment`] does, the audit entry.
    async fn claim_unclaimed(&self, claim: ClaimToRecord) -> Result<ClaimOutcome, StorageError>;

    /// Open kept purchases per store.
    async fn open_unclaimed(&self) -> Result<Vec<OpenUnclaimed>, StorageError>;
}
