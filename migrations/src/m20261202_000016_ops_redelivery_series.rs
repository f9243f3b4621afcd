//! `orders.attempts_before_redelivery`: the attempt count at an operator's last redelivery of a
//! DEAD order.
//!
//! The attempt counter is the fencing token and only grows, so a redelivered DEAD order cannot
//! start again from zero. Counting the attempts of the current series from this column gives
//! an operator's redelivery `delivery.max_attempts` fresh attempts instead of one.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Orders {
    Table,
    AttemptsBeforeRedelivery,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .add_column(
                        ColumnDef::new(Orders::AttemptsBeforeRedelivery)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .drop_column(Orders::AttemptsBeforeRedelivery)
                    .to_owned(),
            )
            .await
    }
}
