//! iap-verifier: OrderService, VerificationService, AdminService and store notification receivers.
