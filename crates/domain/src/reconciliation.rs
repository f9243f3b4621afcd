//! Reconciliation with the stores (the server-side 补单): what a store's own history says
//! happened — notifications it sent that never reached us, purchases it voided — pulled for
//! recent windows and fed into the same paths a live notification takes, so a purchase whose
//! client died and whose notification was lost is still granted, and a refund we never heard of is
//! still taken back.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ids::AppId;
use crate::order::Platform;
use crate::ports::{StorageError, StoreError};

/// One thing a store's history reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChange {
    /// A notification exactly as the store sent it (Apple Get Notification History): it goes
    /// through the inbox, which keeps one copy per notification id.
    Notification {
        /// The body, authenticated again before it is stored.
        raw_body: String,
    },
    /// A purchase the store voided (Google voided purchases, Huawei cancelled list).
    Voided {
        /// The voided charge (Google and Huawei `orderId`).
        store_transaction_id: Option<String>,
        /// Its purchase token.
        purchase_token: Option<String>,
        /// Revoked (chargeback, fraud) rather than refunded, when the store says.
        revoked: bool,
        /// How much of the purchase the store has refunded so far (a quantity-based partial
        /// refund: the cumulative units, never this entry's alone).
        share: crate::refunds::RefundShare,
        /// The store's initiator and reason.
        cause: crate::refunds::RefundCause,
    },
}

/// A store's history of recent changes, per app.
#[async_trait]
pub trait StoreHistory: Send + Sync {
    /// The store.
    fn platform(&self) -> Platform;

    /// The apps with settings for this store.
    fn apps(&self) -> Vec<AppId>;

    /// What changed for `app` between `from` and `to` (every page).
    async fn changes(
        &self,
        app: &AppId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoreChange>, StoreError>;
}

/// Cursors of the scheduler's singleton jobs (`job_state`), each with a lease so that among
/// many replicas one works a window at a time.
#[async_trait]
pub trait JobCursors: Send + Sync {
    /// Takes job `name` for `hold` unless another replica holds it. `Some(cursor)` when taken
    /// (the cursor is `None` on the first run), `None` when held elsewhere.
    async fn take_job(
        &self,
        name: &str,
        hold: Duration,
    ) -> Result<Option<Option<DateTime<Utc>>>, StorageError>;

    /// Moves the job's cursor to `cursor` and lets it go.
    async fn advance_job(&self, name: &str, cursor: DateTime<Utc>) -> Result<(), StorageError>;
}
