//! Subscriptions: one row per store subscription (Apple original transaction, Google purchase
//! token, Huawei subscription id) holding the entitlement the store currently grants. Each paid
//! period is an order of its own, keyed by the period's store transaction, so a renewal is granted
//! once however often it is reported. The row's `version` grows with every change of access; the
//! game server is told each version at least once (`UpdateSubscription`, keyed by version).
//!
//! The store is the authority: notifications and timers only say *when* to look. A refresh asks
//! the store for the subscription's current state and applies it, so notifications that arrive
//! twice, late or out of order change nothing a fresh look would not.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ids::{AppId, OrderId, ProductId, UserId};
use crate::order::{Environment, Platform, text_enum};
use crate::purchase::{StoreReceipt, SubscriptionStatus, VerifiedPurchase};

// This area's ports live in `crate::ports`; re-exported under their old path.
pub use crate::ports::SubscriptionStore;

text_enum!(
    /// Where a subscription's entitlement stands.
    SubscriptionState {
        /// Paid period running (renewing or cancelled but not yet lapsed).
        Active => "active",
        /// Renewal failed; the store keeps access open until the grace period ends.
        InGrace => "grace",
        /// Renewal failed; access suspended while the store retries billing (Apple).
        BillingRetry => "billing_retry",
        /// Renewal failed; access suspended (Google account hold, Huawei retry).
        OnHold => "on_hold",
        /// Paused by the user; access suspended until it resumes.
        Paused => "paused",
        /// Lapsed.
        Expired => "expired",
        /// Refunded or revoked by the store.
        Revoked => "revoked",
        /// Replaced by another subscription (Google upgrade, downgrade or re-signup with a
        /// linked purchase token); the newer one carries the entitlement.
        Replaced => "replaced",
    }
);

impl SubscriptionState {
    /// The player may use the subscription now.
    pub fn has_access(self) -> bool {
        matches!(self, SubscriptionState::Active | SubscriptionState::InGrace)
    }

    /// Nothing the store does can change it any more (an expired Apple subscription can still
    /// be resubscribed under the same original transaction, so it is not final).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            SubscriptionState::Revoked | SubscriptionState::Replaced
        )
    }
}

impl From<SubscriptionStatus> for SubscriptionState {
    fn from(status: SubscriptionStatus) -> Self {
        match status {
            SubscriptionStatus::Active => SubscriptionState::Active,
            SubscriptionStatus::InGracePeriod => SubscriptionState::InGrace,
            SubscriptionStatus::BillingRetry => SubscriptionState::BillingRetry,
            SubscriptionStatus::OnHold => SubscriptionState::OnHold,
            SubscriptionStatus::Paused => SubscriptionState::Paused,
            SubscriptionStatus::Expired => SubscriptionState::Expired,
            SubscriptionStatus::Revoked => SubscriptionState::Revoked,
        }
    }
}

/// The key of a subscription at its store: Apple `originalTransactionId`, Google purchase token,
/// Huawei `subscriptionId`.
pub fn subscription_key(purchase: &VerifiedPurchase) -> String {
    match purchase.platform {
        Platform::Google => purchase
            .purchase_token
            .clone()
            .unwrap_or_else(|| purchase.store_transaction_id.clone()),
        Platform::Apple | Platform::Huawei => purchase
            .original_transaction_id
            .clone()
            .unwrap_or_else(|| purchase.store_transaction_id.clone()),
    }
}

/// What is needed to ask a store about one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRef {
    /// App.
    pub app_id: AppId,
    /// Store.
    pub platform: Platform,
    /// The store's key (see [`subscription_key`]).
    pub key: String,
    /// Product, when known (Google's subscription notifications do not name it; the store's
    /// answer does).
    pub product_id: Option<ProductId>,
    /// Google and Huawei purchase token.
    pub purchase_token: Option<String>,
    /// Environment, when known (Apple's API has one host per environment).
    pub environment: Option<Environment>,
    /// The store's newest receipt we hold (Apple `latest_receipt`): how a deployment without
    /// App Store Server API credentials asks Apple (verifyReceipt) about renewals.
    pub receipt: Option<StoreReceipt>,
}

/// What a store says about a subscription now.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionSnapshot {
    /// The latest period's charge, verified like a client's purchase (its store transaction id
    /// is the key of the period's order).
    pub latest: VerifiedPurchase,
    /// The store's state.
    pub state: SubscriptionState,
    /// End of the paid period.
    pub expires_at: Option<DateTime<Utc>>,
    /// End of the grace period, while in grace.
    pub grace_until: Option<DateTime<Utc>>,
    /// Renews at the end of the period.
    pub auto_renew: Option<bool>,
    /// Product the next period renews to (a scheduled downgrade), when the store says.
    pub auto_renew_product_id: Option<String>,
    /// A price change and where the user stands on it (Apple `priceIncreaseStatus`, Google
    /// `priceChangeState`), recorded for support.
    pub price_change_state: Option<String>,
}

/// A subscription as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// Our id.
    pub id: String,
    /// App.
    pub app_id: AppId,
    /// Owner: the user who redeemed its first purchase.
    pub user_id: UserId,
    /// Store.
    pub platform: Platform,
    /// Current product (changes on an Apple upgrade).
    pub product_id: ProductId,
    /// Store key.
    pub key: String,
    /// Google and Huawei purchase token.
    pub purchase_token: Option<String>,
    /// The subscription this one replaced (Google `linkedPurchaseToken`).
    pub linked_purchase_token: Option<String>,
    /// The subscription that replaced this one.
    pub replaced_by: Option<String>,
    /// Order of the first period.
    pub original_order_id: OrderId,
    /// Order of the latest period granted.
    pub latest_order_id: OrderId,
    /// Store transaction of the latest period.
    pub latest_store_transaction_id: String,
    /// Entitlement state.
    pub state: SubscriptionState,
    /// Production or sandbox.
    pub environment: Environment,
    /// End of the paid period.
    pub expires_at: Option<DateTime<Utc>>,
    /// End of the grace period.
    pub grace_until: Option<DateTime<Utc>>,
    /// Renews at the end of the period.
    pub auto_renew: bool,
    /// Product of the next period, when it differs.
    pub auto_renew_product_id: Option<String>,
    /// Price change state.
    pub price_change_state: Option<String>,
    /// The store's newest receipt (Apple `latest_receipt`, legacy receipts only).
    pub latest_receipt: Option<StoreReceipt>,
    /// Grows with every change the game must hear about.
    pub version: i64,
    /// The last version the game server acknowledged.
    pub synced_version: i64,
    /// When a job should next ask the store.
    pub next_check_at: Option<DateTime<Utc>>,
    /// Last refresh.
    pub checked_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Subscription {
    /// Until when the player may use it: the paid period, or the grace period's end while in
    /// grace; nothing while suspended, lapsed, revoked or replaced.
    pub fn access_until(&self) -> Option<DateTime<Utc>> {
        access_until(self.state, self.expires_at, self.grace_until)
    }

    /// What to ask the store about it.
    pub fn reference(&self) -> SubscriptionRef {
        SubscriptionRef {
            app_id: self.app_id.clone(),
            platform: self.platform,
            key: self.key.clone(),
            product_id: Some(self.product_id.clone()),
            purchase_token: self.purchase_token.clone(),
            environment: Some(self.environment),
            receipt: self.latest_receipt.clone(),
        }
    }
}

/// Until when a subscription in `state` gives access.
pub fn access_until(
    state: SubscriptionState,
    expires_at: Option<DateTime<Utc>>,
    grace_until: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match state {
        SubscriptionState::Active => expires_at,
        SubscriptionState::InGrace => grace_until.max(expires_at),
        _ => None,
    }
}

/// The first period of a subscription, recorded with its payment.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSubscription {
    /// Store key.
    pub key: String,
    /// State at purchase.
    pub state: SubscriptionState,
    /// When a job should first ask the store (shortly before the period ends).
    pub next_check_at: Option<DateTime<Utc>>,
}

/// A refresh's result, written under the version read (optimistic concurrency).
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionChange {
    /// New state.
    pub state: SubscriptionState,
    /// Current product.
    pub product_id: ProductId,
    /// End of the paid period.
    pub expires_at: Option<DateTime<Utc>>,
    /// End of the grace period.
    pub grace_until: Option<DateTime<Utc>>,
    /// Renews.
    pub auto_renew: bool,
    /// Product of the next period.
    pub auto_renew_product_id: Option<String>,
    /// Price change state.
    pub price_change_state: Option<String>,
    /// Latest period granted, when it moved.
    pub latest_period: Option<(OrderId, String)>,
    /// The subscription that replaced this one.
    pub replaced_by: Option<String>,
    /// A newer receipt the store returned (kept in place of the stored one).
    pub latest_receipt: Option<StoreReceipt>,
    /// Next look at the store.
    pub next_check_at: Option<DateTime<Utc>>,
    /// The game must hear about it (access or product changed): the version grows.
    pub bump_version: bool,
}

/// One `UpdateSubscription` call: the entitlement as of `version`.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionUpdate {
    /// The subscription.
    pub subscription: Subscription,
    /// Until when the player has access (`None`: no access now).
    pub access_until: Option<DateTime<Utc>>,
}

/// How long before a period ends the store is asked whether it renewed. Stores renew ahead of
/// the end (Apple up to a day), so by then the renewal is usually there to be granted.
pub const CHECK_BEFORE_EXPIRY: Duration = Duration::from_secs(10 * 60);

/// The shortest wait between two looks at the same subscription.
pub const MIN_CHECK_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// How often a suspended subscription (billing retry, hold, pause) is looked at when no
/// notification says it changed.
pub const SUSPENDED_CHECK_INTERVAL: Duration = Duration::from_secs(6 * 3600);

/// When a job should next ask the store about a subscription in `state`: shortly before the
/// period (or the grace period) ends, periodically while suspended, never once it is over.
pub fn next_check(
    state: SubscriptionState,
    expires_at: Option<DateTime<Utc>>,
    grace_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let after = |d: Duration| now + chrono::Duration::from_std(d).unwrap_or_default();
    let earliest = after(MIN_CHECK_INTERVAL);
    let before_end = |end: DateTime<Utc>| {
        (end - chrono::Duration::from_std(CHECK_BEFORE_EXPIRY).unwrap_or_default()).max(earliest)
    };
    match state {
        SubscriptionState::Active => Some(expires_at.map_or(earliest, before_end)),
        SubscriptionState::InGrace => Some(grace_until.or(expires_at).map_or(earliest, before_end)),
        SubscriptionState::BillingRetry | SubscriptionState::OnHold | SubscriptionState::Paused => {
            Some(after(SUSPENDED_CHECK_INTERVAL))
        }
        SubscriptionState::Expired | SubscriptionState::Revoked | SubscriptionState::Replaced => {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_come_before_the_period_ends_and_stop_once_it_is_over() {
        let now = Utc::now();
        let in_a_month = now + chrono::Duration::days(30);
        let at = |state, expires, grace| next_check(state, expires, grace, now);
        assert_eq!(
            at(SubscriptionState::Active, Some(in_a_month), None),
            Some(in_a_month - chrono::Duration::minutes(10))
        );
        // An overdue renewal is asked about again soon, not in a tight loop.
        assert_eq!(
            at(SubscriptionState::Active, Some(now), None),
            Some(now + chrono::Duration::minutes(5))
        );
        let grace_end = now + chrono::Duration::days(3);
        assert_eq!(
            at(SubscriptionState::InGrace, Some(now), Some(grace_end)),
            Some(grace_end - chrono::Duration::minutes(10))
        );
        assert_eq!(
            at(SubscriptionState::OnHold, None, None),
            Some(now + chrono::Duration::hours(6))
        );
        for over in [
            SubscriptionState::Expired,
            SubscriptionState::Revoked,
            SubscriptionState::Replaced,
        ] {
            assert_eq!(at(over, Some(in_a_month), None), None);
        }
    }

    #[test]
    fn access_follows_the_state_and_grace_extends_it() {
        let now = Utc::now();
        let mut s = Subscription {
            id: "s".into(),
            app_id: AppId::parse("game").unwrap(),
            user_id: UserId::parse("u").unwrap(),
            platform: Platform::Google,
            product_id: ProductId::parse("vip").unwrap(),
            key: "token".into(),
            purchase_token: None,
            linked_purchase_token: None,
            replaced_by: None,
            original_order_id: OrderId::new(),
            latest_order_id: OrderId::new(),
            latest_store_transaction_id: "GPA.1".into(),
            state: SubscriptionState::Active,
            environment: Environment::Sandbox,
            expires_at: Some(now),
            grace_until: Some(now + chrono::Duration::days(3)),
            auto_renew: true,
            auto_renew_product_id: None,
            price_change_state: None,
            latest_receipt: None,
            version: 1,
            synced_version: 0,
            next_check_at: None,
            checked_at: None,
            updated_at: now,
        };
        assert_eq!(s.access_until(), Some(now));
        s.state = SubscriptionState::InGrace;
        assert_eq!(s.access_until(), Some(now + chrono::Duration::days(3)));
        for suspended in [
            SubscriptionState::BillingRetry,
            SubscriptionState::OnHold,
            SubscriptionState::Paused,
            SubscriptionState::Expired,
            SubscriptionState::Revoked,
            SubscriptionState::Replaced,
        ] {
            s.state = suspended;
            assert_eq!(s.access_until(), None);
            assert!(!suspended.has_access());
        }
    }
}
