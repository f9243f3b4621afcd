//! Use cases: one module per operation, each with its command, outcome and error type.

pub mod admin;
pub mod create_order;
pub mod deliver;
pub mod handle_notifications;
pub mod reconcile;
pub mod refresh_subscription;
pub mod sync_entitlements;
pub mod unclaimed;
pub mod verify_purchase;
