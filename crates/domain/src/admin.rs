//! What operators look at and change: filtered order listings, lookups by any store id, an
//! order's history, the audit trail of manual actions, the notification inbox and the counts that
//! show lost orders. The port [`AdminStore`] is implemented by `iap-storage`; [`OrderRevoker`] by
//! the delivery use case (in process) and by the `DeliveryService` client (over gRPC).

use chrono::{DateTime, Utc};

use crate::ids::{AppId, OrderId, UserId};
use crate::order::{Environment, Money, OrderState, Platform};

// This area's ports live in `crate::ports`; re-exported under their old path.
pub use crate::ports::{
    AdminStore, CompensationRecord, CompensationTarget, OrderRevoker, PriorCompensation,
    RevokeFailure,
};

/// Which orders a listing covers. Empty or `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// Only these states.
    pub states: Vec<OrderState>,
    /// Only this store.
    pub platform: Option<Platform>,
    /// Only this app.
    pub app_id: Option<AppId>,
    /// Only this user.
    pub user_id: Option<UserId>,
    /// Only orders last updated at or before this instant (a minimum age).
    pub updated_before: Option<DateTime<Utc>>,
}

/// Order of one listing segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDirection {
    /// By `updated_at` ascending: the longest-waiting first.
    OldestFirst,
    /// By `updated_at` descending.
    NewestFirst,
}

/// A keyset position: the last row a page showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeysetPosition {
    /// Its sort time (`orders.updated_at`, `notifications.received_at`).
    pub at: DateTime<Utc>,
    /// Its id, the tie-breaker.
    pub id: uuid::Uuid,
}

/// Which kind of id a lookup matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// Our order id.
    OrderId,
    /// The store's charge id (Apple transactionId, Google/Huawei order id or token).
    StoreTransactionId,
    /// Apple originalTransactionId.
    OriginalTransactionId,
    /// Google or Huawei purchase token.
    PurchaseToken,
    /// Google `GPA.…` or Huawei orderId.
    StoreOrderId,
}

impl IdKind {
    /// The name operators see in `LookupMatch.matched_by`.
    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::OrderId => "order_id",
            IdKind::StoreTransactionId => "store_transaction_id",
            IdKind::OriginalTransactionId => "original_transaction_id",
            IdKind::PurchaseToken => "purchase_token",
            IdKind::StoreOrderId => "store_order_id",
        }
    }
}

/// A verified store purchase as operators may see it: no purchase token, receipt or raw payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePurchaseView {
    /// Store.
    pub platform: Platform,
    /// The store's charge id.
    pub store_transaction_id: String,
    /// Apple originalTransactionId, when there is one.
    pub original_transaction_id: Option<String>,
    /// Google `GPA.…` or Huawei orderId.
    pub store_order_id: Option<String>,
    /// Product.
    pub product_id: String,
    /// Units.
    pub quantity: u32,
    /// Where the store says it was made.
    pub environment: Environment,
    /// When the player paid.
    pub purchased_at: Option<DateTime<Utc>>,
    /// End of the subscription period.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the store refunded or revoked it.
    pub revoked_at: Option<DateTime<Utc>>,
    /// What the store charged.
    pub price: Option<Money>,
    /// The user who redeemed it.
    pub user_id: String,
    /// When we verified it.
    pub verified_at: DateTime<Utc>,
    /// Values notifications about this purchase are filed under (token, transaction ids). Used
    /// to find them; never shown.
    pub notification_subjects: Vec<String>,
}

/// One step in an order's story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// What, e.g. `order.paid`, `order.dead`, `admin.redeliver`.
    pub kind: String,
    /// Human detail (no receipts, tokens or keys).
    pub detail: String,
    /// Who: a process role, or the operator of a manual action.
    pub actor: String,
}

/// A store notification as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    /// Our id (a UUID).
    pub id: String,
    /// Store.
    pub platform: Platform,
    /// The store's id.
    pub notification_id: String,
    /// Store type and subtype.
    pub notification_type: String,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// When it was processed for good.
    pub processed_at: Option<DateTime<Utc>>,
    /// Processing attempts.
    pub attempts: u32,
    /// Last processing error.
    pub last_error: Option<String>,
    /// What processing led to.
    pub outcome: Option<String>,
    /// Why it was rejected without effect, when the store did not confirm what it claims
    /// (a machine-readable cause such as `not_voided_at_store`).
    pub rejected_reason: Option<String>,
    /// The purchase it concerns, as stored (a token for Google and Huawei: mask before showing).
    pub subject: Option<String>,
}

/// A manual action, for the `audit_log` table.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// The operator.
    pub operator: String,
    /// `redeliver`, `compensate`, `revoke` or `replay_notification`.
    pub action: &'static str,
    /// The order acted on, when there is one.
    pub order_id: Option<OrderId>,
    /// Why, as the operator wrote it.
    pub reason: String,
    /// What was asked, as JSON.
    pub detail: serde_json::Value,
    /// The operator's idempotency key (compensation only).
    pub idempotency_key: Option<String>,
}

/// Counts behind `GetStats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderStats {
    /// Orders per state and store.
    pub by_state: Vec<(OrderState, Platform, u64)>,
    /// When the oldest PAID or DELIVERING order was paid.
    pub oldest_undelivered_since: Option<DateTime<Utc>>,
    /// When the oldest DELIVERED (not yet confirmed) order was delivered.
    pub oldest_unconfirmed_since: Option<DateTime<Utc>>,
    /// Notifications not yet processed for good.
    pub unprocessed_notifications: u64,
    /// Subscriptions that entitle their user now (active or in grace).
    pub active_subscriptions: u64,
}
