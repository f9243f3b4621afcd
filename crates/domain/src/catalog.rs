//! What the studio configured per app: products, purchase limits, sandbox and trial policy.
//! Built from settings by the runtime; the domain only reads it.

use std::collections::{HashMap, HashSet};

use crate::ids::{AppId, ProductId, UserId};
use crate::order::ProductKind;

/// One product of an app's catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductPolicy {
    /// Kind of product.
    pub kind: ProductKind,
    /// Most units one order may buy (consumables bought in bulk); at least 1.
    pub max_quantity: u32,
    /// Subscription group (Apple `subscriptionGroupIdentifier`, Google base plan family), used to
    /// detect repeated free trials across products of one group.
    pub subscription_group: Option<String>,
}

/// Which sandbox or test purchases an app accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxPolicy {
    /// Every user may use sandbox purchases (development and staging builds).
    pub allow_all: bool,
    /// Users who may (App Review and QA accounts in production).
    pub allowed_users: HashSet<UserId>,
}

impl SandboxPolicy {
    /// Whether `user` may redeem a sandbox or test purchase.
    pub fn allows(&self, user: &UserId) -> bool {
        self.allow_all || self.allowed_users.contains(user)
    }
}

/// Everything configured for one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPolicy {
    /// The app's id.
    pub app_id: AppId,
    /// Catalog, by store product id.
    pub products: HashMap<ProductId, ProductPolicy>,
    /// Sandbox policy.
    pub sandbox: SandboxPolicy,
    /// Flag a user's or store account's second free trial in the reply and metrics. The
    /// purchase is still granted: the store charges (or will charge) for it, so refusing would
    /// lose a paid order; the flag lets the game decide what to withhold.
    pub flag_repeat_trials: bool,
    /// Most unpaid orders one user may have open at once (0 = unlimited).
    pub max_open_orders_per_user: u32,
    /// How far back a purchase that names no order looks for support's compensation of the
    /// same user and product to record itself against (0 = never matched that way).
    pub compensation_match_window: std::time::Duration,
}

impl AppPolicy {
    /// The catalog entry of a product.
    pub fn product(&self, id: &ProductId) -> Option<&ProductPolicy> {
        self.products.get(id)
    }
}

/// Every configured app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    apps: HashMap<AppId, AppPolicy>,
}

impl Catalog {
    /// Builds a catalog from app policies.
    pub fn new(apps: impl IntoIterator<Item = AppPolicy>) -> Self {
        Self {
            apps: apps.into_iter().map(|a| (a.app_id.clone(), a)).collect(),
        }
    }

    /// One app's policy.
    pub fn app(&self, id: &AppId) -> Option<&AppPolicy> {
        self.apps.get(id)
    }

    /// All apps, in no particular order.
    pub fn apps(&self) -> impl Iterator<Item = &AppPolicy> {
        self.apps.values()
    }
}
