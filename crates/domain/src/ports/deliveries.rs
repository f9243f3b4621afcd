//! Orders as delivery sees them: claimed with a lease and the attempt counter as fencing token,
//! and finalised (granted, confirmed, failed, revoked) only under that token. Adapter:
//! `iap-storage`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ids::OrderId;
use crate::order::{DeliveryState, Order};
use crate::ports::{ConfirmOutcome, GameAck, PurchaseToConfirm, StorageError};

/// The grant record of one order (the `deliveries` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// Order.
    pub order_id: OrderId,
    /// Idempotency key sent to the game server.
    pub grant_id: String,
    /// Where the grant stands.
    pub state: DeliveryState,
    /// GrantItems calls made (each retry counts).
    pub grant_calls: u32,
    /// Store confirmation calls made.
    pub confirm_calls: u32,
    /// The game server's reference for the grant.
    pub game_ack_reference: Option<String>,
    /// Last error while granting or confirming.
    pub last_error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Acknowledged by the game server.
    pub granted_at: Option<DateTime<Utc>>,
    /// Confirmed at the store.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// Taken back.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An order claimed by this worker: the state was moved under a conditional update that bumped
/// the attempt counter, which fences every later write.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedOrder {
    /// The order as claimed (its `attempt` is this worker's fencing token).
    pub order: Order,
    /// Idempotency key of the grant.
    pub grant_id: String,
    /// The paying store purchase, for the grant and the store confirmation.
    pub purchase: Option<PurchaseToConfirm>,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// PAID (or DELIVERING with an expired lease): now DELIVERING for this worker, to grant.
    Grant(ClaimedOrder),
    /// DELIVERED: leased to this worker, to confirm at the store.
    Confirm(ClaimedOrder),
    /// Another worker holds a live lease on the order.
    HeldElsewhere(Order),
    /// Nothing left to do (CONFIRMED) or nothing may be done (not paid, refunded, dead ...).
    Settled(Order),
    /// No such order.
    NotFound,
}

/// How a failed attempt ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Human detail (no secrets).
    pub error: String,
    /// When the sweeper may try again.
    pub retry_at: DateTime<Utc>,
    /// Attempts are exhausted: the order becomes DEAD.
    pub dead: bool,
}

/// Orders as delivery sees them. Every write after a claim is conditional on the claim's
/// attempt number; `None` means another worker has claimed the order since (a stale worker).
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Claims an order for granting or confirming, with a lease (see [`Claim`]).
    async fn claim(&self, order: OrderId, lease: Duration) -> Result<Claim, StorageError>;

    /// Records the game server's acknowledgement: DELIVERING → DELIVERED, the delivery row
    /// GRANTED, the `order.paid` event consumed and an `order.delivered` event, in one commit.
    /// The same commit claims the store confirmation for the caller: the attempt number moves on
    /// and the lease is kept, so the returned order is a claim to confirm with (no other worker
    /// takes it before the lease runs out) and no second claim transaction is needed.
    async fn record_granted(
        &self,
        claim: &ClaimedOrder,
        ack: &GameAck,
        grant_calls: u32,
    ) -> Result<Option<Order>, StorageError>;

    /// Records a failed grant attempt: back off, or DEAD when attempts are exhausted.
    async fn record_grant_failed(
        &self,
        claim: &ClaimedOrder,
        failure: &Failure,
        grant_calls: u32,
    ) -> Result<Option<Order>, StorageError>;

    /// Records the store confirmation: DELIVERED → CONFIRMED.
    async fn record_confirmed(
        &self,
        claim: &ClaimedOrder,
        outcome: ConfirmOutcome,
    ) -> Result<Option<Order>, StorageError>;

    /// Records a failed confirmation: stays DELIVERED, retried at `failure.retry_at`.
    async fn record_confirm_failed(
        &self,
        claim: &ClaimedOrder,
        failure: &Failure,
    ) -> Result<Option<Order>, StorageError>;

    /// Claims a granted (or never granted) order for revocation: the order must not be in
    /// the middle of a grant. Returns the order and whether a grant was acknowledged.
    async fn claim_revocation(
        &self,
        order: OrderId,
        lease: Duration,
    ) -> Result<RevocationClaim, StorageError>;

    /// Records the revocation: the order REFUNDED or REVOKED, the delivery row REVOKED; the
    /// event keeps the store's cause and the units this last call took back.
    async fn record_revoked(
        &self,
        claim: &ClaimedOrder,
        refunded: bool,
        ack: Option<&GameAck>,
        detail: &RevokedDetail,
    ) -> Result<Option<Order>, StorageError>;

    /// Where the order's partial revocations stand (finished units, a step cut short).
    async fn partial_revocations(
        &self,
        order: OrderId,
    ) -> Result<crate::refunds::PartialRevocations, StorageError>;

    /// Writes a partial revocation step before RevokeItems is called, under the claim (a claim
    /// from [`DeliveryStore::claim_revocation`]: the order keeps its state). `false` when the
    /// claim was lost or another step from the same point exists.
    async fn begin_partial_revocation(
        &self,
        claim: &ClaimedOrder,
        step: &crate::refunds::PartialStep,
    ) -> Result<bool, StorageError>;

    /// Ends a revocation claim that leaves the order in its state: the step (when given) is
    /// done with the game's acknowledgement and an `order.partially_revoked` event; the lease
    /// is released. `None` when the claim was lost.
    async fn record_partial_revoked(
        &self,
        claim: &ClaimedOrder,
        step: Option<&crate::refunds::PartialStep>,
        ack: Option<&GameAck>,
    ) -> Result<Option<Order>, StorageError>;

    /// The grant record of an order.
    async fn delivery(&self, order: OrderId) -> Result<Option<DeliveryRecord>, StorageError>;

    /// Orders a sweeper should work on now: PAID, DELIVERING whose lease expired, DELIVERED
    /// not yet confirmed, all due by `next_attempt_at`; oldest first.
    async fn due_orders(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OrderId>, StorageError>;

    /// Like [`DeliveryStore::due_orders`], but takes them: their `next_attempt_at` moves `hold`
    /// ahead, under `FOR UPDATE SKIP LOCKED`, so concurrent sweepers (scheduler replicas) share
    /// the work instead of racing for the same orders. A sweeper that dies leaves them due again
    /// after `hold`.
    async fn reserve_due_orders(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        hold: Duration,
    ) -> Result<Vec<OrderId>, StorageError>;
}

/// What the event of a whole revocation keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevokedDetail {
    /// Units the last RevokeItems call took back (the rest after partial revocations).
    pub units: u32,
    /// Units taken back before by partial revocations.
    pub partially_revoked: u32,
    /// The store's initiator and reason.
    pub cause: crate::refunds::RefundCause,
}

/// What a revocation claim found.
#[derive(Debug, Clone, PartialEq)]
pub enum RevocationClaim {
    /// Claimed; `granted` tells whether the game server had acknowledged a grant (or may have:
    /// a DELIVERING order whose outcome is unknown counts as granted, RevokeItems is safe).
    Claimed {
        /// The claim.
        claim: ClaimedOrder,
        /// Items may be in the player's account.
        granted: bool,
    },
    /// A grant is in flight under another worker's lease; retry shortly.
    HeldElsewhere(Order),
    /// Already refunded or revoked, or never paid.
    Settled(Order),
    /// No such order.
    NotFound,
}
