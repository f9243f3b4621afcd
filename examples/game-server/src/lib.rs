//! Reference game server: implements `iap.v1.GameServerService` over an idempotent ledger, so the
//! delivery service's at-least-once calls become exactly-once effects. Studios copy it; our tests
//! run it. Depends only on the generated contract (`iap-proto`), never on the IAP services.
//!
//! - [`ledger`]: the durable grant/revoke ledger keyed by `grant_id` / `revoke_id`.
//! - [`faults`]: test knobs (fail before applying, lose the acknowledgement, delay).
//! - [`service`]: the tonic service translating gRPC calls into ledger calls.
//! - [`server`]: `spawn` binds and serves in the background; the handle stops it.

pub mod faults;
pub mod ledger;
pub mod server;
pub mod service;

pub use faults::Faults;
pub use ledger::{
    EntitlementEntry, GrantEntry, GrantRequest, Ledger, LedgerError, LedgerStats, OpenError,
    Outcome, RevokeEntry, RevokeRequest,
};
pub use server::{GameServerHandle, ServeError, spawn};
pub use service::GameServer;
