//! `subscriptions.latest_receipt`: Apple's newest receipt for a subscription bought with a legacy
//! receipt (verifyReceipt's `latest_receipt`).
//!
//! A deployment without App Store Server API credentials has no other way to ask Apple about a
//! renewal whose notification was lost: the subscription job sends this receipt to verifyReceipt
//! and reads the subscription's newest period from `latest_receipt_info`. Secret like any
//! receipt; it is never logged.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Subscriptions {
    Table,
    LatestReceipt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Subscriptions::Table)
                    .add_column(ColumnDef::new(Subscriptions::LatestReceipt).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Subscriptions::Table)
                    .drop_column(Subscriptions::LatestReceipt)
                    .to_owned(),
            )
            .await
    }
}
