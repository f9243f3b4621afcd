//! AdminStore: the reads behind operators' listings, lookups, histories and stats, and the
//! writes of their actions. Each write that changes an order is conditional on the state and
//! attempt the use case read and commits together with its outbox event and `audit_log` row;
//! `UNIQUE(action, idempotency_key)` on `audit_log` makes a compensation happen once per key.
//! Portable SQL only (PostgreSQL and SQLite).

mod audit;
mod browse;
mod compensate;
mod inbox;
mod paging;
mod redeliver;
mod stats;

use async_trait::async_trait;

use iap_domain::admin::{
    AdminStore, AuditEntry, CompensationRecord, CompensationTarget, HistoryEvent, IdKind,
    InboxEntry, KeysetPosition, OrderFilter, OrderStats, PriorCompensation, SortDirection,
    StorePurchaseView,
};
use iap_domain::ports::StorageError;
use iap_domain::{AppId, Order, OrderId, OrderState, Platform};

use crate::Storage;

pub(crate) use audit::{admin_event, insert_audit};

fn corrupt(what: &str) -> impl Fn(iap_domain::IdError) -> StorageError + '_ {
    move |e| StorageError::Corrupt(format!("{what}: {e}"))
}

#[async_trait]
impl AdminStore for Storage {
    async fn list_orders(
        &self,
        filter: &OrderFilter,
        states: &[OrderState],
        direction: SortDirection,
        after: Option<KeysetPosition>,
        limit: u32,
    ) -> Result<Vec<Order>, StorageError> {
        browse::list_orders(self, filter, states, direction, after, limit).await
    }

    async fn find_by_store_id(&self, id: &str) -> Result<Vec<(OrderId, IdKind)>, StorageError> {
        browse::find_by_store_id(self, id).await
    }

    async fn store_purchase(
        &self,
        order: &Order,
    ) -> Result<Option<StorePurchaseView>, StorageError> {
        browse::store_purchase(self, order).await
    }

    async fn purchase_tokens(&self, orders: &[OrderId]) -> Result<Vec<String>, StorageError> {
        browse::purchase_tokens(self, orders).await
    }

    async fn order_events(&self, order: OrderId) -> Result<Vec<HistoryEvent>, StorageError> {
        browse::order_events(self, order).await
    }

    async fn notifications_about(
        &self,
        subjects: &[String],
    ) -> Result<Vec<InboxEntry>, StorageError> {
        browse::notifications_about(self, subjects).await
    }

    async fn requeue_order(
        &self,
        order: OrderId,
        from: OrderState,
        attempt: i32,
        audit: &AuditEntry,
    ) -> Result<Option<Order>, StorageError> {
        redeliver::requeue_order(self, order, from, attempt, audit).await
    }

    async fn prior_compensation(
        &self,
        key: &str,
    ) -> Result<Option<PriorCompensation>, StorageError> {
        compensate::prior_compensation(self, key).await
    }

    async fn record_compensation(
        &self,
        target: &CompensationTarget,
        audit: &AuditEntry,
    ) -> Result<CompensationRecord, StorageError> {
        compensate::record_compensation(self, target, audit).await
    }

    async fn record_audit(&self, audit: &AuditEntry) -> Result<(), StorageError> {
        audit::record_audit(self, audit).await
    }

    async fn list_notifications(
        &self,
        platform: Option<Platform>,
        only_unprocessed: bool,
        after: Option<KeysetPosition>,
        limit: u32,
    ) -> Result<Vec<InboxEntry>, StorageError> {
        inbox::list_notifications(self, platform, only_unprocessed, after, limit).await
    }

    async fn replay_notification(
        &self,
        id: &str,
        audit: &AuditEntry,
    ) -> Result<Option<InboxEntry>, StorageError> {
        inbox::replay_notification(self, id, audit).await
    }

    async fn order_stats(&self, app: Option<&AppId>) -> Result<OrderStats, StorageError> {
        stats::order_stats(self, app).await
    }
}
