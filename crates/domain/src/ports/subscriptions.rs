//! Subscriptions in the database: found by store key or token, changed under the version read,
//! and reserved for the refresh and game-sync jobs. Adapter: `iap-storage`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::order::Platform;
use crate::ports::StorageError;
use crate::subscriptions::{Subscription, SubscriptionChange};

/// Subscriptions in the database.
#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    /// The subscription with this store key.
    async fn find_subscription(
        &self,
        platform: Platform,
        key: &str,
    ) -> Result<Option<Subscription>, StorageError>;

    /// The subscription with this purchase token (Google links, Huawei refunds).
    async fn find_subscription_by_token(
        &self,
        platform: Platform,
        purchase_token: &str,
    ) -> Result<Option<Subscription>, StorageError>;

    /// Applies a change if the row is still at `expected_version`; `None` when another
    /// refresh changed it first (the caller reads again).
    async fn apply_subscription_change(
        &self,
        id: &str,
        expected_version: i64,
        change: &SubscriptionChange,
    ) -> Result<Option<Subscription>, StorageError>;

    /// Takes subscriptions whose check is due, moving their `next_check_at` `hold` ahead under
    /// `FOR UPDATE SKIP LOCKED`, so scheduler replicas share them.
    async fn reserve_due_subscriptions(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        hold: Duration,
    ) -> Result<Vec<Subscription>, StorageError>;

    /// Subscriptions whose current version the game has not acknowledged, due for a call.
    async fn reserve_unsynced_subscriptions(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        hold: Duration,
    ) -> Result<Vec<Subscription>, StorageError>;

    /// Records that the game acknowledged `version` (never lowers it).
    async fn record_subscription_synced(&self, id: &str, version: i64) -> Result<(), StorageError>;

    /// Records a failed call; tried again at `retry_at`.
    async fn record_subscription_sync_failed(
        &self,
        id: &str,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StorageError>;
}
