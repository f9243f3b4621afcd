//! `deliveries`: the grant record of an order. The primary key on order_id and the unique
//! grant_id make one grant per order, whatever the number of workers.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    OrderId,
    GrantId,
    State,
    GrantCalls,
    ConfirmCalls,
    GameAckReference,
    RevokeId,
    LastError,
    CreatedAt,
    UpdatedAt,
    GrantedAt,
    ConfirmedAt,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use Deliveries as D;
        manager
            .create_table(
                Table::create()
                    .table(D::Table)
                    .col(
                        ColumnDef::new(D::OrderId)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(D::GrantId)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(D::State).string_len(16).not_null())
                    .col(
                        ColumnDef::new(D::GrantCalls)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(D::ConfirmCalls)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(D::GameAckReference).string_len(255).null())
                    .col(
                        ColumnDef::new(D::RevokeId)
                            .string_len(64)
                            .null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(D::LastError).text().null())
                    .col(
                        ColumnDef::new(D::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(D::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(D::GrantedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(D::ConfirmedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(D::RevokedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Deliveries::Table).to_owned())
            .await
    }
}
