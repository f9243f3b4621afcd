//! `partial_revocations`: the steps of a purchase taken back in parts (Google quantity-based
//! partial refunds, Apple prorated refunds).
//!
//! A store reports what it has refunded of a purchase in all; each step revokes the units beyond
//! what earlier steps took back. A step is written before RevokeItems is called and marked done
//! after, so a step cut short by a crash is finished with its own key and quantity before a
//! later one is counted. `UNIQUE(order_id, from_units)`: two steps can never start from the same
//! point, so two workers cannot both take the same units.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum PartialRevocations {
    Table,
    RevokeId,
    OrderId,
    FromUnits,
    ToUnits,
    State,
    Reason,
    StoreSource,
    StoreReason,
    GameReference,
    CreatedAt,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use PartialRevocations as T;
        manager
            .create_table(
                Table::create()
                    .table(T::Table)
                    .col(
                        ColumnDef::new(T::RevokeId)
                            .string_len(128)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(T::OrderId).string_len(36).not_null())
                    .col(ColumnDef::new(T::FromUnits).integer().not_null())
                    .col(ColumnDef::new(T::ToUnits).integer().not_null())
                    // `pending` until the game acknowledged RevokeItems, then `done`.
                    .col(ColumnDef::new(T::State).string_len(16).not_null())
                    .col(ColumnDef::new(T::Reason).string_len(16).not_null())
                    .col(ColumnDef::new(T::StoreSource).string_len(64).null())
                    .col(ColumnDef::new(T::StoreReason).string_len(64).null())
                    .col(ColumnDef::new(T::GameReference).string_len(512).null())
                    .col(
                        ColumnDef::new(T::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(T::RevokedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("partial_revocations_per_step")
                    .table(T::Table)
                    .col(T::OrderId)
                    .col(T::FromUnits)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PartialRevocations::Table).to_owned())
            .await
    }
}
