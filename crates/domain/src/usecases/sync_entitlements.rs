//! Telling the game server where each subscription's entitlement stands: every version of a
//! subscription row the game has not acknowledged is sent with `UpdateSubscription`, keyed by
//! (subscription id, version), until it is. The game keeps the highest version it has seen, so
//! repeats and reordering are harmless. Runs beside the delivery sweeper, which owns the calls
//! to the game server.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::delivery::GameServer;
use crate::ports::StorageError;
use crate::subscriptions::{SubscriptionStore, SubscriptionUpdate};

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// Versions the game acknowledged (or declined to take, see [`GameServer::update_subscription`]).
    pub synced: usize,
    /// Calls that failed, retried with backoff.
    pub failed: usize,
}

/// The sync job.
pub struct EntitlementSync<S> {
    store: S,
    game: Arc<dyn GameServer>,
    deadline: Duration,
}

impl<S> std::fmt::Debug for EntitlementSync<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntitlementSync").finish_non_exhaustive()
    }
}

impl<S: SubscriptionStore> EntitlementSync<S> {
    /// Wires the job; `deadline` bounds each call.
    pub fn new(store: S, game: Arc<dyn GameServer>, deadline: Duration) -> Self {
        Self {
            store,
            game,
            deadline,
        }
    }

    /// Sends up to `limit` pending versions.
    pub async fn run_once(&self, limit: u32) -> Result<SyncReport, StorageError> {
        let hold = (self.deadline * 2).max(Duration::from_secs(5));
        let pending = self
            .store
            .reserve_unsynced_subscriptions(Utc::now(), limit, hold)
            .await?;
        let mut report = SyncReport::default();
        for subscription in pending {
            let version = subscription.version;
            let update = SubscriptionUpdate {
                access_until: subscription.access_until(),
                subscription,
            };
            match self.game.update_subscription(&update, self.deadline).await {
                Ok(taken) => {
                    if !taken {
                        metrics::counter!("iap_subscription_updates_declined_total").increment(1);
                    }
                    self.store
                        .record_subscription_synced(&update.subscription.id, version)
                        .await?;
                    report.synced += 1;
                }
                Err(e) => {
                    let retry_at = Utc::now() + chrono::Duration::seconds(30);
                    tracing::warn!(error = %e, "subscription update not acknowledged");
                    self.store
                        .record_subscription_sync_failed(
                            &update.subscription.id,
                            &e.to_string(),
                            retry_at,
                        )
                        .await?;
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }
}
