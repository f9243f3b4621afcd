//! Subscriptions tell the game server about their entitlement: `version` grows with every change
//! of access, `synced_version` is the last one the game acknowledged, and the sync job retries
//! at `next_sync_at` after a failed call.

use sea_orm_migration::prelude::*;

use crate::execute_portable;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Subscriptions {
    Table,
    Version,
    SyncedVersion,
    NextSyncAt,
    LastError,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use Subscriptions as S;
        // SQLite adds one column per ALTER TABLE.
        for column in [
            ColumnDef::new(S::Version)
                .big_integer()
                .not_null()
                .default(1)
                .to_owned(),
            ColumnDef::new(S::SyncedVersion)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(S::NextSyncAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(S::LastError).text().null().to_owned(),
        ] {
            manager
                .alter_table(Table::alter().table(S::Table).add_column(column).to_owned())
                .await?;
        }
        // The sync job reads only rows the game has not caught up with.
        execute_portable(
            manager,
            "CREATE INDEX subscriptions_unsynced ON subscriptions (next_sync_at) \
             WHERE synced_version < version",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute_portable(manager, "DROP INDEX subscriptions_unsynced").await?;
        use Subscriptions as S;
        for column in [S::LastError, S::NextSyncAt, S::SyncedVersion, S::Version] {
            manager
                .alter_table(
                    Table::alter()
                        .table(S::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
