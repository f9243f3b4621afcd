//! What operators' calls read and write: listings, lookups, histories, the inbox, stats, and the
//! actions (redeliver, compensate, replay), each write conditional on what the use case read and
//! committed with its event and audit entry. Adapter: `iap-storage`.

use async_trait::async_trait;

use crate::admin::{
    AuditEntry, HistoryEvent, IdKind, InboxEntry, KeysetPosition, OrderFilter, OrderStats,
    SortDirection, StorePurchaseView,
};
use crate::ids::{AppId, OrderId};
use crate::order::{NewOrder, Order, OrderState, Platform};
use crate::ports::StorageError;

/// A compensation already recorded under an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct PriorCompensation {
    /// The order it granted.
    pub order_id: OrderId,
    /// What was asked then, as stored in the audit entry.
    pub detail: serde_json::Value,
}

/// What a compensation grants.
#[derive(Debug, Clone, PartialEq)]
pub enum CompensationTarget {
    /// An existing order, moved from `from` to PAID (or made due at once when it already is).
    ExistingOrder {
        /// The order.
        id: OrderId,
        /// The state it was read in; the update is conditional on it.
        from: OrderState,
        /// The attempt it was read with; the update is conditional on it.
        attempt: i32,
    },
    /// A new manual order, stored directly as PAID.
    NewOrder(NewOrder),
}

/// What recording a compensation did.
#[derive(Debug, Clone, PartialEq)]
pub enum CompensationRecord {
    /// Committed: the order is PAID (manual) and due, with its audit entry and outbox event.
    Recorded(Box<Order>),
    /// The idempotency key was used first by another call; nothing was written.
    KeyTaken(PriorCompensation),
    /// The existing order changed since it was read; nothing was written.
    OrderChanged,
}

/// The reads and writes operators' calls need. Every write that changes an order is conditional
/// on the state (and attempt) the use case read, and commits with its outbox event and audit
/// entry.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Orders in `states` matching `filter`, after `after` in `direction`, at most `limit`.
    async fn list_orders(
        &self,
        filter: &OrderFilter,
        states: &[OrderState],
        direction: SortDirection,
        after: Option<KeysetPosition>,
        limit: u32,
    ) -> Result<Vec<Order>, StorageError>;

    /// Orders whose store purchase carries `id` as any of its store ids.
    async fn find_by_store_id(&self, id: &str) -> Result<Vec<(OrderId, IdKind)>, StorageError>;

    /// The store purchase that paid an order.
    async fn store_purchase(
        &self,
        order: &Order,
    ) -> Result<Option<StorePurchaseView>, StorageError>;

    /// The purchase tokens of the store purchases that paid these orders (to keep them out of
    /// what operators see: Google's charge id is often the token itself).
    async fn purchase_tokens(&self, orders: &[OrderId]) -> Result<Vec<String>, StorageError>;

    /// The order's outbox events and audit entries.
    async fn order_events(&self, order: OrderId) -> Result<Vec<HistoryEvent>, StorageError>;

    /// Notifications filed under any of `subjects`.
    async fn notifications_about(
        &self,
        subjects: &[String],
    ) -> Result<Vec<InboxEntry>, StorageError>;

    /// Puts an order back in the delivery queue, due now: from `from` (DEAD becomes PAID; PAID
    /// and DELIVERING stay), only if it is still in `from` under `attempt`. Writes an
    /// `admin.redeliver` event and the audit entry in the same commit. `None`: it changed.
    async fn requeue_order(
        &self,
        order: OrderId,
        from: OrderState,
        attempt: i32,
        audit: &AuditEntry,
    ) -> Result<Option<Order>, StorageError>;

    /// The compensation recorded under an idempotency key, if any.
    async fn prior_compensation(
        &self,
        key: &str,
    ) -> Result<Option<PriorCompensation>, StorageError>;

    /// Records a compensation in one commit: the audit entry (its key is unique), the order PAID
    /// and manual, and an `admin.compensate` event.
    async fn record_compensation(
        &self,
        target: &CompensationTarget,
        audit: &AuditEntry,
    ) -> Result<CompensationRecord, StorageError>;

    /// Writes one audit entry.
    async fn record_audit(&self, audit: &AuditEntry) -> Result<(), StorageError>;

    /// Notifications, newest first, after `after`.
    async fn list_notifications(
        &self,
        platform: Option<Platform>,
        only_unprocessed: bool,
        after: Option<KeysetPosition>,
        limit: u32,
    ) -> Result<Vec<InboxEntry>, StorageError>;

    /// Makes a stored notification unprocessed and due now, so the inbox processor handles it
    /// again; writes the audit entry in the same commit. `None`: no such notification.
    async fn replay_notification(
        &self,
        id: &str,
        audit: &AuditEntry,
    ) -> Result<Option<InboxEntry>, StorageError>;

    /// The counts behind `GetStats`, for one app or all.
    async fn order_stats(&self, app: Option<&AppId>) -> Result<OrderStats, StorageError>;
}
