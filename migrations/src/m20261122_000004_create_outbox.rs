//! `outbox`: order events written in the same transaction as each state change (paid,
//! delivered, confirmed, refunded, dead, operator actions). They are the order's history for
//! operators and are published to a Redis stream by the scheduler when one is configured.

use sea_orm_migration::prelude::*;

use crate::execute_portable;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    OrderId,
    Kind,
    Detail,
    Actor,
    CreatedAt,
    PublishedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(
                        ColumnDef::new(Outbox::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Outbox::OrderId).string_len(36).not_null())
                    .col(ColumnDef::new(Outbox::Kind).string_len(40).not_null())
                    .col(ColumnDef::new(Outbox::Detail).text().not_null())
                    .col(ColumnDef::new(Outbox::Actor).string_len(128).not_null())
                    .col(
                        ColumnDef::new(Outbox::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Outbox::PublishedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("outbox_by_order")
                    .table(Outbox::Table)
                    .col(Outbox::OrderId)
                    .col(Outbox::CreatedAt)
                    .to_owned(),
            )
            .await?;
        execute_portable(
            manager,
            "CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Outbox::Table).to_owned())
            .await
    }
}
