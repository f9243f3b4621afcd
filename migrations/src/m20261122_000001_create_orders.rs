//! `orders`: our orders, and the delivery work queue (state, attempt, next_attempt_at, lease).

use sea_orm_migration::prelude::*;

use crate::execute_portable;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Orders {
    Table,
    Id,
    AppId,
    UserId,
    ProductId,
    Platform,
    Quantity,
    State,
    ProductKind,
    Environment,
    ExpectedCurrency,
    ExpectedAmountMicros,
    StoreTransactionId,
    BindingReason,
    Attempt,
    RejectReason,
    LastError,
    CreatedAt,
    UpdatedAt,
    PaidAt,
    DeliveredAt,
    ConfirmedAt,
    NextAttemptAt,
    LeaseUntil,
    Metadata,
    Manual,
    IdempotencyKey,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Orders::Table)
                    .col(
                        ColumnDef::new(Orders::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Orders::AppId).string_len(64).not_null())
                    .col(ColumnDef::new(Orders::UserId).string_len(128).not_null())
                    .col(ColumnDef::new(Orders::ProductId).string_len(150).not_null())
                    .col(ColumnDef::new(Orders::Platform).string_len(16).not_null())
                    .col(ColumnDef::new(Orders::Quantity).integer().not_null())
                    .col(ColumnDef::new(Orders::State).string_len(16).not_null())
                    .col(
                        ColumnDef::new(Orders::ProductKind)
                            .string_len(24)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Orders::Environment).string_len(16).null())
                    .col(
                        ColumnDef::new(Orders::ExpectedCurrency)
                            .string_len(3)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Orders::ExpectedAmountMicros)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Orders::StoreTransactionId)
                            .string_len(255)
                            .null(),
                    )
                    .col(ColumnDef::new(Orders::BindingReason).string_len(40).null())
                    .col(
                        ColumnDef::new(Orders::Attempt)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(Orders::RejectReason).string_len(40).null())
                    .col(ColumnDef::new(Orders::LastError).text().null())
                    .col(
                        ColumnDef::new(Orders::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Orders::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Orders::PaidAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Orders::DeliveredAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Orders::ConfirmedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Orders::NextAttemptAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Orders::LeaseUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(Orders::Metadata).json().not_null())
                    .col(
                        ColumnDef::new(Orders::Manual)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(Orders::IdempotencyKey)
                            .string_len(128)
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        // CreateOrder retries with the same key return the same order (NULL keys never clash).
        manager
            .create_index(
                Index::create()
                    .name("orders_idempotency_key")
                    .table(Orders::Table)
                    .col(Orders::AppId)
                    .col(Orders::UserId)
                    .col(Orders::IdempotencyKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The lost-order sweeper: only paid-but-undelivered rows are indexed, so a pass costs
        // the same with ten thousand or ten million delivered orders.
        execute_portable(
            manager,
            "CREATE INDEX orders_undelivered_due ON orders (next_attempt_at) \
             WHERE state IN ('PAID', 'DELIVERING')",
        )
        .await?;
        // The store-confirmation sweeper (Google refunds unacknowledged purchases after 3 days).
        execute_portable(
            manager,
            "CREATE INDEX orders_unconfirmed_due ON orders (next_attempt_at) WHERE state = 'DELIVERED'",
        )
        .await?;
        // Binding a purchase that lost its order id to the user's oldest unpaid order, and the
        // open-orders purchase limit.
        execute_portable(
            manager,
            "CREATE INDEX orders_unpaid_by_user ON orders (app_id, user_id, product_id, created_at) \
             WHERE state = 'CREATED'",
        )
        .await?;
        manager
            .create_index(
                Index::create()
                    .name("orders_by_user")
                    .table(Orders::Table)
                    .col(Orders::UserId)
                    .col(Orders::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("orders_by_state_age")
                    .table(Orders::Table)
                    .col(Orders::State)
                    .col(Orders::UpdatedAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Orders::Table).to_owned())
            .await
    }
}
