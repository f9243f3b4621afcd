//! `subscriptions`: one row per store subscription (Apple original transaction, Google purchase
//! token, Huawei subscription id), its entitlement window and state; renewal periods are granted
//! as their own orders, keyed by the renewal transaction in `store_transactions`.

use sea_orm_migration::prelude::*;

use crate::execute_portable;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Subscriptions {
    Table,
    Id,
    AppId,
    UserId,
    Platform,
    ProductId,
    SubscriptionKey,
    PurchaseToken,
    LinkedPurchaseToken,
    ReplacedBy,
    OriginalOrderId,
    LatestOrderId,
    LatestStoreTransactionId,
    State,
    Environment,
    ExpiresAt,
    GraceUntil,
    AutoRenew,
    AutoRenewProductId,
    PriceChangeState,
    Detail,
    CheckedAt,
    NextCheckAt,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use Subscriptions as S;
        manager
            .create_table(
                Table::create()
                    .table(S::Table)
                    .col(
                        ColumnDef::new(S::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(S::AppId).string_len(64).not_null())
                    .col(ColumnDef::new(S::UserId).string_len(128).not_null())
                    .col(ColumnDef::new(S::Platform).string_len(16).not_null())
                    .col(ColumnDef::new(S::ProductId).string_len(150).not_null())
                    .col(
                        ColumnDef::new(S::SubscriptionKey)
                            .string_len(1024)
                            .not_null(),
                    )
                    .col(ColumnDef::new(S::PurchaseToken).string_len(1024).null())
                    .col(
                        ColumnDef::new(S::LinkedPurchaseToken)
                            .string_len(1024)
                            .null(),
                    )
                    .col(ColumnDef::new(S::ReplacedBy).string_len(36).null())
                    .col(ColumnDef::new(S::OriginalOrderId).string_len(36).not_null())
                    .col(ColumnDef::new(S::LatestOrderId).string_len(36).not_null())
                    .col(
                        ColumnDef::new(S::LatestStoreTransactionId)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(ColumnDef::new(S::State).string_len(20).not_null())
                    .col(ColumnDef::new(S::Environment).string_len(16).not_null())
                    .col(
                        ColumnDef::new(S::ExpiresAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(S::GraceUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(S::AutoRenew)
                            .boolean()
                            .not_null()
                            .default(true),
                    )
                    .col(ColumnDef::new(S::AutoRenewProductId).string_len(150).null())
                    .col(ColumnDef::new(S::PriceChangeState).string_len(40).null())
                    .col(ColumnDef::new(S::Detail).json().not_null())
                    .col(
                        ColumnDef::new(S::CheckedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(S::NextCheckAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(S::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(S::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("subscriptions_by_store_key")
                    .table(S::Table)
                    .col(S::Platform)
                    .col(S::SubscriptionKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("subscriptions_by_user")
                    .table(S::Table)
                    .col(S::AppId)
                    .col(S::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("subscriptions_by_token")
                    .table(S::Table)
                    .col(S::PurchaseToken)
                    .to_owned(),
            )
            .await?;
        // The renewal job only looks at subscriptions that can still change.
        execute_portable(
            manager,
            "CREATE INDEX subscriptions_check_due ON subscriptions (next_check_at) \
             WHERE state NOT IN ('expired', 'revoked', 'replaced')",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Subscriptions::Table).to_owned())
            .await
    }
}
