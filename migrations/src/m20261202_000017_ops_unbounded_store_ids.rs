//! Store identifiers and the game's acknowledgement reference as `TEXT`.
//!
//! Google documents no length for a purchase token, and a purchase without an order id (test
//! and promotional purchases) is keyed by its token, so `store_transaction_id` can hold one: a
//! `VARCHAR(255)` refused such a payment on PostgreSQL. `deliveries.game_ack_reference` is the
//! game server's text: an overlong one made `record_granted` fail after the game had granted,
//! and the order went round in DELIVERING. The lengths are checked where the values come in
//! (`iap_domain::store_ids`, the game server client), not by the column.
//!
//! PostgreSQL only: SQLite does not enforce `VARCHAR(n)` (its columns of that type already hold
//! text of any length) and cannot change a column's type in place.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// (table, column, the length it had).
const COLUMNS: &[(&str, &str, u32)] = &[
    ("orders", "store_transaction_id", 255),
    ("store_transactions", "store_transaction_id", 255),
    ("store_transactions", "original_transaction_id", 255),
    ("store_transactions", "purchase_token", 1024),
    ("store_transactions", "store_order_id", 255),
    ("store_transactions", "linked_purchase_token", 1024),
    ("deliveries", "game_ack_reference", 255),
    ("subscriptions", "subscription_key", 1024),
    ("subscriptions", "purchase_token", 1024),
    ("subscriptions", "linked_purchase_token", 1024),
    ("subscriptions", "latest_store_transaction_id", 255),
    ("trial_usage", "store_transaction_id", 255),
    ("unclaimed_purchases", "store_transaction_id", 255),
    ("unclaimed_purchases", "original_transaction_id", 255),
    ("unclaimed_purchases", "purchase_token", 1024),
    ("unclaimed_purchases", "store_order_id", 255),
    ("refund_marks", "store_key", 512),
    ("notifications", "subject", 1024),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        for (table, column, _) in COLUMNS {
            crate::execute_portable(
                manager,
                &format!(r#"ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE TEXT"#),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        for (table, column, length) in COLUMNS {
            crate::execute_portable(
                manager,
                &format!(r#"ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE VARCHAR({length})"#),
            )
            .await?;
        }
        Ok(())
    }
}
