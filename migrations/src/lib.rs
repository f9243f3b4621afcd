//! Schema of the IAP system, as sea-orm migrations that run unchanged on PostgreSQL (the system
//! of record) and SQLite (the embedded default). Partial indexes are plain SQL both engines share.
//! Depends on nothing internal.

// `#[async_trait]` in sea-orm-migration's `MigrationTrait` binds `&SchemaManager` late; naming
// its lifetime in the impls would not match the trait, so the 2018-idiom lint is relaxed here.
#![allow(elided_lifetimes_in_paths)]
pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_orders;
mod m20261122_000002_create_store_transactions;
mod m20261122_000003_create_deliveries;
mod m20261122_000004_create_outbox;
mod m20261122_000005_create_subscriptions;
mod m20261122_000006_create_notifications;
mod m20261122_000007_create_trial_usage;
mod m20261122_000008_create_audit_log;
mod m20261122_000009_create_job_state;
mod m20261128_000010_subscription_versions;
mod m20261201_000015_refund_marks;
mod m20261202_000012_notification_rejections;
mod m20261202_000014_unclaimed_purchases;
mod m20261202_000016_finish_apple_period_keys;
mod m20261202_000016_ops_redelivery_series;
mod m20261202_000016_refunds_partial_revocations;
mod m20261202_000017_ops_unbounded_store_ids;
mod m20261202_000018_subscription_latest_receipt;

/// Every migration, oldest first.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_orders::Migration),
            Box::new(m20261122_000002_create_store_transactions::Migration),
            Box::new(m20261122_000003_create_deliveries::Migration),
            Box::new(m20261122_000004_create_outbox::Migration),
            Box::new(m20261122_000005_create_subscriptions::Migration),
            Box::new(m20261122_000006_create_notifications::Migration),
            Box::new(m20261122_000007_create_trial_usage::Migration),
            Box::new(m20261122_000008_create_audit_log::Migration),
            Box::new(m20261122_000009_create_job_state::Migration),
            Box::new(m20261128_000010_subscription_versions::Migration),
            Box::new(m20261201_000015_refund_marks::Migration),
            Box::new(m20261202_000012_notification_rejections::Migration),
            Box::new(m20261202_000014_unclaimed_purchases::Migration),
            Box::new(m20261202_000016_refunds_partial_revocations::Migration),
            Box::new(m20261202_000016_ops_redelivery_series::Migration),
            Box::new(m20261202_000017_ops_unbounded_store_ids::Migration),
            Box::new(m20261202_000016_finish_apple_period_keys::Migration),
            Box::new(m20261202_000018_subscription_latest_receipt::Migration),
        ]
    }
}

/// Runs plain SQL that PostgreSQL and SQLite both accept (partial indexes).
async fn execute_portable(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    manager
        .get_connection()
        .execute_unprepared(sql)
        .await
        .map(|_| ())
}
