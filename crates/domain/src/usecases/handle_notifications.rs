//! Processing the notification inbox: each stored notification is decoded again (authenticated
//! anew), turned into the same transitions a client call or a job would make — verify and record
//! a paid purchase then deliver it, revoke a refunded one — and marked processed with its outcome.
//! A failure that may pass (store or database down, a grant in flight) is retried with backoff;
//! replays were already stopped at the inbox door.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::delivery::{DeliveryStore, DeliveryTrigger, RevokeReason};
use crate::ids::{AppId, OrderId, UserId};
use crate::notifications::{
    ConsumptionReport, ConsumptionResponder, NotificationDecoder, NotificationInbox,
    RefundConfirmation, StoreEvent, StoredNotification,
};
use crate::order::Platform;
use crate::ports::{
    MarkOutcome, OrderRepository, PaymentLedger, RefundMark, StorageError, StoreError,
};
use crate::purchase::{PurchaseProof, PurchaseStatus};
use crate::refunds::{RefundReversals, RefundShare, ReversalOutcome, Revocation};
use crate::subscriptions::{SubscriptionRef, SubscriptionStore};
use crate::unclaimed::{UnclaimedStore, UnclaimedToKeep};
use crate::usecases::deliver::{DeliverError, Deliveries};
use crate::usecases::refresh_subscription::{RefreshError, Refreshed, SubscriptionRefresh};
use crate::usecases::verify_purchase::{PurchaseVerification, VerifyError, VerifyPurchase};

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InboxReport {
    /// Notifications processed for good.
    pub processed: usize,
    /// Notifications to try again later.
    pub retried: usize,
    /// Notifications whose claim the store did not confirm: kept as rejected, without effect.
    pub rejected: usize,
}

/// How the inbox retries what could not be processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxPolicy {
    /// How long a worker holds a notification it took; if it dies, another takes the
    /// notification after this. Renewed every third of it while the worker is busy, so it need
    /// not cover a slow store call: short, so a killed worker's notifications wait little.
    pub lease: Duration,
    /// First wait after a failure that may pass; doubled per attempt.
    pub backoff_base: Duration,
    /// Longest wait.
    pub backoff_max: Duration,
}

impl Default for InboxPolicy {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(15),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(3600),
        }
    }
}

impl InboxPolicy {
    /// The wait before the next try of a notification tried `attempts` times: the base after
    /// the first failure, doubled for each one after it.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(20);
        (self.backoff_base * (1 << doublings)).min(self.backoff_max)
    }
}

/// Works the inbox.
pub struct NotificationHandler<S> {
    inbox: Arc<dyn NotificationInbox>,
    decoders: HashMap<Platform, Arc<dyn NotificationDecoder>>,
    purchases: Arc<PurchaseVerification<S>>,
    deliveries: Arc<Deliveries<S>>,
    subscriptions: SubscriptionRefresh<S>,
    consumption: Option<Arc<dyn ConsumptionResponder>>,
    store: S,
    policy: InboxPolicy,
}

impl<S> std::fmt::Debug for NotificationHandler<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationHandler")
            .field("platforms", &self.decoders.keys())
            .finish_non_exhaustive()
    }
}

/// Why one notification was not processed.
enum Retry {
    /// It may pass (store or database down): try again later.
    Later(String),
    /// The store does not confirm what the notification claims (a forged or stale push): it is
    /// kept as rejected and changes nothing.
    Rejected {
        /// Machine-readable cause, a metric label.
        reason: &'static str,
        /// Human detail for the inbox row.
        detail: String,
    },
}

impl Retry {
    fn rejected(reason: &'static str, detail: impl Into<String>) -> Self {
        Retry::Rejected {
            reason,
            detail: detail.into(),
        }
    }
}

impl From<StorageError> for Retry {
    fn from(e: StorageError) -> Self {
        Retry::Later(e.to_string())
    }
}

impl<S> NotificationHandler<S>
where
    S: OrderRepository
        + PaymentLedger
        + DeliveryStore
        + SubscriptionStore
        + UnclaimedStore
        + RefundReversals
        + Clone
        + 'static,
{
    /// Wires the handler.
    pub fn new(
        inbox: Arc<dyn NotificationInbox>,
        decoders: Vec<Arc<dyn NotificationDecoder>>,
        purchases: Arc<PurchaseVerification<S>>,
        deliveries: Arc<Deliveries<S>>,
        store: S,
    ) -> Self {
        let trigger: Arc<dyn DeliveryTrigger> = deliveries.clone();
        Self {
            inbox,
            decoders: decoders.into_iter().map(|d| (d.platform(), d)).collect(),
            subscriptions: SubscriptionRefresh::new(purchases.clone(), trigger, store.clone()),
            purchases,
            deliveries,
            consumption: None,
            store,
            policy: InboxPolicy::default(),
        }
    }

    /// Retries with `policy` instead of the default.
    #[must_use]
    pub fn with_policy(mut self, policy: InboxPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Answers Apple's consumption requests with `responder`.
    #[must_use]
    pub fn with_consumption_responder(mut self, responder: Arc<dyn ConsumptionResponder>) -> Self {
        self.consumption = Some(responder);
        self
    }

    /// The decoder of a store, for the HTTP receivers.
    pub fn decoder(&self, platform: Platform) -> Option<Arc<dyn NotificationDecoder>> {
        self.decoders.get(&platform).cloned()
    }

    /// Processes up to `limit` due notifications, renewing the claims on those not finished yet
    /// every third of the lease.
    pub async fn run_once(&self, limit: u32) -> Result<InboxReport, StorageError> {
        let lease = self.policy.lease;
        let claimed = self.inbox.claim_due(limit, lease).await?;
        let unfinished =
            std::sync::Mutex::new(claimed.iter().map(|n| n.id.clone()).collect::<Vec<_>>());
        let renew = async {
            loop {
                tokio::time::sleep(lease / 3).await;
                let ids = unfinished
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                if let Err(e) = self.inbox.extend_claims(&ids, lease).await {
                    tracing::warn!(error = %e, "notification claims not renewed; another worker may take them when they run out");
                }
            }
        };
        let work = self.process_claimed(claimed, &unfinished);
        tokio::pin!(work);
        tokio::select! {
            report = &mut work => report,
            never = renew => never,
        }
    }

    async fn process_claimed(
        &self,
        claimed: Vec<StoredNotification>,
        unfinished: &std::sync::Mutex<Vec<String>>,
    ) -> Result<InboxReport, StorageError> {
        let mut report = InboxReport::default();
        for notification in claimed {
            self.process_one(&notification, &mut report).await?;
            unfinished
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|id| *id != notification.id);
        }
        Ok(report)
    }

    async fn process_one(
        &self,
        notification: &StoredNotification,
        report: &mut InboxReport,
    ) -> Result<(), StorageError> {
        {
            match self.process(notification).await {
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
                Err(Retry::Rejected { reason, detail }) => {
                    tracing::warn!(platform = %notification.platform, kind = %notification.notification_type, reason, %detail, "notification rejected: the store does not confirm it");
                    metrics::counter!("iap_notifications_rejected_total", "store" => notification.platform.as_str(), "reason" => reason).increment(1);
                    self.inbox
                        .mark_rejected(&notification.id, reason, &format!("rejected: {detail}"))
                        .await?;
                    report.rejected += 1;
                }
                Err(Retry::Later(error)) => {
                    let retry_at = Utc::now()
                        + chrono::Duration::from_std(self.policy.backoff(notification.attempts))
                            .unwrap_or_default();
                    tracing::warn!(platform = %notification.platform, kind = %notification.notification_type, %error, "notification will be retried");
                    self.inbox
                        .retry_later(&notification.id, &error, retry_at)
                        .await?;
                    report.retried += 1;
                }
            }
        }
        Ok(())
    }

    #[tracing::instrument(name = "handle_notification", skip_all, fields(platform = %notification.platform, kind = %notification.notification_type, order_id))]
    async fn process(&self, notification: &StoredNotification) -> Result<String, Retry> {
        let Some(decoder) = self.decoders.get(&notification.platform) else {
            return Err(Retry::Later(format!(
                "no {} notification settings",
                notification.platform
            )));
        };
        let decoded =
            match crate::notifications::decode_checked(decoder.as_ref(), &notification.raw_body)
                .await
            {
                Ok(decoded) => decoded,
                Err(StoreError::Unavailable { detail, .. }) => return Err(Retry::Later(detail)),
                // It was authenticated when received; a refusal now (a root removed from the
                // configuration) is recorded, not retried forever.
                Err(e) => return Ok(format!("not processed: {e}")),
            };
        match decoded.event.clone() {
            StoreEvent::Ignored(reason) => Ok(reason),
            StoreEvent::Purchased {
                app_id,
                proof,
                carried_order_id,
            } => {
                self.purchased(
                    app_id,
                    proof,
                    carried_order_id,
                    &notification.notification_type,
                )
                .await
            }
            StoreEvent::Refunded {
                platform,
                subscription,
                ..
            } => {
                // A claim until the store confirms it: the revocation (and the refund mark of a
                // purchase not redeemed yet) uses the identities the store itself reports.
                let (store_keys, revoked, share, cause) =
                    match decoder.confirm_refund(&decoded).await {
                        Ok(RefundConfirmation::Confirmed {
                            store_keys,
                            revoked,
                            share,
                            cause,
                        }) => (store_keys, revoked, share, cause),
                        Ok(RefundConfirmation::Unconfirmed { reason, detail }) => {
                            return Err(Retry::rejected(reason, detail));
                        }
                        Err(StoreError::Rejected { code, detail, .. }) => {
                            return Err(Retry::rejected(code, detail));
                        }
                        Err(e) => return Err(Retry::Later(e.to_string())),
                    };
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
                let outcome = self
                    .revoke_purchase(platform, store_keys, revocation)
                    .await?;
                match subscription {
                    Some(subscription) => {
                        let refreshed = self.refresh(&subscription).await?;
                        Ok(format!("{outcome}; {refreshed}"))
                    }
                    None => Ok(outcome),
                }
            }
            StoreEvent::SubscriptionChanged {
                subscription,
                paid,
                carried_order_id,
            } => match self.subscriptions.refresh(&subscription).await {
                // Nobody owns it: a paid period the notification carries is kept unclaimed.
                Ok(Refreshed::Unowned) if paid.is_some() => {
                    let proof = paid.unwrap_or_else(|| unreachable!("checked by the guard"));
                    self.unclaimed(
                        subscription.app_id,
                        proof,
                        None,
                        &notification.notification_type,
                    )
                    .await
                }
                Ok(refreshed) => Ok(describe(&refreshed)),
                // The store does not know the subscription (a forged push): nothing to apply,
                // and nothing to retry.
                Err(RefreshError::Store(VerifyError::Rejected { code, detail, .. })) => {
                    Err(Retry::rejected(code, detail))
                }
                // Without a way to ask the store about subscriptions, the paid charge the
                // notification carries is still granted, like any purchase.
                Err(e) if e.store_cannot_be_asked() && paid.is_some() => {
                    let proof = paid.unwrap_or_else(|| unreachable!("checked by the guard"));
                    self.purchased(
                        subscription.app_id,
                        proof,
                        carried_order_id,
                        &notification.notification_type,
                    )
                    .await
                }
                Err(e) => Err(Retry::Later(e.to_string())),
            },
            StoreEvent::Recheck { app_id, proof } => {
                let purchase = match self.purchases.inspect(&app_id, &proof).await {
                    Ok(purchase) => purchase,
                    Err(e @ (VerifyError::StoreUnavailable { .. } | VerifyError::Storage(_))) => {
                        return Err(Retry::Later(e.to_string()));
                    }
                    Err(VerifyError::Rejected { code, detail, .. }) => {
                        return Err(Retry::rejected(code, detail));
                    }
                    Err(e) => return Err(Retry::rejected("not_readable_at_store", e.to_string())),
                };
                // The store's answer, not the notification, says whether anything is taken back.
                match purchase.status {
                    PurchaseStatus::Refunded { .. } | PurchaseStatus::Cancelled => {
                        let mut keys = vec![purchase.store_transaction_id.clone()];
                        keys.extend(purchase.purchase_token.clone());
                        keys.extend(purchase.store_order_id.clone());
                        keys.dedup();
                        self.revoke_purchase(
                            purchase.platform,
                            keys,
                            Revocation::whole(RevokeReason::Revoked),
                        )
                        .await
                    }
                    PurchaseStatus::Pending => Err(Retry::rejected(
                        "still_pending_at_store",
                        "the store shows the purchase still pending: nothing was cancelled",
                    )),
                    PurchaseStatus::Purchased => Err(Retry::rejected(
                        "still_paid_at_store",
                        "the store shows the purchase still paid: nothing was cancelled",
                    )),
                }
            }
            StoreEvent::RefundReversed {
                platform,
                store_transaction_id,
            } => self.refund_reversed(platform, store_transaction_id).await,
            StoreEvent::ConsumptionRequested {
                app_id,
                store_transaction_id,
                environment,
                reason,
            } => {
                let Some(responder) = &self.consumption else {
                    return Ok("consumption request: no responder configured".into());
                };
                let delivered = match self
                    .store
                    .find_purchase(Platform::Apple, &store_transaction_id)
                    .await?
                {
                    Some(done) => self
                        .store
                        .get_order(done.order_id)
                        .await?
                        .is_some_and(|o| o.state.is_delivered() || o.delivered_at.is_some()),
                    None => false,
                };
                let report = ConsumptionReport {
                    store_transaction_id,
                    environment,
                    delivered,
                };
                match responder.send_consumption(&app_id, &report).await {
                    Ok(true) => Ok(format!(
                        "consumption information sent (delivered: {delivered}, reason: {})",
                        reason.as_deref().unwrap_or("none")
                    )),
                    Ok(false) => Ok("consumption request: the app does not answer them".into()),
                    Err(StoreError::Unavailable { detail, .. }) => Err(Retry::Later(detail)),
                    Err(e) => Ok(format!("consumption information refused: {e}")),
                }
            }
        }
    }

    /// Takes back the items of the purchase with this charge id or purchase token. A purchase
    /// not redeemed here (yet: notifications arrive out of order) is marked refunded, so that
    /// its later redemption is refused rather than granted.
    async fn revoke_purchase(
        &self,
        platform: Platform,
        store_keys: Vec<String>,
        revocation: Revocation,
    ) -> Result<String, Retry> {
        if let RefundShare::Units(units) = revocation.share {
            return self
                .revoke_units(platform, &store_keys, units, &revocation)
                .await;
        }
        let mark = RefundMark {
            platform,
            store_keys,
            revoked: revocation.reason == RevokeReason::Revoked,
            source: "store notification".into(),
        };
        let redeemed = match self.store.mark_refund(mark).await? {
            MarkOutcome::Redeemed(redeemed) => redeemed,
            MarkOutcome::Marked => {
                metrics::counter!("iap_refund_marks_total", "store" => platform.as_str(), "source" => "notification")
                    .increment(1);
                return Ok(
                    "refund of a purchase not redeemed here: marked, its redemption will be refused"
                        .into(),
                );
            }
        };
        tracing::Span::current().record("order_id", tracing::field::display(redeemed.order_id));
        match self
            .deliveries
            .revoke_refund(redeemed.order_id, &revocation)
            .await
        {
            Ok(revoked) => Ok(format!(
                "order {} is {}",
                revoked.order.id, revoked.order.state
            )),
            Err(DeliverError::NotFound(id)) => Ok(format!("order {id} not found")),
            Err(e) => Err(Retry::Later(e.to_string())),
        }
    }

    /// A partial refund: `units` of the purchase refunded in all, as the store says now. A
    /// purchase not redeemed here is left unmarked: the rest of it is still paid, and its
    /// redemption grants only what the store still calls paid (Google `refundableQuantity`).
    async fn revoke_units(
        &self,
        platform: Platform,
        store_keys: &[String],
        units: u32,
        revocation: &Revocation,
    ) -> Result<String, Retry> {
        let mut redeemed = None;
        for key in store_keys {
            redeemed = match self.store.find_purchase(platform, key).await? {
                Some(found) => Some(found),
                None => self.store.find_purchase_by_token(platform, key).await?,
            };
            if redeemed.is_some() {
                break;
            }
        }
        let Some(redeemed) = redeemed else {
            return Ok(format!(
                "partial refund ({units} units) of a purchase not redeemed here: nothing to take back"
            ));
        };
        tracing::Span::current().record("order_id", tracing::field::display(redeemed.order_id));
        match self
            .deliveries
            .revoke_refund(redeemed.order_id, revocation)
            .await
        {
            Ok(revoked) => Ok(format!(
                "order {} is {}, {units} of {} units refunded at the store, {} taken back now",
                revoked.order.id, revoked.order.state, revoked.order.quantity, revoked.units
            )),
            Err(DeliverError::NotFound(id)) => Ok(format!("order {id} not found")),
            Err(e) => Err(Retry::Later(e.to_string())),
        }
    }

    /// The store reversed a refund: the purchase is paid again. A refund mark left for it is
    /// lifted; its refunded order is granted again through a new order (a new grant id), once:
    /// the store purchase moves to the new order in the same commit, so a replay finds it not
    /// refunded and restores nothing more.
    async fn refund_reversed(
        &self,
        platform: Platform,
        store_transaction_id: String,
    ) -> Result<String, Retry> {
        let lifted = self
            .store
            .lift_refund_marks(platform, std::slice::from_ref(&store_transaction_id))
            .await?;
        let outcome = self
            .store
            .restore_refunded(platform, &store_transaction_id)
            .await?;
        let (label, text) = match outcome {
            ReversalOutcome::Restored { refunded, restored } => {
                tracing::Span::current().record("order_id", tracing::field::display(restored.id));
                let state = match self.deliveries.deliver(restored.id).await {
                    Ok(delivered) => delivered.order.state.to_string(),
                    Err(e) => format!("delivery pending ({e})"),
                };
                (
                    "restored",
                    format!(
                        "refund reversed: order {refunded} stays refunded, granted again as order {} ({state})",
                        restored.id
                    ),
                )
            }
            ReversalOutcome::NotRefunded(order) => (
                "not_refunded",
                format!(
                    "refund reversed: order {order} is not refunded (already restored); nothing to do"
                ),
            ),
            ReversalOutcome::NotRecorded if lifted > 0 => (
                "mark_lifted",
                "refund reversed before the purchase was redeemed here: its refund mark is lifted"
                    .to_owned(),
            ),
            ReversalOutcome::NotRecorded => (
                "not_recorded",
                "refund reversed of a purchase not recorded here: nothing to do".to_owned(),
            ),
        };
        metrics::counter!("iap_refund_reversals_total", "store" => platform.as_str(), "outcome" => label)
            .increment(1);
        Ok(text)
    }

    async fn refresh(&self, subscription: &SubscriptionRef) -> Result<String, Retry> {
        match self.subscriptions.refresh(subscription).await {
            Ok(refreshed) => Ok(describe(&refreshed)),
            Err(e) if e.store_cannot_be_asked() => {
                Ok("subscription state not refreshed: the store cannot be asked".into())
            }
            Err(e) => Err(Retry::Later(e.to_string())),
        }
    }

    /// A paid purchase the store reported: verified and recorded for the user of the order it
    /// carries (Google's notifications do not show it, so the store is asked first), then
    /// delivered. One that no order of ours can be found for is kept unclaimed, never dropped.
    async fn purchased(
        &self,
        app_id: AppId,
        proof: PurchaseProof,
        carried_order_id: Option<String>,
        source: &str,
    ) -> Result<String, Retry> {
        let (carried, inspected) = match carried_order_id {
            Some(id) => (Some(id), None),
            None => match self.inspect(&app_id, &proof).await? {
                Ok(purchase) => (purchase.carried_order_id.clone(), Some(purchase)),
                Err(refused) => return Ok(refused),
            },
        };
        let owner = match carried.as_deref().map(OrderId::parse) {
            Some(Ok(id)) => self.store.get_order(id).await?,
            _ => None,
        };
        let Some(order) = owner.filter(|o| o.app_id == app_id) else {
            return self.unclaimed(app_id, proof, inspected, source).await;
        };
        tracing::Span::current().record("order_id", tracing::field::display(order.id));
        self.record_and_deliver(app_id, order.user_id, proof, inspected)
            .await
    }

    /// Asks the store about a purchase: `Ok(Err(outcome))` when it refuses it for good.
    async fn inspect(
        &self,
        app_id: &AppId,
        proof: &PurchaseProof,
    ) -> Result<Result<crate::purchase::VerifiedPurchase, String>, Retry> {
        match self.purchases.inspect(app_id, proof).await {
            Ok(purchase) => Ok(Ok(purchase)),
            Err(e @ (VerifyError::StoreUnavailable { .. } | VerifyError::Storage(_))) => {
                Err(Retry::Later(e.to_string()))
            }
            // The store does not vouch for it (a forged push naming a token it never issued):
            // kept as rejected, with the store's reason.
            Err(VerifyError::Rejected { code, detail, .. }) => Err(Retry::rejected(code, detail)),
            Err(e) => Ok(Err(format!("purchase refused: {e}"))),
        }
    }

    /// A purchase nobody can be found for: if the store says it is paid, it is kept (once, under
    /// the store's identity of it) for an operator to claim or its player's client to redeem.
    async fn unclaimed(
        &self,
        app_id: AppId,
        proof: PurchaseProof,
        inspected: Option<crate::purchase::VerifiedPurchase>,
        source: &str,
    ) -> Result<String, Retry> {
        let purchase = match inspected {
            Some(purchase) => purchase,
            None => match self.inspect(&app_id, &proof).await? {
                Ok(purchase) => purchase,
                Err(refused) => return Ok(refused),
            },
        };
        match purchase.status {
            PurchaseStatus::Purchased => {}
            PurchaseStatus::Pending => {
                return Ok(
                    "purchase without an order of ours, still pending at the store: \
                           kept once it is paid"
                        .into(),
                );
            }
            PurchaseStatus::Cancelled | PurchaseStatus::Refunded { .. } => {
                return Ok("purchase without an order of ours, not paid at the store: \
                           nothing to keep"
                    .into());
            }
        }
        let keep = UnclaimedToKeep {
            app_id,
            purchase,
            proof,
            source: source.to_owned(),
        };
        Ok(crate::usecases::unclaimed::keep(&self.store, keep).await?)
    }

    /// Records the purchase for `user_id` and delivers it. When the store was already asked
    /// about it (`inspected`: a Google notification names no order, so the store is asked whose
    /// it is first), its answer is recorded as it is: one store call per notification.
    async fn record_and_deliver(
        &self,
        app_id: crate::ids::AppId,
        user_id: UserId,
        proof: crate::purchase::PurchaseProof,
        inspected: Option<crate::purchase::VerifiedPurchase>,
    ) -> Result<String, Retry> {
        let verified = match inspected {
            Some(purchase) => {
                self.purchases
                    .record_inspected(&app_id, &user_id, purchase)
                    .await
            }
            None => {
                self.purchases
                    .verify(VerifyPurchase {
                        app_id,
                        user_id,
                        order_id: None,
                        proof,
                    })
                    .await
            }
        };
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
            // The store does not confirm a paid purchase (refunded, unknown, another app's):
            // nothing is granted, and the row says why.
            Err(VerifyError::Rejected { reason, code, .. }) => Err(Retry::rejected(
                code,
                format!("purchase refused: {reason} ({code})"),
            )),
            Err(e @ (VerifyError::StoreUnavailable { .. } | VerifyError::Storage(_))) => {
                Err(Retry::Later(e.to_string()))
            }
            Err(e) => Ok(format!("not processed: {e}")),
        }
    }
}

/// The outcome of a refresh, for the inbox row.
fn describe(refreshed: &Refreshed) -> String {
    match refreshed {
        Refreshed::Updated {
            subscription,
            granted,
            revoked,
        } => {
            let mut text = format!(
                "subscription {} is {} (version {})",
                subscription.id, subscription.state, subscription.version
            );
            if let Some(order) = granted {
                text.push_str(&format!(", period granted as order {order}"));
            }
            if let Some(order) = revoked {
                text.push_str(&format!(", order {order} revoked"));
            }
            text
        }
        Refreshed::NotRecorded(reason) => reason.clone(),
        Refreshed::Unowned => {
            "a subscription without an order of ours, and no paid period to keep".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_backoff_starts_at_the_base_doubles_and_stops_at_the_cap() {
        let policy = InboxPolicy {
            lease: Duration::from_secs(10),
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(2),
        };
        let waits: Vec<u128> = (1..=6).map(|n| policy.backoff(n).as_millis()).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 2000, 2000]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_secs(2));
        assert_eq!(InboxPolicy::default().backoff(1), Duration::from_secs(5));
    }
}
