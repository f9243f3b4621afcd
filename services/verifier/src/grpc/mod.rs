//! gRPC handlers: wire → use case → wire. No business rules here.

mod order;

pub(crate) use order::order_service;
