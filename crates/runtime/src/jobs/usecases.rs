//! The domain's background use cases as [`Job`]s: each holds the use case and the batch (and
//! hold) its pass takes, from the settings.

use std::sync::Arc;
use std::time::Duration;

use iap_domain::ports::StorageError;
use iap_domain::usecases::handle_notifications::{InboxReport, NotificationHandler};
use iap_domain::usecases::reconcile::{ReconcileReport, Reconciliation};
use iap_domain::usecases::refresh_subscription::{SubscriptionRefresh, SubscriptionSweepReport};
use iap_domain::usecases::sync_entitlements::{EntitlementSync, SyncReport};
use iap_storage::Storage;

use super::{Job, Report};

impl Report for SyncReport {
    fn taken(&self) -> usize {
        self.synced + self.failed
    }
}

impl Report for InboxReport {
    fn taken(&self) -> usize {
        self.processed + self.retried + self.rejected
    }
}

impl Report for SubscriptionSweepReport {
    fn taken(&self) -> usize {
        self.checked
    }
}

impl Report for ReconcileReport {
    fn taken(&self) -> usize {
        self.recovered_notifications + self.revoked + self.failed
    }
}

/// Tells the game server about subscription changes it has not acknowledged
/// (`GameServerService.UpdateSubscription`).
pub struct EntitlementSyncJob {
    /// The use case.
    pub sync: EntitlementSync<Storage>,
    /// Versions one pass sends at most.
    pub batch: u32,
}

impl std::fmt::Debug for EntitlementSyncJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntitlementSyncJob")
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl Job for EntitlementSyncJob {
    type Report = SyncReport;

    fn name(&self) -> &'static str {
        crate::settings::ENTITLEMENT_SYNC
    }

    fn batch(&self) -> Option<u32> {
        Some(self.batch)
    }

    async fn run_once(&self) -> Result<SyncReport, StorageError> {
        self.sync.run_once(self.batch).await
    }
}

/// Works the notification inbox.
pub struct NotificationInboxJob {
    /// The use case.
    pub handler: Arc<NotificationHandler<Storage>>,
    /// Notifications one pass claims at most.
    pub batch: u32,
}

impl NotificationInboxJob {
    /// Notifications one pass claims when nothing else is said.
    pub const DEFAULT_BATCH: u32 = 100;
}

impl std::fmt::Debug for NotificationInboxJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationInboxJob")
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl Job for NotificationInboxJob {
    type Report = InboxReport;

    fn name(&self) -> &'static str {
        crate::settings::NOTIFICATION_INBOX
    }

    fn batch(&self) -> Option<u32> {
        Some(self.batch)
    }

    async fn run_once(&self) -> Result<InboxReport, StorageError> {
        self.handler.run_once(self.batch).await
    }
}

/// Refreshes subscriptions whose check is due from the store.
pub struct SubscriptionCheckJob {
    /// The use case.
    pub refresh: Arc<SubscriptionRefresh<Storage>>,
    /// Subscriptions one pass takes at most.
    pub batch: u32,
    /// How long a pass keeps its subscriptions from other replicas.
    pub hold: Duration,
}

impl std::fmt::Debug for SubscriptionCheckJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionCheckJob")
            .field("batch", &self.batch)
            .field("hold", &self.hold)
            .finish_non_exhaustive()
    }
}

impl Job for SubscriptionCheckJob {
    type Report = SubscriptionSweepReport;

    fn name(&self) -> &'static str {
        crate::settings::SUBSCRIPTION_CHECKS
    }

    fn batch(&self) -> Option<u32> {
        Some(self.batch)
    }

    async fn run_once(&self) -> Result<SubscriptionSweepReport, StorageError> {
        self.refresh.run_once(self.batch, self.hold).await
    }
}

/// Reads the stores' histories for what the inbox missed.
pub struct ReconciliationJob {
    /// The use case.
    pub reconciliation: Arc<Reconciliation<Storage>>,
}

impl std::fmt::Debug for ReconciliationJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconciliationJob").finish_non_exhaustive()
    }
}

impl Job for ReconciliationJob {
    type Report = ReconcileReport;

    fn name(&self) -> &'static str {
        crate::settings::RECONCILIATION
    }

    fn batch(&self) -> Option<u32> {
        None
    }

    async fn run_once(&self) -> Result<ReconcileReport, StorageError> {
        self.reconciliation.run_once().await
    }
}
