//! The reconciliation job: for each store and app, the window since the last pass (overlapping
//! it a little, since stores record late) is read from the store's history and applied:
//! notifications go into the inbox (authenticated, one copy per id, then processed like any
//! other), voided purchases are revoked. The cursor moves only when the whole window was applied,
//! so a failed pass is repeated, and every step is idempotent, so a repeated one changes nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::delivery::{DeliveryTrigger, RevokeReason};
use crate::ids::AppId;
use crate::notifications::{NotificationDecoder, NotificationInbox};
use crate::order::Platform;
use crate::ports::{
    MarkOutcome, OrderRepository, PaymentLedger, RefundMark, StorageError, StoreError,
};
use crate::reconciliation::{JobCursors, StoreChange, StoreHistory};
use crate::refunds::{RefundShare, Revocation};

/// How the job reads the stores.
#[derive(Debug, Clone, Copy)]
pub struct ReconcilePolicy {
    /// How far back the first pass reads.
    pub first_lookback: Duration,
    /// How much each pass re-reads before the last cursor.
    pub overlap: Duration,
    /// How long a replica holds a store's window.
    pub hold: Duration,
}

impl Default for ReconcilePolicy {
    fn default() -> Self {
        Self {
            first_lookback: Duration::from_secs(72 * 3600),
            overlap: Duration::from_secs(600),
            hold: Duration::from_secs(300),
        }
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Store windows read.
    pub windows: usize,
    /// Notifications the inbox had never received.
    pub recovered_notifications: usize,
    /// Voided purchases taken back now.
    pub revoked: usize,
    /// Windows that failed (read again next pass).
    pub failed: usize,
}

/// The job.
pub struct Reconciliation<S> {
    histories: Vec<Arc<dyn StoreHistory>>,
    decoders: HashMap<Platform, Arc<dyn NotificationDecoder>>,
    inbox: Arc<dyn NotificationInbox>,
    delivery: Arc<dyn DeliveryTrigger>,
    store: S,
    policy: ReconcilePolicy,
}

impl<S> std::fmt::Debug for Reconciliation<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciliation")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Why one window could not be applied.
enum WindowError {
    Store(StoreError),
    Storage(StorageError),
    Delivery(String),
}

impl From<StorageError> for WindowError {
    fn from(e: StorageError) -> Self {
        WindowError::Storage(e)
    }
}

impl std::fmt::Display for WindowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WindowError::Store(e) => e.fmt(f),
            WindowError::Storage(e) => e.fmt(f),
            WindowError::Delivery(e) => write!(f, "delivery: {e}"),
        }
    }
}

impl<S> Reconciliation<S>
where
    S: JobCursors + PaymentLedger + OrderRepository,
{
    /// Wires the job.
    pub fn new(
        histories: Vec<Arc<dyn StoreHistory>>,
        decoders: Vec<Arc<dyn NotificationDecoder>>,
        inbox: Arc<dyn NotificationInbox>,
        delivery: Arc<dyn DeliveryTrigger>,
        store: S,
        policy: ReconcilePolicy,
    ) -> Self {
        Self {
            histories,
            decoders: decoders.into_iter().map(|d| (d.platform(), d)).collect(),
            inbox,
            delivery,
            store,
            policy,
        }
    }

    /// One pass over every store and app whose window no other replica holds.
    pub async fn run_once(&self) -> Result<ReconcileReport, StorageError> {
        let mut report = ReconcileReport::default();
        for history in &self.histories {
            for app in history.apps() {
                let name = format!("reconcile:{}:{app}", history.platform());
                let Some(cursor) = self.store.take_job(&name, self.policy.hold).await? else {
                    continue;
                };
                let to = Utc::now();
                let from = match cursor {
                    Some(cursor) => cursor - chrono_duration(self.policy.overlap),
                    None => to - chrono_duration(self.policy.first_lookback),
                };
                report.windows += 1;
                match self
                    .window(history.as_ref(), &app, from, to, &mut report)
                    .await
                {
                    Ok(()) => self.store.advance_job(&name, to).await?,
                    Err(e) => {
                        report.failed += 1;
                        tracing::warn!(platform = %history.platform(), %app, error = %e, "reconciliation window failed; read again next pass");
                    }
                }
            }
        }
        if report.recovered_notifications + report.revoked > 0 {
            tracing::info!(?report, "reconciliation found what the live path missed");
        }
        Ok(report)
    }

    async fn window(
        &self,
        history: &dyn StoreHistory,
        app: &AppId,
        from: chrono::DateTime<Utc>,
        to: chrono::DateTime<Utc>,
        report: &mut ReconcileReport,
    ) -> Result<(), WindowError> {
        let platform = history.platform();
        let changes = history
            .changes(app, from, to)
            .await
            .map_err(WindowError::Store)?;
        for change in changes {
            match change {
                StoreChange::Notification { raw_body } => {
                    let Some(decoder) = self.decoders.get(&platform) else {
                        continue;
                    };
                    let decoded =
                        match crate::notifications::decode_checked(decoder.as_ref(), &raw_body)
                            .await
                        {
                            Ok(decoded) => decoded,
                            Err(e @ StoreError::Unavailable { .. }) => {
                                return Err(WindowError::Store(e));
                            }
                            // Not authentic for this deployment (another app's, another root).
                            Err(e) => {
                                tracing::info!(error = %e, "history notification not accepted");
                                continue;
                            }
                        };
                    if self.inbox.receive(decoded.inbound).await? {
                        report.recovered_notifications += 1;
                        metrics::counter!("iap_reconciled_total", "store" => platform.as_str(), "kind" => "notification").increment(1);
                    }
                }
                StoreChange::Voided {
                    store_transaction_id,
                    purchase_token,
                    revoked,
                    share,
                    cause,
                } => {
                    let mut redeemed = None;
                    if let Some(id) = &store_transaction_id {
                        redeemed = self.store.find_purchase(platform, id).await?;
                    }
                    if redeemed.is_none()
                        && let Some(token) = &purchase_token
                    {
                        redeemed = self.store.find_purchase_by_token(platform, token).await?;
                    }
                    let redeemed = match redeemed {
                        Some(redeemed) => redeemed,
                        // Partly refunded before we saw it: the rest is still paid, and its
                        // redemption grants only what the store still calls paid.
                        None if share != RefundShare::Whole => continue,
                        None => {
                            // Voided before we saw the purchase: a later redemption must be
                            // refused. The charge's own id, else its token (which for a
                            // subscription would also name its later periods).
                            let Some(key) = store_transaction_id.or(purchase_token) else {
                                continue;
                            };
                            let mark = RefundMark {
                                platform,
                                store_keys: vec![key],
                                revoked,
                                source: "reconciliation".into(),
                            };
                            match self.store.mark_refund(mark).await? {
                                MarkOutcome::Marked => {
                                    metrics::counter!("iap_refund_marks_total", "store" => platform.as_str(), "source" => "reconciliation").increment(1);
                                    continue;
                                }
                                // Redeemed between the lookups above and the mark.
                                MarkOutcome::Redeemed(redeemed) => redeemed,
                            }
                        }
                    };
                    let Some(order) = self.store.get_order(redeemed.order_id).await? else {
                        continue;
                    };
                    if !order.state.is_paid() {
                        continue;
                    }
                    let reason = if revoked {
                        RevokeReason::Revoked
                    } else {
                        RevokeReason::Refunded
                    };
                    let revocation = Revocation {
                        reason,
                        share,
                        cause,
                    };
                    let units = self
                        .delivery
                        .revoke_refund_now(order.id, &revocation)
                        .await
                        .map_err(WindowError::Delivery)?;
                    // A partial refund already taken back (by its notification, or the pass
                    // before) takes nothing now.
                    if units == 0 && share != RefundShare::Whole {
                        continue;
                    }
                    report.revoked += 1;
                    metrics::counter!("iap_reconciled_total", "store" => platform.as_str(), "kind" => "voided").increment(1);
                }
            }
        }
        Ok(())
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
