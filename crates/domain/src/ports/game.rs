//! The studio's game server: grants and revocations keyed by idempotency ids, and subscription
//! entitlements keyed by version. Adapter: the `GameServerService` client in `iap-delivery`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::delivery::RevokeReason;
use crate::order::Order;

/// Why items are granted (mirrors `GrantReason` of the game server contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantReason {
    /// A verified purchase.
    Purchase,
    /// A subscription renewal period.
    SubscriptionRenewal,
    /// An operator's compensation (补单).
    ManualCompensation,
    /// The store reversed a refund; the items come back.
    RefundReversed,
}

/// One GrantItems call.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantCommand {
    /// Idempotency key.
    pub grant_id: String,
    /// The order granted.
    pub order: Order,
    /// Sandbox or test purchase.
    pub sandbox: bool,
    /// Why.
    pub reason: GrantReason,
    /// For subscriptions: end of the paid period.
    pub entitlement_expires_at: Option<DateTime<Utc>>,
}

/// One RevokeItems call.
#[derive(Debug, Clone, PartialEq)]
pub struct RevokeCommand {
    /// Idempotency key of the revocation.
    pub revoke_id: String,
    /// The grant reversed.
    pub grant_id: String,
    /// The order.
    pub order: Order,
    /// Why.
    pub reason: RevokeReason,
    /// Units this call takes back: what the store refunded beyond what earlier calls took
    /// (the whole order when nothing was taken before).
    pub quantity: u32,
    /// Units of the grant the player keeps after this call (0 after a whole revocation).
    pub remaining: u32,
}

/// The game server's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameAck {
    /// The game's reference (ledger entry).
    pub reference: String,
    /// The key had been applied before (a retry after a lost reply).
    pub duplicate: bool,
}

/// The game server did not acknowledge. By contract every failure is retried with backoff:
/// the outcome of a call that timed out is unknown, and the key makes the retry safe.
#[derive(Debug, Clone, thiserror::Error)]
#[error("game server: {0}")]
pub struct GameError(pub String);

/// The studio's game server (`GameServerService`).
#[async_trait]
pub trait GameServer: Send + Sync {
    /// Grants the items of an order; idempotent per `grant_id`.
    async fn grant(&self, command: &GrantCommand, deadline: Duration)
    -> Result<GameAck, GameError>;

    /// Takes the items back; idempotent per `revoke_id`.
    async fn revoke(
        &self,
        command: &RevokeCommand,
        deadline: Duration,
    ) -> Result<GameAck, GameError>;
    /// Tells the game where a subscription's entitlement stands; idempotent per (subscription
    /// id, version), the game keeping the highest version. `Ok(false)`: the game server does
    /// not take subscription updates (it answered UNIMPLEMENTED) and reads entitlements from
    /// the grants alone.
    async fn update_subscription(
        &self,
        update: &crate::subscriptions::SubscriptionUpdate,
        deadline: Duration,
    ) -> Result<bool, GameError>;
}
