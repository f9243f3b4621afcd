//! gRPC handlers: wire → use case → wire. No business rules here.

mod admin;
mod order;
mod verification;

pub(crate) use admin::admin_service;
pub(crate) use order::order_service;
pub(crate) use verification::verification_service;
#[cfg(feature = "fuzzing")]
pub(crate) use {order::create_order_command, verification::verify_purchase_command};
