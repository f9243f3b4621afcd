//! Refunds the store reversed: lifting refund marks and restoring a refunded order once.
//! Adapter: `iap-storage`.

use async_trait::async_trait;

use crate::ids::OrderId;
use crate::order::{Order, Platform};
use crate::ports::StorageError;

/// What restoring a purchase whose refund the store reversed found.
#[derive(Debug, Clone, PartialEq)]
pub enum ReversalOutcome {
    /// The refunded order stays refunded; `restored` is a new PAID order for the same user,
    /// product and units, and the store purchase now points at it (so a later refund of the
    /// purchase takes back the restored grant, and a replay of the reversal finds nothing
    /// refunded).
    Restored {
        /// The refunded order.
        refunded: OrderId,
        /// The new order, to deliver.
        restored: Box<Order>,
    },
    /// The purchase's order is not refunded or revoked (already restored: a replay).
    NotRefunded(OrderId),
    /// No purchase of ours has this id.
    NotRecorded,
}

/// Storage for reversed refunds.
#[async_trait]
pub trait RefundReversals: Send + Sync {
    /// Lifts the refund marks left under these keys (a refund processed before its purchase
    /// was redeemed). Returns how many were lifted.
    async fn lift_refund_marks(
        &self,
        platform: Platform,
        store_keys: &[String],
    ) -> Result<u64, StorageError>;

    /// Restores the refunded order of the store purchase `store_transaction_id`, once: a new
    /// PAID order (binding reason `refund_reversed`) and the purchase re-pointed at it, in one
    /// commit, conditional on the purchase still pointing at the refunded order.
    async fn restore_refunded(
        &self,
        platform: Platform,
        store_transaction_id: &str,
    ) -> Result<ReversalOutcome, StorageError>;
}
