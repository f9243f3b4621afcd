//! Refunds as the stores type them: how much of a purchase the store gave back (all of it, or a
//! number of its units: Google's quantity-based partial refunds, Apple's prorated refunds), who
//! started it and why (Google `voidedSource` / `voidedReason`, Apple `revocationType` /
//! `revocationReason`), and the bookkeeping of a purchase taken back in steps.
//!
//! The figure a store reports is **cumulative**: what it has refunded of the purchase so far. We
//! revoke the difference between that figure and what we already took back, so a duplicated or
//! replayed notification, or the reconciliation reading the same refund again, revokes nothing.

use crate::delivery::RevokeReason;
use crate::ids::OrderId;

// This area's ports live in `crate::ports`; re-exported under their old path.
pub use crate::ports::{RefundReversals, ReversalOutcome};

/// How much of a purchase the store has refunded, as the store says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundShare {
    /// All of it (a full refund, a revocation, a chargeback).
    Whole,
    /// This many units in all, counting every refund of the purchase so far (Google: paid
    /// `quantity` less `refundableQuantity`; Apple: `revocationPercentage` of the `quantity`,
    /// rounded as the app configures).
    Units(u32),
}

impl RefundShare {
    /// The units refunded of a purchase of `quantity` units: never more than it has.
    pub fn units_of(self, quantity: u32) -> u32 {
        match self {
            RefundShare::Whole => quantity,
            RefundShare::Units(units) => units.min(quantity),
        }
    }
}

/// Who started a refund and why, in the store's own words (kept on the revocation and shown in
/// the order's history). Empty when the store does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefundCause {
    /// The initiator, e.g. Google `voidedSource` `user`, `developer`, `google`; Apple
    /// `revocationType` `REFUND_FULL`, `REFUND_PRORATED`, `FAMILY_REVOKE`.
    pub source: Option<String>,
    /// The reason, e.g. Google `voidedReason` `remorse` … `chargeback`; Apple `revocationReason`
    /// `other`, `app_issue`.
    pub reason: Option<String>,
}

/// A refund or revocation to carry out on one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Refunded or revoked (a chargeback, a fraud void, family sharing removed).
    pub reason: RevokeReason,
    /// How much the store has refunded so far.
    pub share: RefundShare,
    /// The store's initiator and reason.
    pub cause: RefundCause,
}

impl Revocation {
    /// A whole revocation with no store detail (an operator's, a subscription period's).
    pub fn whole(reason: RevokeReason) -> Self {
        Self {
            reason,
            share: RefundShare::Whole,
            cause: RefundCause::default(),
        }
    }
}

/// How a prorated share of a purchase becomes whole units (`apps.<id>.partial_refund_rounding`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartialRefundRounding {
    /// Fewer units back: the player keeps a unit partly refunded.
    Down,
    /// More units back: a unit partly refunded is taken.
    Up,
    /// The nearest whole unit (half a unit is taken). The default: Apple rounds its percentage
    /// to three decimals, so one unit of three refunded arrives as 33.333 % (0.99999 of a unit),
    /// which `Down` would leave granted and `Up` would turn into a second unit for 33.334 %.
    #[default]
    Nearest,
}

impl PartialRefundRounding {
    /// The units of a purchase of `quantity` units that `milli_percent` (Apple's milliunits:
    /// 100000 is 100 %) refunds, rounded this way and never more than `quantity`.
    pub fn units(self, quantity: u32, milli_percent: u32) -> u32 {
        const WHOLE: u64 = 100_000;
        let scaled = u64::from(quantity) * u64::from(milli_percent.min(WHOLE as u32));
        let units = match self {
            Self::Down => scaled / WHOLE,
            Self::Up => scaled.div_ceil(WHOLE),
            Self::Nearest => (scaled + WHOLE / 2) / WHOLE,
        };
        u32::try_from(units).unwrap_or(quantity).min(quantity)
    }
}

/// The idempotency key of one step of a purchase taken back in parts: the units before and
/// after it, so the same step retried after a crash reuses it and a later step gets its own.
pub fn partial_revoke_id(order: OrderId, from_units: u32, to_units: u32) -> String {
    format!("revoke-{order}-units-{from_units}-{to_units}")
}

/// One step of a partial revocation (the `partial_revocations` row): written before RevokeItems
/// is called, so that a step cut short by a crash is finished with its own key and quantity
/// before any later step is computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialStep {
    /// RevokeItems' idempotency key ([`partial_revoke_id`]).
    pub revoke_id: String,
    /// Units of the order revoked before this step.
    pub from_units: u32,
    /// Units revoked after it.
    pub to_units: u32,
    /// Why.
    pub reason: RevokeReason,
    /// The store's initiator and reason.
    pub cause: RefundCause,
}

impl PartialStep {
    /// Units this step takes back.
    pub fn units(&self) -> u32 {
        self.to_units.saturating_sub(self.from_units)
    }
}

/// What an order's partial revocations stand at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartialRevocations {
    /// Units taken back by finished steps.
    pub revoked_units: u32,
    /// A step written but not recorded as done (RevokeItems may or may not have run).
    pub pending: Option<PartialStep>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prorated_shares_round_as_configured() {
        // One unit of three, as Apple rounds it: 33.333 %.
        assert_eq!(PartialRefundRounding::Down.units(3, 33_333), 0);
        assert_eq!(PartialRefundRounding::Nearest.units(3, 33_333), 1);
        assert_eq!(PartialRefundRounding::Up.units(3, 33_333), 1);
        assert_eq!(PartialRefundRounding::Up.units(3, 33_334), 2);
        assert_eq!(PartialRefundRounding::Nearest.units(3, 33_334), 1);
        // Half a unit.
        assert_eq!(PartialRefundRounding::Nearest.units(1, 50_000), 1);
        assert_eq!(PartialRefundRounding::Down.units(1, 50_000), 0);
        // Never more than the purchase, whatever the store writes.
        assert_eq!(PartialRefundRounding::Up.units(5, 250_000), 5);
        assert_eq!(
            PartialRefundRounding::Nearest.units(u32::MAX, 100_000),
            u32::MAX
        );
        assert_eq!(RefundShare::Units(9).units_of(5), 5);
        assert_eq!(RefundShare::Whole.units_of(5), 5);
    }
}
