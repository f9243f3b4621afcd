//! Orders and the state machine every transition must respect.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AppId, OrderId, ProductId, UserId};

/// Declares a fieldless enum with a stable text form, used in the database and in logs.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable text form.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::order::UnknownValue;
            fn from_str(s: &str) -> Result<Self, $crate::order::UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::order::UnknownValue { kind: stringify!($name), value: s.to_owned() }),
                }
            }
        }
    };
}

pub(crate) use text_enum;

/// A stored text value that no enum variant matches (a newer schema, or corruption).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} value {value:?}")]
pub struct UnknownValue {
    /// Enum name.
    pub kind: &'static str,
    /// The text found.
    pub value: String,
}

text_enum!(
    /// The store a purchase was made in.
    Platform {
        /// Apple App Store.
        Apple => "apple",
        /// Google Play.
        Google => "google",
        /// Huawei AppGallery IAP.
        Huawei => "huawei",
    }
);

text_enum!(
    /// Life cycle of an order; see [`OrderState::can_become`].
    OrderState {
        /// Created by the game, not yet paid.
        Created => "CREATED",
        /// Paid at the store and recorded; delivery queued.
        Paid => "PAID",
        /// A worker holds the order and is granting it.
        Delivering => "DELIVERING",
        /// The game server acknowledged the grant.
        Delivered => "DELIVERED",
        /// Confirmed at the store (or nothing to confirm).
        Confirmed => "CONFIRMED",
        /// The purchase was definitively invalid.
        Rejected => "REJECTED",
        /// Refunded by the store.
        Refunded => "REFUNDED",
        /// Revoked by the store or an operator.
        Revoked => "REVOKED",
        /// Delivery attempts exhausted.
        Dead => "DEAD",
    }
);

impl OrderState {
    /// Whether `self -> next` is a legal transition. Delivered orders never go back to an
    /// undelivered state, and refunded or revoked orders stay so (a reversed refund is granted
    /// through a new order, so each order keeps one stable grant id). DEAD goes back to PAID only
    /// by an operator's redelivery, with the same grant id.
    pub fn can_become(self, next: OrderState) -> bool {
        use OrderState::*;
        matches!(
            (self, next),
            (Created, Paid | Rejected)
                | (Paid, Delivering | Refunded | Revoked | Dead)
                | (
                    Delivering,
                    Delivering | Delivered | Refunded | Revoked | Dead
                )
                | (Delivered, Confirmed | Refunded | Revoked)
                // A compensated order the store purchase arrives for afterwards: granted, but
                // the store purchase is not confirmed (consumed, acknowledged) yet.
                | (Confirmed, Delivered | Refunded | Revoked)
                | (Dead, Paid | Refunded | Revoked)
        )
    }

    /// The store has been paid for this order (whatever became of the grant).
    pub fn is_paid(self) -> bool {
        use OrderState::*;
        matches!(self, Paid | Delivering | Delivered | Confirmed | Dead)
    }

    /// Paid and the grant is not yet acknowledged: what the lost-order sweeper looks for.
    pub fn awaits_delivery(self) -> bool {
        matches!(self, OrderState::Paid | OrderState::Delivering)
    }

    /// The game server acknowledged the grant.
    pub fn is_delivered(self) -> bool {
        matches!(self, OrderState::Delivered | OrderState::Confirmed)
    }
}

text_enum!(
    /// The kind of product; decides how the store is confirmed after delivery.
    ProductKind {
        /// Used up in the game; bought again and again (Google consume, Huawei confirm).
        Consumable => "consumable",
        /// Bought once, owned forever (Google acknowledge, Huawei confirm).
        NonConsumable => "non_consumable",
        /// Auto-renewable subscription.
        AutoRenewable => "auto_renewable",
        /// Subscription without auto-renewal.
        NonRenewing => "non_renewing",
    }
);

impl ProductKind {
    /// Subscriptions of either kind.
    pub fn is_subscription(self) -> bool {
        matches!(self, ProductKind::AutoRenewable | ProductKind::NonRenewing)
    }
}

text_enum!(
    /// Where the store says the purchase was made.
    Environment {
        /// Real money.
        Production => "production",
        /// Sandbox, tester or test purchase.
        Sandbox => "sandbox",
    }
);

text_enum!(
    /// How a verified purchase was tied to an order.
    BindingReason {
        /// The purchase carried our order id.
        PurchaseCarriedOrderId => "purchase_carried_order_id",
        /// The caller passed the order id.
        CallerOrderId => "caller_order_id",
        /// The oldest compatible unpaid order was used.
        MatchedUnpaidOrder => "matched_unpaid_order",
        /// An order was created at verification time.
        CreatedAtVerification => "created_at_verification",
        /// Created by reconciliation with the store.
        StoreReconciliation => "store_reconciliation",
        /// Created from a store notification.
        StoreNotification => "store_notification",
        /// Created by an operator's compensation grant.
        ManualCompensation => "manual_compensation",
        /// A subscription renewal period.
        SubscriptionRenewal => "subscription_renewal",
        /// The bound order was already paid by another purchase.
        BoundOrderAlreadyPaid => "bound_order_already_paid",
        /// The bound order asked for another quantity than the store was paid for: it was
        /// paid with the store's quantity instead.
        PaidQuantityDiffers => "paid_quantity_differs",
        /// Support had already compensated (补单) this order, or this user's purchase of the
        /// product: the purchase is recorded against that grant, with no second grant.
        CompensationMatched => "compensation_matched",
        /// The store was paid for more than support's compensation granted: this order grants
        /// the difference.
        CompensationTopUp => "compensation_top_up",
        /// A paid purchase kept unclaimed (no order or user could be found for it), granted to
        /// a user by an operator's claim.
        ClaimedByOperator => "claimed_by_operator",
        /// The store reversed the refund of the purchase: a new order grants it again (the
        /// refunded order keeps its grant id and stays refunded).
        RefundReversed => "refund_reversed",
    }
);

text_enum!(
    /// Why a purchase was refused. The text form is the machine-readable reason clients see.
    RejectReason {
        /// The request or payload is malformed.
        Malformed => "MALFORMED",
        /// A signature or certificate chain did not verify.
        SignatureInvalid => "SIGNATURE_INVALID",
        /// Another app's purchase.
        BundleMismatch => "BUNDLE_MISMATCH",
        /// The environment is not the one the app accepts.
        EnvironmentMismatch => "ENVIRONMENT_MISMATCH",
        /// Sandbox purchase from a user or app that is not allow-listed.
        SandboxNotAllowed => "SANDBOX_NOT_ALLOWED",
        /// Already redeemed by another user.
        ReplayedForOtherUser => "REPLAYED_FOR_OTHER_USER",
        /// Not paid (cancelled, failed, unknown state).
        NotPaid => "NOT_PAID",
        /// Payment still pending.
        Pending => "PENDING",
        /// Refunded or revoked.
        Refunded => "REFUNDED",
        /// Different product than the order's.
        ProductMismatch => "PRODUCT_MISMATCH",
        /// Different price or currency than the order expected.
        PriceMismatch => "PRICE_MISMATCH",
        /// The store does not know the purchase.
        NotFoundAtStore => "NOT_FOUND_AT_STORE",
        /// The order belongs to another user or app.
        OrderMismatch => "ORDER_MISMATCH",
        /// The subscription had expired.
        Expired => "EXPIRED",
        /// Product not in the app's catalog.
        UnknownProduct => "UNKNOWN_PRODUCT",
    }
);

text_enum!(
    /// Where the grant of an order stands (the `deliveries` row).
    DeliveryState {
        /// Nothing claimed yet.
        Pending => "PENDING",
        /// A worker claimed the order and calls the game server.
        Granting => "GRANTING",
        /// The game server acknowledged; the store is not confirmed yet.
        Granted => "GRANTED",
        /// Granted and confirmed at the store (or nothing to confirm).
        Confirmed => "CONFIRMED",
        /// Attempts exhausted; an operator must redeliver.
        Dead => "DEAD",
        /// The items were taken back.
        Revoked => "REVOKED",
    }
);

impl RejectReason {
    /// Whether a client may finish the store transaction after this rejection. Finishing tells
    /// the store the purchase is done: the store stops offering it again, so a paid purchase
    /// finished without being recorded is lost. The rule: finish only when the purchase is
    /// recorded (and granted to someone), or the store itself says it is not paid, refunded,
    /// not authentic or not this app's. Everything else keeps the transaction open, so a later
    /// retry (a fixed request, a catalog that has the product, a store that knows the purchase)
    /// still grants it. The table, with the why of each row, is in docs/client-integration.md.
    pub fn finishes_transaction(self) -> bool {
        use RejectReason::*;
        match self {
            // Recorded, and granted to the user it belongs to.
            ReplayedForOtherUser | OrderMismatch => true,
            // The store's own word: not paid, taken back, not authentic, another app's, test
            // money of a user who may not spend it here, a period that is over.
            NotPaid | Refunded | SignatureInvalid | BundleMismatch | EnvironmentMismatch
            | SandboxNotAllowed | Expired => true,
            // Nothing the store said rules the purchase out: the request did not fit (another
            // product, an unreadable proof), the catalog lacks the product yet, the payment or
            // the store's record of it is not complete, the price differs from the order's.
            Malformed | ProductMismatch | UnknownProduct | Pending | NotFoundAtStore
            | PriceMismatch => false,
        }
    }
}

/// A price in millionths of the currency unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// ISO 4217 code.
    pub currency: String,
    /// Amount × 1,000,000.
    pub amount_micros: i64,
}

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Our id.
    pub id: OrderId,
    /// Owning app.
    pub app_id: AppId,
    /// Buyer.
    pub user_id: UserId,
    /// Product bought.
    pub product_id: ProductId,
    /// Store.
    pub platform: Platform,
    /// Units.
    pub quantity: u32,
    /// Current state.
    pub state: OrderState,
    /// Kind of the product (from the catalog).
    pub product_kind: ProductKind,
    /// Environment of the paying purchase, once paid.
    pub environment: Option<Environment>,
    /// Price the game expected.
    pub expected_price: Option<Money>,
    /// The store's id of the paying charge.
    pub store_transaction_id: Option<String>,
    /// How the paying purchase was bound.
    pub binding_reason: Option<BindingReason>,
    /// Delivery attempts so far; the fencing token of the current attempt.
    pub attempt: i32,
    /// `attempt` when an operator last redelivered the order from DEAD: the current series of
    /// attempts counts from here (the fencing token itself never goes back).
    #[serde(default)]
    pub attempts_before_redelivery: i32,
    /// Why rejected.
    pub reject_reason: Option<RejectReason>,
    /// Last delivery or confirmation error.
    pub last_error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Paid.
    pub paid_at: Option<DateTime<Utc>>,
    /// Delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Confirmed at the store.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// When a sweeper should next look at the order.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// A worker's claim on the order lasts until then.
    pub lease_until: Option<DateTime<Utc>>,
    /// Labels from the game.
    pub metadata: BTreeMap<String, String>,
    /// Made by an operator's compensation.
    pub manual: bool,
    /// Key that made CreateOrder idempotent, if the caller sent one.
    pub idempotency_key: Option<String>,
}

/// What is needed to insert a new order.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    /// Id chosen by the caller of the use case.
    pub id: OrderId,
    /// Owning app.
    pub app_id: AppId,
    /// Buyer.
    pub user_id: UserId,
    /// Product.
    pub product_id: ProductId,
    /// Store.
    pub platform: Platform,
    /// Units.
    pub quantity: u32,
    /// Kind from the catalog.
    pub product_kind: ProductKind,
    /// Price the game expected.
    pub expected_price: Option<Money>,
    /// Labels.
    pub metadata: BTreeMap<String, String>,
    /// CreateOrder idempotency key.
    pub idempotency_key: Option<String>,
    /// Operator-made.
    pub manual: bool,
}

impl NewOrder {
    /// The order as it is right after insertion, in state CREATED.
    pub fn into_order(self, now: DateTime<Utc>) -> Order {
        Order {
            id: self.id,
            app_id: self.app_id,
            user_id: self.user_id,
            product_id: self.product_id,
            platform: self.platform,
            quantity: self.quantity,
            state: OrderState::Created,
            product_kind: self.product_kind,
            environment: None,
            expected_price: self.expected_price,
            store_transaction_id: None,
            binding_reason: None,
            attempt: 0,
            attempts_before_redelivery: 0,
            reject_reason: None,
            last_error: None,
            created_at: now,
            updated_at: now,
            paid_at: None,
            delivered_at: None,
            confirmed_at: None,
            next_attempt_at: None,
            lease_until: None,
            metadata: self.metadata,
            manual: self.manual,
            idempotency_key: self.idempotency_key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_forms_round_trip() {
        for s in OrderState::ALL {
            assert_eq!(s.as_str().parse::<OrderState>().unwrap(), *s);
        }
        for r in RejectReason::ALL {
            assert_eq!(r.as_str().parse::<RejectReason>().unwrap(), *r);
        }
        assert!("paid".parse::<OrderState>().is_err());
    }

    #[test]
    fn happy_path_is_legal() {
        use OrderState::*;
        for (a, b) in [
            (Created, Paid),
            (Paid, Delivering),
            (Delivering, Delivered),
            (Delivered, Confirmed),
        ] {
            assert!(a.can_become(b), "{a} -> {b}");
        }
    }

    fn any_state() -> impl Strategy<Value = OrderState> {
        proptest::sample::select(OrderState::ALL.to_vec())
    }

    proptest! {
        // Whatever path an order takes, once the game acknowledged a grant the order never
        // returns to a state from which it would be granted again.
        #[test]
        fn delivered_never_regresses_to_undelivered(path in proptest::collection::vec(any_state(), 1..16)) {
            let mut state = OrderState::Created;
            let mut delivered = false;
            for next in path {
                if !state.can_become(next) { continue; }
                prop_assert!(!(delivered && next.awaits_delivery()), "{} -> {} after delivery", state, next);
                delivered |= next.is_delivered();
                state = next;
            }
        }

        #[test]
        fn created_is_never_reentered(a in any_state()) {
            prop_assert!(!a.can_become(OrderState::Created));
        }
    }
}
