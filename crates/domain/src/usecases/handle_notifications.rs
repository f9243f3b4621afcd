//! Processing the notification inbox: each stored notification is decoded again (authenticated
//! anew), turned into the same transitions a client call or a job would make — verify and record
//! a paid purchase then deliver it, revoke a refunded one — and marked processed with its outcome.
//! A failure that may pass (store or database down, a grant in flight) is retried with backoff;
//! replays were already stopped at the inbox door.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::delivery::{DeliveryStore, RevokeReason};
use crate::ids::{OrderId, UserId};
use crate::notifications::{
    NotificationDecoder, NotificationInbox, StoreEvent, StoredNotification,
};
use crate::order::Platform;
use crate::ports::{OrderRepository, PaymentLedger, StorageError, StoreError};
use crate::usecases::deliver::{DeliverError, Deliveries};
use crate::usecases::verify_purchase::{PurchaseVerification, VerifyError, VerifyPurchase};

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InboxReport {
    /// Notifications processed for good.
    pub processed: usize,
    /// Notifications to try again later.
    pub retried: usize,
}

/// Works the inbox.
pub struct NotificationHandler<S> {
    inbox: Arc<dyn NotificationInbox>,
    decoders: HashMap<Platform, Arc<dyn NotificationDecoder>>,
    purchases: Arc<PurchaseVerification<S>>,
    deliveries: Arc<Deliveries<S>>,
    store: S,
}

impl<S> std::fmt::Debug for NotificationHandler<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationHandler")
            .field("platforms", &self.decoders.keys())
            .finish_non_exhaustive()
    }
}

/// Why one notification could not be processed now.
enum Retry {
    Later(String),
}

impl From<StorageError> for Retry {
    fn from(e: StorageError) -> Self {
        Retry::Later(e.to_string())
    }
}

impl<S> NotificationHandler<S>
where
    S: OrderRepository + PaymentLedger + DeliveryStore + Clone,
{
    /// Wires the handler.
    pub fn new(
        inbox: Arc<dyn NotificationInbox>,
        decoders: Vec<Arc<dyn NotificationDecoder>>,
        purchases: Arc<PurchaseVerification<S>>,
        deliveries: Arc<Deliveries<S>>,
        store: S,
    ) -> Self {
        Self {
            inbox,
            decoders: decoders.into_iter().map(|d| (d.platform(), d)).collect(),
            purchases,
            deliveries,
            store,
        }
    }

    /// The decoder of a store, for the HTTP receivers.
    pub fn decoder(&self, platform: Platform) -> Option<Arc<dyn NotificationDecoder>> {
        self.decoders.get(&platform).cloned()
    }

    /// Processes up to `limit` due notifications.
    pub async fn run_once(&self, limit: u32) -> Result<InboxReport, StorageError> {
        let claimed = self
            .inbox
            .claim_due(limit, Duration::from_secs(120))
            .await?;
        let mut report = InboxReport::default();
        for notification in claimed {
            match self.process(&notification).await {
                Ok(outcome) => {
                    tracing::info!(platform = %notification.platform, kind = %notification.notification_type, %outcome, "notification processed");
                    metrics::counter!("iap_notifications_processed_total", "store" => notification.platform.as_str()).increment(1);
                    self.inbox
                        .mark_processed(&notification.id, &outcome)
                        .await?;
                    let lag = (Utc::now() - notification.received_at).num_milliseconds();
                    metrics::histogram!("iap_notification_lag_seconds", "store" => notification.platform.as_str())
                        .record(lag.max(0) as f64 / 1000.0);
                    report.processed += 1;
                }
                Err(Retry::Later(error)) => {
                    let exponent = notification.attempts.min(10);
                    let wait = Duration::from_secs(5) * (1 << exponent);
                    let retry_at = Utc::now()
                        + chrono::Duration::from_std(wait.min(Duration::from_secs(3600)))
                            .unwrap_or_default();
                    tracing::warn!(platform = %notification.platform, kind = %notification.notification_type, %error, "notification will be retried");
                    self.inbox
                        .retry_later(&notification.id, &error, retry_at)
                        .await?;
                    report.retried += 1;
                }
            }
        }
        Ok(report)
    }

    #[tracing::instrument(name = "handle_notification", skip_all, fields(platform = %notification.platform, kind = %notification.notification_type, order_id))]
    async fn process(&self, notification: &StoredNotification) -> Result<String, Retry> {
        let Some(decoder) = self.decoders.get(&notification.platform) else {
            return Err(Retry::Later(format!(
                "no {} notification settings",
                notification.platform
            )));
        };
        let decoded = match decoder.decode(&notification.raw_body).await {
            Ok(decoded) => decoded,
            Err(StoreError::Unavailable { detail, .. }) => return Err(Retry::Later(detail)),
            // It was authenticated when received; a refusal now (a root removed from the
            // configuration) is recorded, not retried forever.
            Err(e) => return Ok(format!("not processed: {e}")),
        };
        match decoded.event {
            StoreEvent::Ignored(reason) => Ok(reason),
            StoreEvent::Purchased {
                app_id,
                proof,
                carried_order_id,
            } => {
                // Whose purchase: the order it carries. Notifications that do not show it
                // (Google's) are looked up at the store first.
                let carried = match carried_order_id {
                    Some(id) => Some(id),
                    None => match self.purchases.inspect(&app_id, &proof).await {
                        Ok(purchase) => purchase.carried_order_id,
                        Err(
                            e @ (VerifyError::StoreUnavailable { .. } | VerifyError::Storage(_)),
                        ) => {
                            return Err(Retry::Later(e.to_string()));
                        }
                        Err(e) => return Ok(format!("purchase refused: {e}")),
                    },
                };
                let owner = match carried.as_deref().map(OrderId::parse) {
                    Some(Ok(id)) => self.store.get_order(id).await?,
                    _ => None,
                };
                let Some(order) = owner.filter(|o| o.app_id == app_id) else {
                    return Ok(
                        "paid purchase without an order of ours: left for reconciliation".into(),
                    );
                };
                tracing::Span::current().record("order_id", tracing::field::display(order.id));
                self.record_and_deliver(app_id, order.user_id, proof).await
            }
            StoreEvent::Refunded {
                platform,
                store_transaction_id,
                revoked,
            } => {
                let mut redeemed = self
                    .store
                    .find_purchase(platform, &store_transaction_id)
                    .await?;
                if redeemed.is_none() && platform != Platform::Apple {
                    redeemed = self
                        .store
                        .find_purchase_by_token(platform, &store_transaction_id)
                        .await?;
                }
                let Some(redeemed) = redeemed else {
                    return Ok("refund of a purchase never redeemed here".into());
                };
                tracing::Span::current()
                    .record("order_id", tracing::field::display(redeemed.order_id));
                let reason = if revoked {
                    RevokeReason::Revoked
                } else {
                    RevokeReason::Refunded
                };
                match self.deliveries.revoke(redeemed.order_id, reason).await {
                    Ok(order) => Ok(format!("order {} is {}", order.id, order.state)),
                    Err(DeliverError::NotFound(id)) => Ok(format!("order {id} not found")),
                    Err(e) => Err(Retry::Later(e.to_string())),
                }
            }
        }
    }

    async fn record_and_deliver(
        &self,
        app_id: crate::ids::AppId,
        user_id: UserId,
        proof: crate::purchase::PurchaseProof,
    ) -> Result<String, Retry> {
        let verified = self
            .purchases
            .verify(VerifyPurchase {
                app_id,
                user_id,
                order_id: None,
                proof,
            })
            .await;
        match verified {
            Ok(v) => {
                let order = v.order.id;
                // Delivery now; the sweeper finishes it if this fails.
                let state = match self.deliveries.deliver(order).await {
                    Ok(outcome) => outcome.order.state.to_string(),
                    Err(e) => format!("delivery pending ({e})"),
                };
                let recorded = if v.already_recorded {
                    "already recorded"
                } else {
                    "recorded"
                };
                Ok(format!("order {order} {recorded}, {state}"))
            }
            Err(VerifyError::Rejected { reason, code, .. }) => {
                Ok(format!("purchase refused: {reason} ({code})"))
            }
            Err(e @ (VerifyError::StoreUnavailable { .. } | VerifyError::Storage(_))) => {
                Err(Retry::Later(e.to_string()))
            }
            Err(e) => Ok(format!("not processed: {e}")),
        }
    }
}
