//! Deliver: grant a paid order into the game exactly once, then confirm it at the store.
//!
//! The exactly-once argument, as this code keeps it:
//! 1. The database is the fence. A claim is a conditional update that bumps the order's attempt
//!    counter; every later write is conditional on that number, so a stale worker's write is a
//!    no-op. The lease on the order keeps a second worker from claiming while a grant is in
//!    flight, with or without Redis.
//! 2. The lock (Redis `SET NX PX` with a token) only spares the game server concurrent calls for
//!    one order. If it cannot be reached, delivery goes on, counted and logged.
//! 3. The game server is called with a grant id derived from the order id, the same on every
//!    attempt; DELIVERED is committed only on its acknowledgement. A crash in between leaves a
//!    DELIVERING order whose lease expires and which the sweeper grants again with the same id.
//! 4. The store is confirmed only after DELIVERED is committed, and that step is retried until
//!    it succeeds.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;

use crate::delivery::{
    Claim, ClaimedOrder, DeliveryRecord, DeliveryStore, Failure, GameAck, GameError, GameServer,
    GrantCommand, GrantReason, RevocationClaim, RevokeCommand, RevokeReason, RevokedDetail,
    revoke_id,
};
use crate::ids::OrderId;
use crate::order::{Environment, Order, OrderState, Platform};
use crate::ports::{
    Lease, LockError, OrderRepository, StorageError, StoreConfirmer, StoreError, WorkLock,
};
use crate::refunds::{PartialStep, Revocation, partial_revoke_id};

/// Timing and limits of delivery.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    /// Failed grant attempts (claims) before the order becomes DEAD.
    pub max_attempts: u32,
    /// Deadline of one GrantItems or RevokeItems call.
    pub call_deadline: Duration,
    /// GrantItems calls within one attempt before leaving the order to the sweeper.
    pub calls_per_attempt: u32,
    /// First backoff between attempts; doubled per attempt, with jitter.
    pub backoff_base: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
    /// How long the Redis lock is taken for; renewed every third of it while a call runs.
    pub lock_ttl: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 12,
            call_deadline: Duration::from_secs(5),
            calls_per_attempt: 3,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(600),
            lock_ttl: Duration::from_secs(15),
        }
    }
}

impl DeliveryPolicy {
    /// The lease a claim takes on the order: longer than anything one attempt can take
    /// (every call at its deadline plus the pauses between them), so a worker that is still
    /// running never loses its order to another.
    pub fn lease(&self) -> Duration {
        let calls = self.calls_per_attempt.max(1);
        // One more deadline as margin for the database writes around the calls.
        self.call_deadline * (calls + 1) + self.pause_within_attempt() * calls
    }

    fn pause_within_attempt(&self) -> Duration {
        Duration::from_millis(200)
    }

    /// Backoff before attempt `attempt + 1`: base × 2^(attempt−1), capped, with ±25 % jitter so
    /// that orders failing together do not come back together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let raw = self.backoff_base.saturating_mul(1 << exponent);
        let capped = raw.min(self.backoff_max);
        let jitter = rand::thread_rng().gen_range(0.75..1.25);
        capped.mul_f64(jitter)
    }
}

/// What a Deliver call achieved.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryOutcome {
    /// The order after the call.
    pub order: Order,
    /// Its grant record, once one exists.
    pub delivery: Option<DeliveryRecord>,
    /// Another worker held the order; this call changed nothing.
    pub held_elsewhere: bool,
}

/// What a revocation did.
#[derive(Debug, Clone, PartialEq)]
pub struct Revoked {
    /// The order after it.
    pub order: Order,
    /// Units this call took back (0: nothing new, or nothing was granted).
    pub units: u32,
}

/// Why Deliver or Revoke could not run.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// No such order.
    #[error("order {0} not found")]
    NotFound(OrderId),
    /// A grant of this order is in flight elsewhere; revocation must wait for it.
    #[error("a grant of order {0} is in flight; retry shortly")]
    GrantInFlight(OrderId),
    /// The game server did not acknowledge the revocation; retry.
    #[error(transparent)]
    Game(#[from] GameError),
    /// Storage failed; nothing half-written.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The delivery use case.
pub struct Deliveries<S> {
    store: S,
    game: Arc<dyn GameServer>,
    lock: Arc<dyn WorkLock>,
    confirmers: HashMap<Platform, Arc<dyn StoreConfirmer>>,
    policy: DeliveryPolicy,
}

impl<S> std::fmt::Debug for Deliveries<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries")
            .field("confirmers", &self.confirmers.keys())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A lock held for one order, released on every path out of Deliver.
struct HeldLock<'a> {
    lock: &'a dyn WorkLock,
    lease: Option<Lease>,
}

impl HeldLock<'_> {
    async fn release(self) {
        if let Some(lease) = &self.lease
            && let Err(e) = self.lock.release(lease).await
        {
            tracing::debug!(error = %e, "lock release failed; it expires on its own");
        }
    }
}

impl<S: DeliveryStore + OrderRepository> Deliveries<S> {
    /// Wires the use case.
    pub fn new(
        store: S,
        game: Arc<dyn GameServer>,
        lock: Arc<dyn WorkLock>,
        confirmers: Vec<Arc<dyn StoreConfirmer>>,
        policy: DeliveryPolicy,
    ) -> Self {
        Self {
            store,
            game,
            lock,
            confirmers: confirmers.into_iter().map(|c| (c.platform(), c)).collect(),
            policy,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &DeliveryPolicy {
        &self.policy
    }

    /// The grant record of an order.
    pub async fn delivery(&self, order: OrderId) -> Result<Option<DeliveryRecord>, StorageError> {
        self.store.delivery(order).await
    }

    /// Orders a sweeper should deliver or confirm now.
    pub async fn due_orders(&self, limit: u32) -> Result<Vec<OrderId>, StorageError> {
        self.store.due_orders(Utc::now(), limit).await
    }

    /// Takes up to `limit` due orders for this sweeper (see
    /// [`DeliveryStore::reserve_due_orders`]); they come due again after a lease if it dies.
    pub async fn reserve_due_orders(&self, limit: u32) -> Result<Vec<OrderId>, StorageError> {
        self.store
            .reserve_due_orders(Utc::now(), limit, self.policy.lease())
            .await
    }

    /// Takes the per-order lock. `None` inside means Redis was unreachable and we go on with
    /// the database fence alone; `Err(())` means another worker holds it.
    async fn take_lock(&self, order: OrderId) -> Result<HeldLock<'_>, ()> {
        let key = format!("deliver:{order}");
        match self.lock.acquire(&key, self.policy.lock_ttl).await {
            Ok(Some(lease)) => Ok(HeldLock {
                lock: self.lock.as_ref(),
                lease: Some(lease),
            }),
            Ok(None) => Err(()),
            Err(LockError::Unavailable(e)) => {
                tracing::warn!(error = %e, %order, "lock unavailable; delivering on the database fence alone");
                metrics::counter!("iap_delivery_lock_unavailable_total").increment(1);
                Ok(HeldLock {
                    lock: self.lock.as_ref(),
                    lease: None,
                })
            }
        }
    }

    /// Runs `work` while renewing the lock every third of its TTL. A lost lock is logged and
    /// counted, not fatal: the database fence still decides.
    async fn renewing<T>(&self, held: &HeldLock<'_>, work: impl Future<Output = T>) -> T {
        let Some(lease) = &held.lease else {
            return work.await;
        };
        let ttl = self.policy.lock_ttl;
        let renew = async {
            let mut lost = false;
            loop {
                tokio::time::sleep(ttl / 3).await;
                match self.lock.renew(lease, ttl).await {
                    Ok(true) => {}
                    Ok(false) if !lost => {
                        lost = true;
                        tracing::warn!(key = %lease.key, "delivery lock lost mid-call; the database fence still holds");
                        metrics::counter!("iap_delivery_lock_lost_total").increment(1);
                    }
                    Ok(false) => {}
                    Err(e) => tracing::debug!(error = %e, "lock renewal failed"),
                }
            }
        };
        tokio::pin!(work);
        tokio::select! {
            out = &mut work => out,
            never = renew => never,
        }
    }

    /// Delivers one order as far as it can go now: grant, then store confirmation. Safe to call
    /// any number of times, concurrently, from any process.
    #[tracing::instrument(name = "deliver", skip_all, fields(order_id = %order_id, platform, attempt))]
    pub async fn deliver(&self, order_id: OrderId) -> Result<DeliveryOutcome, DeliverError> {
        let Ok(held) = self.take_lock(order_id).await else {
            metrics::counter!("iap_delivery_held_elsewhere_total").increment(1);
            return self.finish(order_id, true).await;
        };
        let result = self.renewing(&held, self.advance(order_id)).await;
        held.release().await;
        result
    }

    /// The order and its grant record as they stand now, after this call's work.
    async fn finish(
        &self,
        order_id: OrderId,
        held_elsewhere: bool,
    ) -> Result<DeliveryOutcome, DeliverError> {
        let order = self
            .store
            .get_order(order_id)
            .await?
            .ok_or(DeliverError::NotFound(order_id))?;
        Ok(DeliveryOutcome {
            delivery: self.store.delivery(order_id).await?,
            order,
            held_elsewhere,
        })
    }

    /// Grant then confirm; at most one step of each per call.
    async fn advance(&self, order_id: OrderId) -> Result<DeliveryOutcome, DeliverError> {
        let lease = self.policy.lease();
        match self.store.claim(order_id, lease).await? {
            Claim::Grant(claim) => {
                record_claim(&claim);
                crate::crash_point!("deliver::after_claim");
                // DELIVERED was committed with the confirm claim: confirm straight away.
                if let Some(confirm) = self.grant(&claim).await? {
                    record_claim(&confirm);
                    self.confirm(&confirm).await?;
                }
                self.finish(order_id, false).await
            }
            Claim::Confirm(claim) => {
                record_claim(&claim);
                self.confirm(&claim).await?;
                self.finish(order_id, false).await
            }
            Claim::HeldElsewhere(_) => self.finish(order_id, true).await,
            Claim::Settled(_) => self.finish(order_id, false).await,
            Claim::NotFound => Err(DeliverError::NotFound(order_id)),
        }
    }

    /// One grant attempt: a few calls with the same grant id, then DELIVERED or a recorded
    /// failure. Returns the confirm claim DELIVERED was committed with, if it was.
    async fn grant(&self, claim: &ClaimedOrder) -> Result<Option<ClaimedOrder>, DeliverError> {
        let order = &claim.order;
        let command = GrantCommand {
            grant_id: claim.grant_id.clone(),
            order: order.clone(),
            sandbox: order.environment == Some(Environment::Sandbox),
            reason: if order.manual {
                GrantReason::ManualCompensation
            } else if order.binding_reason == Some(crate::order::BindingReason::SubscriptionRenewal)
            {
                GrantReason::SubscriptionRenewal
            } else if order.binding_reason == Some(crate::order::BindingReason::RefundReversed) {
                GrantReason::RefundReversed
            } else {
                GrantReason::Purchase
            },
            entitlement_expires_at: claim.purchase.as_ref().and_then(|p| p.expires_at),
        };
        let mut calls = 0;
        let mut last_error = GameError("no call made".into());
        while calls < self.policy.calls_per_attempt.max(1) {
            if calls > 0 {
                let jitter: f64 = rand::thread_rng().gen_range(0.5..1.5);
                let pause = self.policy.pause_within_attempt().mul_f64(jitter);
                tokio::time::sleep(pause).await;
            }
            calls += 1;
            metrics::counter!("iap_grant_calls_total").increment(1);
            let started = std::time::Instant::now();
            let result = self.game.grant(&command, self.policy.call_deadline).await;
            metrics::histogram!("iap_grant_call_seconds").record(started.elapsed().as_secs_f64());
            match result {
                Ok(ack) => {
                    crate::crash_point!("deliver::after_grant");
                    if ack.duplicate {
                        metrics::counter!("iap_grant_duplicate_acks_total").increment(1);
                    }
                    let Some(delivered) = self.store.record_granted(claim, &ack, calls).await?
                    else {
                        // Another worker claimed the order after our lease: its write decides,
                        // and the grant id made our call harmless.
                        metrics::counter!("iap_delivery_fenced_total").increment(1);
                        return Ok(None);
                    };
                    metrics::counter!("iap_deliveries_total", "result" => "granted").increment(1);
                    if let Some(waited) = paid_to_delivered(&delivered) {
                        metrics::histogram!("iap_delivery_latency_seconds", "platform" => order.platform.as_str())
                            .record(waited);
                    }
                    tracing::info!(order_id = %order.id, duplicate = ack.duplicate, "granted");
                    crate::crash_point!("deliver::after_delivered");
                    return Ok(Some(ClaimedOrder {
                        order: delivered,
                        grant_id: claim.grant_id.clone(),
                        purchase: claim.purchase.clone(),
                    }));
                }
                Err(e) => {
                    tracing::warn!(order_id = %order.id, error = %e, call = calls, "grant call failed");
                    last_error = e;
                }
            }
        }
        // The attempts of this series: an operator's redelivery of a DEAD order starts a new
        // one, while `order.attempt` (the fencing token) keeps growing.
        let attempt = u32::try_from(
            order
                .attempt
                .saturating_sub(order.attempts_before_redelivery),
        )
        .unwrap_or(0);
        let dead = attempt >= self.policy.max_attempts;
        let failure = Failure {
            error: last_error.to_string(),
            retry_at: Utc::now()
                + chrono::Duration::from_std(self.policy.backoff(attempt)).unwrap_or_default(),
            dead,
        };
        self.store
            .record_grant_failed(claim, &failure, calls)
            .await?;
        if dead {
            tracing::error!(order_id = %order.id, attempts = attempt, "delivery attempts exhausted: order is DEAD");
            metrics::counter!("iap_deliveries_total", "result" => "dead").increment(1);
        } else {
            metrics::counter!("iap_deliveries_total", "result" => "retry").increment(1);
        }
        Ok(None)
    }

    /// Confirms a delivered order at its store (Google consume/acknowledge, Huawei confirm;
    /// nothing for Apple).
    async fn confirm(&self, claim: &ClaimedOrder) -> Result<(), DeliverError> {
        let order = &claim.order;
        let result = match (self.confirmers.get(&order.platform), &claim.purchase) {
            (Some(confirmer), Some(purchase)) => confirmer.confirm(purchase).await,
            (_, None) if order.manual => Ok(crate::ports::ConfirmOutcome::NotApplicable),
            (None, _) if order.platform == Platform::Apple => {
                Ok(crate::ports::ConfirmOutcome::NotApplicable)
            }
            (None, _) => Err(StoreError::Misconfigured(format!(
                "no {} confirmation configured for app {}",
                order.platform, order.app_id
            ))),
            (Some(_), None) => Err(StoreError::Misconfigured(format!(
                "order {} has no store purchase to confirm",
                order.id
            ))),
        };
        match result {
            Ok(outcome) => {
                crate::crash_point!("deliver::after_confirm");
                self.store.record_confirmed(claim, outcome).await?;
                metrics::counter!("iap_store_confirmations_total", "store" => order.platform.as_str(), "result" => "ok").increment(1);
            }
            Err(e) => {
                tracing::warn!(order_id = %order.id, error = %e, "store confirmation failed; will retry");
                metrics::counter!("iap_store_confirmations_total", "store" => order.platform.as_str(), "result" => "error").increment(1);
                let attempt = u32::try_from(order.attempt).unwrap_or(u32::MAX);
                let retry_after = match &e {
                    StoreError::Unavailable {
                        retry_after: Some(after),
                        ..
                    } => *after,
                    _ => self.policy.backoff(attempt),
                };
                let failure = Failure {
                    error: e.to_string(),
                    retry_at: Utc::now()
                        + chrono::Duration::from_std(retry_after).unwrap_or_default(),
                    dead: false,
                };
                self.store.record_confirm_failed(claim, &failure).await?;
            }
        }
        Ok(())
    }

    /// Takes back the items of a refunded or revoked order (RevokeItems with a stable revoke
    /// id), then marks it REFUNDED or REVOKED. An order never granted is only marked.
    pub async fn revoke(
        &self,
        order_id: OrderId,
        reason: RevokeReason,
    ) -> Result<Order, DeliverError> {
        self.revoke_refund(order_id, &Revocation::whole(reason))
            .await
            .map(|revoked| revoked.order)
    }

    /// Takes back what a store refund covers. A whole refund (or a partial one that reaches
    /// every unit) ends the order REFUNDED or REVOKED; a partial one takes back only the units
    /// the store refunded beyond those already taken back and leaves the order delivered for
    /// the rest, so a repeated notification or a reconciliation pass revokes nothing more.
    #[tracing::instrument(name = "revoke", skip_all, fields(order_id = %order_id, reason = ?revocation.reason, platform, attempt))]
    pub async fn revoke_refund(
        &self,
        order_id: OrderId,
        revocation: &Revocation,
    ) -> Result<Revoked, DeliverError> {
        let Ok(held) = self.take_lock(order_id).await else {
            return Err(DeliverError::GrantInFlight(order_id));
        };
        let result = self
            .renewing(&held, self.revoke_claimed(order_id, revocation))
            .await;
        held.release().await;
        result
    }

    async fn revoke_claimed(
        &self,
        order_id: OrderId,
        revocation: &Revocation,
    ) -> Result<Revoked, DeliverError> {
        let (claim, granted) = match self
            .store
            .claim_revocation(order_id, self.policy.lease())
            .await?
        {
            RevocationClaim::Claimed { claim, granted } => {
                record_claim(&claim);
                (claim, granted)
            }
            RevocationClaim::HeldElsewhere(_) => return Err(DeliverError::GrantInFlight(order_id)),
            RevocationClaim::Settled(order) => return Ok(Revoked { order, units: 0 }),
            RevocationClaim::NotFound => return Err(DeliverError::NotFound(order_id)),
        };
        let quantity = claim.order.quantity;
        let target = revocation.share.units_of(quantity);
        if target < quantity {
            return self.revoke_part(claim, revocation, target).await;
        }
        // A step of an earlier partial refund cut short is finished first, with its own key,
        // so the rest is counted from what the game really took back.
        let done = self.finish_pending_step(&claim).await?;
        let rest = quantity.saturating_sub(done);
        let refunded = revocation.reason == RevokeReason::Refunded;
        let ack = if granted {
            let command = RevokeCommand {
                revoke_id: revoke_id(order_id),
                grant_id: claim.grant_id.clone(),
                order: claim.order.clone(),
                reason: revocation.reason,
                quantity: rest,
                remaining: 0,
            };
            metrics::counter!("iap_revoke_calls_total").increment(1);
            Some(
                self.game
                    .revoke(&command, self.policy.call_deadline)
                    .await?,
            )
        } else {
            None
        };
        let units = if granted { rest } else { 0 };
        let detail = RevokedDetail {
            units,
            partially_revoked: done,
            cause: revocation.cause.clone(),
        };
        let order = self
            .store
            .record_revoked(&claim, refunded, ack.as_ref(), &detail)
            .await?;
        match order {
            Some(order) => {
                metrics::counter!("iap_revocations_total").increment(1);
                Ok(Revoked { order, units })
            }
            // Claimed again in the meantime (our lease ran out): the revocation is retried by
            // the caller, and RevokeItems is idempotent.
            None => Err(DeliverError::GrantInFlight(order_id)),
        }
    }

    /// Finishes a partial revocation step that a crash cut short (RevokeItems with the step's
    /// own key: the game applies it once however often it is called). Returns the units taken
    /// back by partial revocations in all.
    async fn finish_pending_step(&self, claim: &ClaimedOrder) -> Result<u32, DeliverError> {
        let state = self.store.partial_revocations(claim.order.id).await?;
        let Some(step) = state.pending else {
            return Ok(state.revoked_units);
        };
        self.call_partial(claim, &step).await?;
        if self
            .store
            .record_partial_revoked(claim, Some(&step), None)
            .await?
            .is_none()
        {
            return Err(DeliverError::GrantInFlight(claim.order.id));
        }
        Ok(step.to_units)
    }

    async fn call_partial(
        &self,
        claim: &ClaimedOrder,
        step: &PartialStep,
    ) -> Result<GameAck, DeliverError> {
        let command = RevokeCommand {
            revoke_id: step.revoke_id.clone(),
            grant_id: claim.grant_id.clone(),
            order: claim.order.clone(),
            reason: step.reason,
            quantity: step.units(),
            remaining: claim.order.quantity.saturating_sub(step.to_units),
        };
        metrics::counter!("iap_revoke_calls_total").increment(1);
        Ok(self
            .game
            .revoke(&command, self.policy.call_deadline)
            .await?)
    }

    /// A partial refund: `target` units of the order refunded in all. Only a granted order
    /// (DELIVERED or CONFIRMED) is taken back in part; one whose grant is still to come is
    /// retried after it, since granting it whole and then revoking the share is the one order
    /// of events the game's ledger can follow.
    async fn revoke_part(
        &self,
        claim: ClaimedOrder,
        revocation: &Revocation,
        target: u32,
    ) -> Result<Revoked, DeliverError> {
        let order_id = claim.order.id;
        if !matches!(
            claim.order.state,
            OrderState::Delivered | OrderState::Confirmed
        ) {
            self.store
                .record_partial_revoked(&claim, None, None)
                .await?;
            return Err(DeliverError::GrantInFlight(order_id));
        }
        let done = self.finish_pending_step(&claim).await?;
        if target <= done {
            // Already taken back (a duplicated notification, a reconciliation pass).
            metrics::counter!("iap_partial_revocations_total", "outcome" => "already_revoked")
                .increment(1);
            let order = self
                .store
                .record_partial_revoked(&claim, None, None)
                .await?
                .ok_or(DeliverError::GrantInFlight(order_id))?;
            return Ok(Revoked { order, units: 0 });
        }
        let step = PartialStep {
            revoke_id: partial_revoke_id(order_id, done, target),
            from_units: done,
            to_units: target,
            reason: revocation.reason,
            cause: revocation.cause.clone(),
        };
        if !self.store.begin_partial_revocation(&claim, &step).await? {
            return Err(DeliverError::GrantInFlight(order_id));
        }
        let ack = self.call_partial(&claim, &step).await?;
        let order = self
            .store
            .record_partial_revoked(&claim, Some(&step), Some(&ack))
            .await?
            .ok_or(DeliverError::GrantInFlight(order_id))?;
        metrics::counter!("iap_partial_revocations_total", "outcome" => "revoked").increment(1);
        metrics::counter!("iap_partially_revoked_units_total").increment(u64::from(step.units()));
        Ok(Revoked {
            order,
            units: step.units(),
        })
    }
}

/// Fills the use case's span with what the claim revealed: the store and the fencing attempt.
fn record_claim(claim: &ClaimedOrder) {
    let span = tracing::Span::current();
    span.record("platform", claim.order.platform.as_str());
    span.record("attempt", claim.order.attempt);
}

/// Seconds from payment to the game's acknowledgement: what a player waits (and what grows when
/// the fast path is lost and the sweeper has to step in).
fn paid_to_delivered(order: &Order) -> Option<f64> {
    let waited = order.delivered_at? - order.paid_at?;
    Some(waited.num_milliseconds().max(0) as f64 / 1000.0)
}

#[async_trait::async_trait]
impl<S: DeliveryStore + OrderRepository> crate::delivery::DeliveryTrigger for Deliveries<S> {
    async fn deliver_now(&self, order: OrderId) -> Result<(), String> {
        self.deliver(order)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn revoke_now(&self, order: OrderId, reason: RevokeReason) -> Result<(), String> {
        match self.revoke(order, reason).await {
            Ok(_) | Err(DeliverError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn revoke_refund_now(
        &self,
        order: OrderId,
        revocation: &Revocation,
    ) -> Result<u32, String> {
        match self.revoke_refund(order, revocation).await {
            Ok(revoked) => Ok(revoked.units),
            Err(DeliverError::NotFound(_)) => Ok(0),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A game ack for tests and examples.
impl GameAck {
    /// A first acknowledgement with this reference.
    pub fn new(reference: impl Into<String>) -> Self {
        Self {
            reference: reference.into(),
            duplicate: false,
        }
    }
}

#[async_trait::async_trait]
impl<S: DeliveryStore + OrderRepository> crate::admin::OrderRevoker for Deliveries<S> {
    async fn revoke(
        &self,
        order: OrderId,
        reason: RevokeReason,
    ) -> Result<(), crate::admin::RevokeFailure> {
        use crate::admin::RevokeFailure;
        match Deliveries::revoke(self, order, reason).await {
            Ok(_) => Ok(()),
            Err(DeliverError::NotFound(_)) => Err(RevokeFailure::NotFound),
            Err(DeliverError::GrantInFlight(_)) => Err(RevokeFailure::GrantInFlight),
            Err(e @ (DeliverError::Game(_) | DeliverError::Storage(_))) => {
                Err(RevokeFailure::Unavailable(e.to_string()))
            }
        }
    }
}
