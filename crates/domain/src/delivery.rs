//! Delivery's own vocabulary: the idempotency keys of an order's grant and revocation, and why
//! items are taken back. Its ports (the game server, the claimable store of orders, the delivery
//! trigger) are in [`crate::ports`].

use crate::ids::OrderId;

// This area's ports live in `crate::ports`; re-exported under their old path.
pub use crate::ports::{
    Claim, ClaimedOrder, DeliveryRecord, DeliveryStore, DeliveryTrigger, Failure, GameAck,
    GameError, GameServer, GrantCommand, GrantReason, RevocationClaim, RevokeCommand,
    RevokedDetail,
};

/// The idempotency key of an order's grant: derived from the order id, so it is the same on
/// every attempt, in every process, even if the delivery row were lost.
pub fn grant_id(order: OrderId) -> String {
    format!("grant-{order}")
}

/// The idempotency key of an order's revocation.
pub fn revoke_id(order: OrderId) -> String {
    format!("revoke-{order}")
}

/// Why items are taken back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// The store refunded the purchase.
    Refunded,
    /// The store revoked it (chargeback, family sharing, developer).
    Revoked,
    /// An operator revoked it.
    Operator,
}
