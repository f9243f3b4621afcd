//! Where paid but unclaimed purchases are kept and claimed, serialised with redemptions and
//! refunds of the same purchase by per-identity locks. Adapter: `iap-storage`.

use async_trait::async_trait;

use crate::admin::{AuditEntry, KeysetPosition};
use crate::ids::AppId;
use crate::order::Order;
use crate::ports::{PaymentToRecord, RecordOutcome, RecordedPurchase, StorageError};
use crate::purchase::{PurchaseProof, VerifiedPurchase};
use crate::unclaimed::{
    KeptPurchase, OpenUnclaimed, UnclaimedClaim, UnclaimedFilter, UnclaimedPurchase,
};

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
