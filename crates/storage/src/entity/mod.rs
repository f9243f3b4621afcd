//! sea-orm entities, one module per table (schema in `iap-migrations`).

pub mod audit_log;
pub mod deliveries;
pub mod job_state;
pub mod notifications;
pub mod orders;
pub mod outbox;
pub mod partial_revocations;
pub mod refund_marks;
pub mod store_transactions;
pub mod subscriptions;
pub mod trial_usage;
pub mod unclaimed_purchases;
