//! `refund_marks`: refunds and revocations the store reported for purchases not yet redeemed here.
//!
//! Notifications arrive out of order (Apple releases a held batch newest first; a worker can die
//! between two of them), so a refund can be processed before the purchase it refunds. The mark,
//! kept under each of the store's identities of the purchase, makes its later redemption fail
//! with REFUNDED instead of granting items the store already took back.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum RefundMarks {
    Table,
    Id,
    Platform,
    StoreKey,
    Revoked,
    Source,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use RefundMarks as T;
        manager
            .create_table(
                Table::create()
                    .table(T::Table)
                    .col(
                        ColumnDef::new(T::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(T::Platform).string_len(16).not_null())
                    // A transaction id, order id or purchase token, as the store wrote it.
                    .col(ColumnDef::new(T::StoreKey).string_len(512).not_null())
                    .col(ColumnDef::new(T::Revoked).boolean().not_null())
                    // What reported it: a notification type or a reconciliation window.
                    .col(ColumnDef::new(T::Source).string_len(128).not_null())
                    .col(
                        ColumnDef::new(T::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("refund_marks_per_key")
                    .table(T::Table)
                    .col(T::Platform)
                    .col(T::StoreKey)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RefundMarks::Table).to_owned())
            .await
    }
}
