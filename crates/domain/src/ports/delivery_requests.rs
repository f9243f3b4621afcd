//! Asking delivery to act now: the verifier's fast path after a payment, refunds taken back, an
//! operator's revocation. In process in `iapd`, over gRPC to `iap-delivery` otherwise.

use async_trait::async_trait;

use crate::delivery::RevokeReason;
use crate::ids::OrderId;

/// Starts delivering a just-paid order (the verifier's fast path): in process in `iapd`, over
/// gRPC to `iap-delivery` otherwise. Losing this call loses nothing: the order is PAID with an
/// outbox event, and the sweeper delivers it.
#[async_trait]
pub trait DeliveryTrigger: Send + Sync {
    /// Delivers the order as far as it goes now.
    async fn deliver_now(&self, order: OrderId) -> Result<(), String>;

    /// Takes a refunded or revoked order's items back, once (`revoke-{order_id}`).
    async fn revoke_now(&self, order: OrderId, reason: RevokeReason) -> Result<(), String>;

    /// Takes back what a store refund covers: the whole order, or (a partial refund) the units
    /// the store refunded beyond those already taken back; the store's cause is kept. Returns
    /// the units taken back now (0 when nothing was new).
    async fn revoke_refund_now(
        &self,
        order: OrderId,
        revocation: &crate::refunds::Revocation,
    ) -> Result<u32, String>;
}

/// Why a revocation did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RevokeFailure {
    /// No such order.
    #[error("order not found")]
    NotFound,
    /// A grant is in flight; retry shortly.
    #[error("a grant is in flight; retry shortly")]
    GrantInFlight,
    /// The game server or the delivery service did not answer; retry.
    #[error("{0}")]
    Unavailable(String),
}

/// Takes back the items of an order through the game server's `RevokeItems` (stable revoke id)
/// and marks the order REVOKED or REFUNDED.
#[async_trait]
pub trait OrderRevoker: Send + Sync {
    /// Revokes one order; idempotent.
    async fn revoke(&self, order: OrderId, reason: RevokeReason) -> Result<(), RevokeFailure>;
}
