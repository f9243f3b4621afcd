//! Payments: the replay fence (who redeemed a store purchase), the commit of a verified payment,
//! and the refund marks that refuse a purchase refunded before it was redeemed.

use async_trait::async_trait;

use crate::ids::{AppId, OrderId, UserId};
use crate::order::{NewOrder, Order, Platform};
use crate::ports::StorageError;
use crate::purchase::VerifiedPurchase;

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
