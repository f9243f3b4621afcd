//! `audit_log`: every operator action (redeliver, compensate, revoke, replay) with who and why.
//! UNIQUE(action, idempotency_key) makes a repeated compensation return the first outcome.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    Actor,
    Action,
    OrderId,
    Reason,
    Detail,
    IdempotencyKey,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use AuditLog as A;
        manager
            .create_table(
                Table::create()
                    .table(A::Table)
                    .col(
                        ColumnDef::new(A::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(A::Actor).string_len(128).not_null())
                    .col(ColumnDef::new(A::Action).string_len(40).not_null())
                    .col(ColumnDef::new(A::OrderId).string_len(36).null())
                    .col(ColumnDef::new(A::Reason).text().not_null())
                    .col(ColumnDef::new(A::Detail).json().not_null())
                    .col(ColumnDef::new(A::IdempotencyKey).string_len(128).null())
                    .col(
                        ColumnDef::new(A::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_log_idempotency")
                    .table(A::Table)
                    .col(A::Action)
                    .col(A::IdempotencyKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_log_by_order")
                    .table(A::Table)
                    .col(A::OrderId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditLog::Table).to_owned())
            .await
    }
}
