//! `notifications.rejected_reason`: why a stored notification was set aside without effect.
//!
//! A notification that takes something away or grants something is a claim until the store
//! confirms it. A forged or stale push the store does not confirm is kept (under its body's key,
//! so it cannot occupy the id of a later real delivery) with the reason, for operators and the
//! `iap_notifications_rejected_total` alert.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Notifications {
    Table,
    RejectedReason,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Notifications::Table)
                    .add_column(
                        ColumnDef::new(Notifications::RejectedReason)
                            .string_len(64)
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Notifications::Table)
                    .drop_column(Notifications::RejectedReason)
                    .to_owned(),
            )
            .await
    }
}
