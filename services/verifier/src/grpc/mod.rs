//! gRPC handlers: wire → use case → wire. No business rules here.

mod admin;
mod order;
mod verification;

pub(crate) use admin::admin_service;
pub(crate) use order::order_service;
pub(crate) use verification::verification_service;
