//! `trial_usage`: who already had a free trial, per user and per store account, so a second one
//! can be flagged.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum TrialUsage {
    Table,
    Id,
    AppId,
    Platform,
    UserId,
    StoreAccountId,
    SubscriptionGroup,
    StoreTransactionId,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use TrialUsage as T;
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
                    .col(ColumnDef::new(T::AppId).string_len(64).not_null())
                    .col(ColumnDef::new(T::Platform).string_len(16).not_null())
                    .col(ColumnDef::new(T::UserId).string_len(128).not_null())
                    .col(ColumnDef::new(T::StoreAccountId).string_len(255).null())
                    .col(
                        ColumnDef::new(T::SubscriptionGroup)
                            .string_len(150)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(T::StoreTransactionId)
                            .string_len(255)
                            .not_null(),
                    )
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
                    .name("trial_usage_per_transaction")
                    .table(T::Table)
                    .col(T::Platform)
                    .col(T::StoreTransactionId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("trial_usage_by_user")
                    .table(T::Table)
                    .col(T::AppId)
                    .col(T::UserId)
                    .col(T::SubscriptionGroup)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("trial_usage_by_account")
                    .table(T::Table)
                    .col(T::AppId)
                    .col(T::StoreAccountId)
                    .col(T::SubscriptionGroup)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TrialUsage::Table).to_owned())
            .await
    }
}
