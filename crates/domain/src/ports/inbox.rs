//! The notification inbox: each store notification stored under the store's unique id before
//! anything acts on it, claimed with a lease, and marked with what it led to. Adapter:
//! `iap-storage`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ids::AppId;
use crate::order::Platform;
use crate::ports::StorageError;

/// A notification received and authenticated, ready for the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundNotification {
    /// Store.
    pub platform: Platform,
    /// The store's unique id (Apple `notificationUUID`, Pub/Sub `messageId`, Huawei event id).
    pub notification_id: String,
    /// The app it concerns, when known.
    pub app_id: Option<AppId>,
    /// Store type and subtype, e.g. `REFUND`, `DID_FAIL_TO_RENEW/GRACE_PERIOD`.
    pub notification_type: String,
    /// The store transaction or token it is about, for operators' searches.
    pub subject: Option<String>,
    /// The body exactly as received.
    pub raw_body: String,
    /// When the store says it happened.
    pub event_at: Option<DateTime<Utc>>,
}

/// A notification in the inbox, claimed for processing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredNotification {
    /// Inbox row id.
    pub id: String,
    /// Store.
    pub platform: Platform,
    /// Store type and subtype.
    pub notification_type: String,
    /// The body exactly as received.
    pub raw_body: String,
    /// Processing attempts so far, this one included.
    pub attempts: u32,
    /// When the inbox stored it (the start of the notification lag).
    pub received_at: DateTime<Utc>,
}

/// The notification inbox.
#[async_trait]
pub trait NotificationInbox: Send + Sync {
    /// Stores a notification unless its id is already there. `true` when it is new.
    async fn receive(&self, notification: InboundNotification) -> Result<bool, StorageError>;

    /// Claims up to `limit` unprocessed notifications whose time has come, hiding them from other
    /// processors for `lease` (a crashed processor's claim simply runs out).
    async fn claim_due(
        &self,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<StoredNotification>, StorageError>;

    /// Moves the claims on these still unprocessed notifications `lease` from now: the worker
    /// that took them renews while it works, so a short lease frees them soon after it dies.
    async fn extend_claims(&self, ids: &[String], lease: Duration) -> Result<(), StorageError>;

    /// Marks a notification processed, with what it led to.
    async fn mark_processed(&self, id: &str, outcome: &str) -> Result<(), StorageError>;

    /// Marks a notification done without effect because the store did not confirm what it
    /// claims: `reason` is the machine-readable cause (kept in `rejected_reason`), `outcome` the
    /// human detail. The row stays, under its body's key, so a replay of it is a duplicate.
    async fn mark_rejected(
        &self,
        id: &str,
        reason: &str,
        outcome: &str,
    ) -> Result<(), StorageError>;

    /// Records a failed attempt; it is tried again at `retry_at`.
    async fn retry_later(
        &self,
        id: &str,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StorageError>;
}
