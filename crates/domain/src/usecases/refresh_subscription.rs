//! Refreshing a subscription: ask the store where it stands, record and deliver a paid period we
//! have not granted (a renewal, a recovery, an immediate upgrade), revoke a refunded one, and
//! store the new entitlement with a higher version when the game must hear about it.
//!
//! Notifications and the scheduler's timer both end here, so a notification that arrives twice,
//! late or out of order only causes one more look at the store's current truth. Two refreshes of
//! the same subscription race on the row's version; the loser looks at the store again rather
//! than writing what it saw earlier.

use std::sync::Arc;

use chrono::Utc;

use crate::delivery::{DeliveryTrigger, RevokeReason};
use crate::ids::{OrderId, UserId};
use crate::order::OrderState;
use crate::ports::{OrderRepository, PaymentLedger, StorageError};
use crate::purchase::PurchaseStatus;
use crate::subscriptions::{
    Subscription, SubscriptionChange, SubscriptionRef, SubscriptionSnapshot, SubscriptionState,
    SubscriptionStore, access_until, next_check, subscription_key,
};
use crate::usecases::verify_purchase::{PurchaseVerification, VerifyError};

/// Why a refresh did not finish; every variant may pass, so the caller tries again later.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The store could not answer, or refused the query.
    #[error(transparent)]
    Store(#[from] VerifyError),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Delivery or revocation could not be started.
    #[error("delivery: {0}")]
    Delivery(String),
    /// Other refreshes kept changing the row.
    #[error("subscription {0} kept changing under concurrent refreshes")]
    Contended(String),
}

impl RefreshError {
    /// The store cannot be asked about subscriptions in this deployment (no settings, or no
    /// App Store Server API key): retrying will not help until the configuration changes.
    pub fn store_cannot_be_asked(&self) -> bool {
        matches!(
            self,
            RefreshError::Store(
                VerifyError::StoreNotConfigured(_) | VerifyError::StoreMisconfigured(_)
            )
        )
    }
}

/// What a refresh did.
#[derive(Debug, Clone, PartialEq)]
pub enum Refreshed {
    /// The subscription as now stored.
    Updated {
        /// The row after the refresh.
        subscription: Box<Subscription>,
        /// A period recorded now (its order was handed to delivery).
        granted: Option<OrderId>,
        /// A period revoked now.
        revoked: Option<OrderId>,
    },
    /// Nothing was recorded: the period was refused (refunded, lapsed, sandbox not allowed).
    /// The reason says which.
    NotRecorded(String),
    /// Nothing was recorded: the store's subscription has no owner among our orders (it carries
    /// no order of ours and replaces none of our subscriptions). A paid period of it is kept
    /// unclaimed by the caller that holds its proof (see [`crate::unclaimed`]).
    Unowned,
}

/// The refresh use case.
pub struct SubscriptionRefresh<S> {
    purchases: Arc<PurchaseVerification<S>>,
    delivery: Arc<dyn DeliveryTrigger>,
    store: S,
}

impl<S> std::fmt::Debug for SubscriptionRefresh<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionRefresh")
            .finish_non_exhaustive()
    }
}

const ATTEMPTS: usize = 3;

impl<S> SubscriptionRefresh<S>
where
    S: OrderRepository + PaymentLedger + SubscriptionStore + Clone,
{
    /// Wires the use case.
    pub fn new(
        purchases: Arc<PurchaseVerification<S>>,
        delivery: Arc<dyn DeliveryTrigger>,
        store: S,
    ) -> Self {
        Self {
            purchases,
            delivery,
            store,
        }
    }

    /// Refreshes a subscription we may or may not know. One we do not know yet (the client died
    /// before verifying its first period) is recorded for the user of the order its purchase
    /// carries, or of the subscription it replaces.
    #[tracing::instrument(name = "refresh_subscription", skip_all, fields(platform = %target.platform, app_id = %target.app_id))]
    pub async fn refresh(&self, target: &SubscriptionRef) -> Result<Refreshed, RefreshError> {
        for _ in 0..ATTEMPTS {
            let known = self
                .store
                .find_subscription(target.platform, &target.key)
                .await?;
            let reference = known
                .as_ref()
                .map_or_else(|| target.clone(), Subscription::reference);
            let snapshot = self.purchases.subscription_snapshot(&reference).await?;
            let Some(known) = known else {
                return self.adopt(target, snapshot).await;
            };
            if let Some(done) = self.apply(&known, snapshot).await? {
                return Ok(done);
            }
        }
        Err(RefreshError::Contended(target.key.clone()))
    }

    /// First sight of a subscription: record its current period for its owner.
    async fn adopt(
        &self,
        target: &SubscriptionRef,
        snapshot: SubscriptionSnapshot,
    ) -> Result<Refreshed, RefreshError> {
        let Some(owner) = self.owner_of(target, &snapshot).await? else {
            return Ok(Refreshed::Unowned);
        };
        match self
            .purchases
            .record_reported(&target.app_id, &owner, snapshot.latest.clone())
            .await
        {
            Ok(verified) => {
                if !verified.already_recorded {
                    self.delivery
                        .deliver_now(verified.order.id)
                        .await
                        .map_err(RefreshError::Delivery)?;
                }
            }
            // Refunded, expired, sandbox not allowed ...: nothing to grant, nothing stored.
            Err(VerifyError::Rejected { reason, code, .. }) => {
                return Ok(Refreshed::NotRecorded(format!(
                    "subscription refused: {reason} ({code})"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let key = subscription_key(&snapshot.latest);
        let known = self
            .store
            .find_subscription(target.platform, &key)
            .await?
            .ok_or_else(|| StorageError::Other("recorded subscription not found".into()))?;
        // The row was written from the purchase alone; bring it to the store's full view.
        Ok(self
            .apply(&known, snapshot)
            .await?
            .unwrap_or(Refreshed::Updated {
                subscription: Box::new(known),
                granted: None,
                revoked: None,
            }))
    }

    /// Whose subscription this is: the user of the order it carries, else the owner of the
    /// subscription it replaces (Google `linkedPurchaseToken`).
    async fn owner_of(
        &self,
        target: &SubscriptionRef,
        snapshot: &SubscriptionSnapshot,
    ) -> Result<Option<UserId>, RefreshError> {
        let carried = snapshot
            .latest
            .carried_order_id
            .as_deref()
            .and_then(|id| OrderId::parse(id).ok());
        if let Some(id) = carried
            && let Some(order) = self.store.get_order(id).await?
            && order.app_id == target.app_id
        {
            return Ok(Some(order.user_id));
        }
        if let Some(linked) = &snapshot.latest.linked_purchase_token
            && let Some(old) = self
                .store
                .find_subscription_by_token(target.platform, linked)
                .await?
            && old.app_id == target.app_id
        {
            return Ok(Some(old.user_id));
        }
        Ok(None)
    }

    /// Applies the store's view to a known subscription; `None` when the row changed under us.
    async fn apply(
        &self,
        known: &Subscription,
        snapshot: SubscriptionSnapshot,
    ) -> Result<Option<Refreshed>, RefreshError> {
        let latest = &snapshot.latest;
        let mut granted = None;
        let mut revoked = None;
        let mut latest_period = None;
        let mut state = snapshot.state;
        match &latest.status {
            PurchaseStatus::Purchased
                if latest.store_transaction_id != known.latest_store_transaction_id =>
            {
                match self
                    .purchases
                    .record_reported(&known.app_id, &known.user_id, latest.clone())
                    .await
                {
                    Ok(verified) => {
                        latest_period =
                            Some((verified.order.id, latest.store_transaction_id.clone()));
                        if !verified.already_recorded {
                            granted = Some(verified.order.id);
                            self.delivery
                                .deliver_now(verified.order.id)
                                .await
                                .map_err(RefreshError::Delivery)?;
                        }
                    }
                    // A period that ended before we heard of it is not granted late.
                    Err(VerifyError::Rejected { reason, .. }) => {
                        tracing::info!(%reason, "subscription period not recorded");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            PurchaseStatus::Refunded { .. } => {
                state = SubscriptionState::Revoked;
                if let Some(done) = self
                    .store
                    .find_purchase(latest.platform, &latest.store_transaction_id)
                    .await?
                {
                    self.delivery
                        .revoke_now(done.order_id, RevokeReason::Refunded)
                        .await
                        .map_err(RefreshError::Delivery)?;
                    revoked = Some(done.order_id);
                }
            }
            _ => {}
        }
        // A replaced subscription stays replaced: its successor carries the entitlement.
        if known.state == SubscriptionState::Replaced {
            state = SubscriptionState::Replaced;
        } else if latest_period.is_none()
            && self
                .store
                .get_order(known.latest_order_id)
                .await?
                .is_some_and(|o| matches!(o.state, OrderState::Refunded | OrderState::Revoked))
        {
            // Its latest period was taken back (Google reports a revoked subscription as
            // expired): no access, whatever the store's state name.
            state = SubscriptionState::Revoked;
        }
        let product_id = if latest_period.is_some() {
            latest.product_id.clone()
        } else {
            known.product_id.clone()
        };
        let grace_until = (state == SubscriptionState::InGrace)
            .then_some(snapshot.grace_until)
            .flatten();
        let now = Utc::now();
        let change = SubscriptionChange {
            state,
            product_id: product_id.clone(),
            expires_at: snapshot.expires_at.or(known.expires_at),
            grace_until,
            auto_renew: snapshot.auto_renew.unwrap_or(known.auto_renew),
            auto_renew_product_id: snapshot
                .auto_renew_product_id
                .clone()
                .filter(|p| p != product_id.as_str()),
            price_change_state: snapshot
                .price_change_state
                .clone()
                .or_else(|| known.price_change_state.clone()),
            latest_period,
            replaced_by: known.replaced_by.clone(),
            latest_receipt: latest.latest_receipt.clone(),
            next_check_at: next_check(state, snapshot.expires_at, grace_until, now),
            bump_version: state != known.state
                || product_id != known.product_id
                || access_until(state, snapshot.expires_at, grace_until) != known.access_until(),
        };
        let Some(stored) = self
            .store
            .apply_subscription_change(&known.id, known.version, &change)
            .await?
        else {
            return Ok(None);
        };
        if stored.state != known.state {
            tracing::info!(from = %known.state, to = %stored.state, "subscription state changed");
            metrics::counter!("iap_subscription_transitions_total", "store" => stored.platform.as_str(), "to" => stored.state.as_str()).increment(1);
        }
        Ok(Some(Refreshed::Updated {
            subscription: Box::new(stored),
            granted,
            revoked,
        }))
    }
}

/// What one sweep pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionSweepReport {
    /// Subscriptions looked at.
    pub checked: usize,
    /// Periods granted.
    pub granted: usize,
    /// Looks that failed (retried when their hold runs out).
    pub failed: usize,
}

impl<S> SubscriptionRefresh<S>
where
    S: OrderRepository + PaymentLedger + SubscriptionStore + Clone,
{
    /// One pass of the scheduler's subscription job: takes up to `limit` subscriptions whose
    /// check is due (shortly before a period or a grace period ends, or periodically while
    /// suspended) and refreshes each. A failed look is retried once `hold` has passed.
    pub async fn run_once(
        &self,
        limit: u32,
        hold: std::time::Duration,
    ) -> Result<SubscriptionSweepReport, StorageError> {
        let due = self
            .store
            .reserve_due_subscriptions(Utc::now(), limit, hold)
            .await?;
        let mut report = SubscriptionSweepReport::default();
        for subscription in due {
            report.checked += 1;
            match self.refresh(&subscription.reference()).await {
                Ok(Refreshed::Updated {
                    granted: Some(_), ..
                }) => report.granted += 1,
                Ok(_) => {}
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(platform = %subscription.platform, error = %e, "subscription check failed");
                }
            }
        }
        Ok(report)
    }
}
