//! The IAP domain: orders and their state machine, verified purchases, the app catalog, and the
//! use cases (create, verify, deliver, sweep) written against ports that adapters implement.
//!
//! This crate must not depend on tonic, sea-orm, redis, reqwest or any other transport or storage
//! crate; `cargo deny` enforces it (see `deny.toml`).

pub mod catalog;
pub mod ids;
pub mod order;
pub mod ports;
pub mod purchase;
pub mod usecases;

pub use catalog::{AppPolicy, Catalog, ProductPolicy, SandboxPolicy};
pub use ids::{AppId, IdError, OrderId, ProductId, UserId};
pub use order::{
    BindingReason, Environment, Money, NewOrder, Order, OrderState, Platform, ProductKind,
    RejectReason,
};
