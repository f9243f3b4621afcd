//! A store's own history of recent changes (notifications it sent, purchases it voided), read by
//! reconciliation. Adapters: `iap-platform-*`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ids::AppId;
use crate::order::Platform;
use crate::ports::StoreError;

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
