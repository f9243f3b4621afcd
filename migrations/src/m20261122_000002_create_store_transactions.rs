//! `store_transactions`: one row per store charge. UNIQUE(platform, store_transaction_id) is the
//! replay fence: a purchase can pay for one order, for the first user that redeems it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum StoreTransactions {
    Table,
    Id,
    Platform,
    StoreTransactionId,
    OriginalTransactionId,
    PurchaseToken,
    StoreOrderId,
    AppId,
    UserId,
    OrderId,
    ProductId,
    ProductKind,
    Quantity,
    Environment,
    Status,
    PurchasedAt,
    ExpiresAt,
    RevokedAt,
    RevocationReason,
    PriceCurrency,
    PriceAmountMicros,
    IsTrial,
    StoreAccountId,
    LinkedPurchaseToken,
    RawPayload,
    VerifiedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use StoreTransactions as T;
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
                    .col(
                        ColumnDef::new(T::StoreTransactionId)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(T::OriginalTransactionId)
                            .string_len(255)
                            .null(),
                    )
                    .col(ColumnDef::new(T::PurchaseToken).string_len(1024).null())
                    .col(ColumnDef::new(T::StoreOrderId).string_len(255).null())
                    .col(ColumnDef::new(T::AppId).string_len(64).not_null())
                    .col(ColumnDef::new(T::UserId).string_len(128).not_null())
                    .col(ColumnDef::new(T::OrderId).string_len(36).not_null())
                    .col(ColumnDef::new(T::ProductId).string_len(150).not_null())
                    .col(ColumnDef::new(T::ProductKind).string_len(24).not_null())
                    .col(ColumnDef::new(T::Quantity).integer().not_null())
                    .col(ColumnDef::new(T::Environment).string_len(16).not_null())
                    .col(ColumnDef::new(T::Status).string_len(16).not_null())
                    .col(
                        ColumnDef::new(T::PurchasedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(T::ExpiresAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(T::RevokedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(T::RevocationReason).string_len(255).null())
                    .col(ColumnDef::new(T::PriceCurrency).string_len(3).null())
                    .col(ColumnDef::new(T::PriceAmountMicros).big_integer().null())
                    .col(
                        ColumnDef::new(T::IsTrial)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(ColumnDef::new(T::StoreAccountId).string_len(255).null())
                    .col(
                        ColumnDef::new(T::LinkedPurchaseToken)
                            .string_len(1024)
                            .null(),
                    )
                    .col(ColumnDef::new(T::RawPayload).json().not_null())
                    .col(
                        ColumnDef::new(T::VerifiedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(T::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("store_transactions_replay_fence")
                    .table(T::Table)
                    .col(T::Platform)
                    .col(T::StoreTransactionId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Admin lookups by any store id, and renewals/notifications that name a token or an
        // original transaction.
        for (name, col) in [
            ("store_transactions_by_token", T::PurchaseToken),
            ("store_transactions_by_store_order", T::StoreOrderId),
            ("store_transactions_by_original", T::OriginalTransactionId),
            ("store_transactions_by_order", T::OrderId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(T::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(StoreTransactions::Table).to_owned())
            .await
    }
}
