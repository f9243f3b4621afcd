//! `notifications`: the inbox of store server notifications. Stored under the store's unique id
//! before processing, so a redelivered notification is a no-op; processed asynchronously.

use sea_orm_migration::prelude::*;

use crate::execute_portable;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Notifications {
    Table,
    Id,
    Platform,
    NotificationId,
    AppId,
    NotificationType,
    Subject,
    RawBody,
    EventAt,
    ReceivedAt,
    ProcessedAt,
    Attempts,
    NextAttemptAt,
    LastError,
    Outcome,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use Notifications as N;
        manager
            .create_table(
                Table::create()
                    .table(N::Table)
                    .col(
                        ColumnDef::new(N::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(N::Platform).string_len(16).not_null())
                    .col(ColumnDef::new(N::NotificationId).string_len(255).not_null())
                    .col(ColumnDef::new(N::AppId).string_len(64).null())
                    .col(
                        ColumnDef::new(N::NotificationType)
                            .string_len(80)
                            .not_null(),
                    )
                    .col(ColumnDef::new(N::Subject).string_len(1024).null())
                    .col(ColumnDef::new(N::RawBody).text().not_null())
                    .col(ColumnDef::new(N::EventAt).timestamp_with_time_zone().null())
                    .col(
                        ColumnDef::new(N::ReceivedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(N::ProcessedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(N::Attempts).integer().not_null().default(0))
                    .col(
                        ColumnDef::new(N::NextAttemptAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(N::LastError).text().null())
                    .col(ColumnDef::new(N::Outcome).string_len(255).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("notifications_dedupe")
                    .table(N::Table)
                    .col(N::Platform)
                    .col(N::NotificationId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("notifications_by_subject")
                    .table(N::Table)
                    .col(N::Subject)
                    .to_owned(),
            )
            .await?;
        execute_portable(
            manager,
            "CREATE INDEX notifications_pending ON notifications (next_attempt_at) \
             WHERE processed_at IS NULL",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Notifications::Table).to_owned())
            .await
    }
}
