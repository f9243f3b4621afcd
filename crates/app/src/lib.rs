//! The composition root. [`App::build`] reads the settings once and builds, once per process,
//! everything the chosen [`Roles`] need: the database, the store clients, the use cases, the
//! gRPC services, the HTTP receivers and the jobs. Each binary's `main` is
//! `App::build(&settings, Roles::DELIVERY).await?.run_until_stopped(shutdown)`; `iapd` is
//! [`Roles::ALL`] plus the embedded emulator and the demo.
//!
//! Where to look: [`app`] for how a process is put together, [`verifier`], [`delivery`] and
//! [`scheduler`] for each role's handlers and jobs, [`order_sweep`] for the one sweep that
//! finishes whatever the fast path left undone.

pub mod app;
pub mod delivery;
pub mod order_sweep;
mod roles;
pub mod scheduler;
pub mod verifier;

pub use app::{Addresses, App, BoundListeners};
pub use order_sweep::{OrderSweep, SweepPass};
pub use roles::Roles;

/// The gRPC request validation (wire request → use-case command), for the fuzz targets in
/// `fuzz/` only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use iap_domain::usecases::create_order::CreateOrder;
    use iap_domain::usecases::verify_purchase::VerifyPurchase;
    use iap_proto::v1 as pb;

    /// What `OrderService.CreateOrder` makes of a request before any I/O.
    pub fn create_order_command(r: pb::CreateOrderRequest) -> Result<CreateOrder, tonic::Status> {
        crate::verifier::grpc::create_order_command(r)
    }

    /// What `VerificationService.VerifyPurchase` makes of a request before any I/O.
    pub fn verify_purchase_command(
        r: pb::VerifyPurchaseRequest,
    ) -> Result<VerifyPurchase, tonic::Status> {
        crate::verifier::grpc::verify_purchase_command(r)
    }
}
