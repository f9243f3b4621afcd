//! The IAP domain: orders and their state machine, verified purchases, the app catalog, and the
//! use cases (create, verify, deliver, sweep) written against ports that adapters implement.
//!
//! This crate must not depend on tonic, sea-orm, redis, reqwest or any other transport or storage
//! crate; a test below checks the manifest.

/// A crash point for the crash matrix, compiled only with the `failpoints` feature. Configured
/// through `FAILPOINTS` or `fail::cfg`: `return(abort)` kills the process on the spot (no
/// unwinding, no cleanup, like `kill -9`), `return` or `return(error)` makes the step fail as a
/// database blip would, `panic` unwinds. Without the feature it is nothing at all.
#[macro_export]
#[doc(hidden)]
macro_rules! crash_point {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        {
            $crate::fail::fail_point!($name, |action: Option<String>| {
                if action.as_deref() == Some("abort") {
                    std::process::abort();
                }
                Err($crate::ports::StorageError::Unavailable(format!(
                    "injected failure at {}",
                    $name
                ))
                .into())
            });
        }
    };
}

#[cfg(feature = "failpoints")]
#[doc(hidden)]
pub use fail;

pub mod admin;
pub mod catalog;
pub mod delivery;
pub mod ids;
pub mod notifications;
pub mod order;
pub mod ports;
pub mod purchase;
pub mod reconciliation;
pub mod refunds;
pub mod store_calls;
pub mod store_ids;
pub mod subscriptions;
pub mod unclaimed;
pub mod usecases;

pub use catalog::{AppPolicy, Catalog, ProductPolicy, SandboxPolicy};
pub use ids::{AppId, IdError, OrderId, ProductId, UserId};
pub use order::{
    BindingReason, DeliveryState, Environment, Money, NewOrder, Order, OrderState, Platform,
    ProductKind, RejectReason,
};

#[cfg(test)]
mod architecture {
    /// The domain stays free of transport and storage crates, so its rules can be read and
    /// tested without a network or a database.
    #[test]
    fn domain_depends_on_no_transport_or_storage_crate() {
        let manifest = include_str!("../Cargo.toml");
        let dependencies = manifest.split("[dependencies]").nth(1).unwrap_or_default();
        let dependencies = dependencies.split("\n[").next().unwrap_or_default();
        for forbidden in [
            "tonic", "prost", "sea-orm", "sqlx", "redis", "reqwest", "axum", "hyper", "iap-",
        ] {
            assert!(
                !dependencies
                    .lines()
                    .any(|l| l.trim_start().starts_with(forbidden)),
                "iap-domain must not depend on {forbidden}"
            );
        }
    }
}
