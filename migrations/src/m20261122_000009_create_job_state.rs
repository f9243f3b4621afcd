//! `job_state`: cursors of the scheduler's store reconciliation (Apple history revisions,
//! last polled windows), so a restarted replica resumes where the last one stopped.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum JobState {
    Table,
    Name,
    Value,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(JobState::Table)
                    .col(
                        ColumnDef::new(JobState::Name)
                            .string_len(191)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(JobState::Value).text().not_null())
                    .col(
                        ColumnDef::new(JobState::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(JobState::Table).to_owned())
            .await
    }
}
