//! App Store subscription periods keyed by `webOrderLineItemId` as well as by transaction id.
//!
//! A restore on a new device gives a subscription period a new `transactionId`, but the period
//! keeps its `webOrderLineItemId` ("a unique ID that identifies subscription purchase events
//! across devices, including subscription renewals"). The verifier now stores it as the
//! purchase's `store_order_id`, and a payment whose period is recorded already is a replay.
//! Rows recorded before carry no `store_order_id` for the App Store: this fills it from the
//! verified payload each row keeps (`webOrderLineItemId` in a signed transaction,
//! `web_order_line_item_id` in a receipt entry), so their periods are recognised too. Rows
//! without one (consumables, non-renewing products) stay as they are. `down` leaves the values:
//! the older code ignores them.

use sea_orm::{ConnectionTrait, DatabaseBackend};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let period = match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                "COALESCE(raw_payload->>'webOrderLineItemId', raw_payload->>'web_order_line_item_id')"
            }
            _ => {
                "COALESCE(json_extract(raw_payload, '$.webOrderLineItemId'), \
                 json_extract(raw_payload, '$.web_order_line_item_id'))"
            }
        };
        let sql = format!(
            "UPDATE store_transactions SET store_order_id = {period} \
             WHERE platform = 'apple' AND store_order_id IS NULL AND {period} IS NOT NULL \
             AND {period} <> ''"
        );
        manager
            .get_connection()
            .execute_unprepared(&sql)
            .await
            .map(|_| ())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
