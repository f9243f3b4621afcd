//! Paid but unclaimed: a purchase the store verified as paid that no order and no user could be
//! found for (a notification without Apple `appAccountToken`, Google obfuscated ids or Huawei
//! `developerPayload`, and no order of ours). It is money taken from a player, so it is kept —
//! with the proof needed to ask the store again — until an operator claims it for a user, the
//! player's own client redeems it, or the store refunds it. The port [`UnclaimedStore`] is
//! implemented by `iap-storage`; the use case is [`crate::usecases::unclaimed`].

use chrono::{DateTime, Utc};

use crate::ids::{AppId, OrderId, ProductId, UserId};
use crate::order::{Environment, Platform};
use crate::purchase::PurchaseProof;

// This area's ports live in `crate::ports`; re-exported under their old path.
pub use crate::ports::{ClaimOutcome, ClaimToRecord, KeepOutcome, UnclaimedStore, UnclaimedToKeep};

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
