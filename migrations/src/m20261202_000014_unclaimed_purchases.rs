//! `unclaimed_purchases`: verified, paid store purchases that no order and no user could be found
//! for (a store notification without Apple `appAccountToken`, Google obfuscated ids or Huawei
//! `developerPayload`, and no order of ours), kept until an operator claims one for a user or the
//! player's own client redeems it.
//!
//! Keyed like the replay fence, on the store's own identity of the purchase, so the same purchase
//! reported twice stays one row. The kept proof lets a claim ask the store again; it is secret
//! (a purchase token or signed transaction) and is never logged or shown.

use sea_orm_migration::prelude::*;

use crate::execute_portable;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum UnclaimedPurchases {
    Table,
    Id,
    Platform,
    StoreTransactionId,
    OriginalTransactionId,
    PurchaseToken,
    StoreOrderId,
    AppId,
    ProductId,
    Quantity,
    Environment,
    PurchasedAt,
    Proof,
    Source,
    FirstSeenAt,
    LastSeenAt,
    RefundedAt,
    ClaimedBy,
    ClaimedAt,
    ClaimedOrderId,
    Operator,
    Reason,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use UnclaimedPurchases as T;
        manager
            .create_table(
                Table::create()
                    .table(T::Table)
                    .col(
                        ColumnDef::new(T::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(T::Platform).string_len(16).not_null())
                    // The store's canonical identity, as in `store_transactions`.
                    .col(
                        ColumnDef::new(T::StoreTransactionId)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(T::OriginalTransactionId)
                            .string_len(255)
                            .null(),
                    )
                    .col(ColumnDef::new(T::PurchaseToken).string_len(1024).null())
                    .col(ColumnDef::new(T::StoreOrderId).string_len(255).null())
                    .col(ColumnDef::new(T::AppId).string_len(64).not_null())
                    .col(ColumnDef::new(T::ProductId).string_len(150).not_null())
                    // The units the store says were paid.
                    .col(ColumnDef::new(T::Quantity).integer().not_null())
                    .col(ColumnDef::new(T::Environment).string_len(16).not_null())
                    .col(
                        ColumnDef::new(T::PurchasedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    // The proof to verify again at claim time (JSON); secret.
                    .col(ColumnDef::new(T::Proof).text().not_null())
                    // What reported it (a notification type).
                    .col(ColumnDef::new(T::Source).string_len(128).not_null())
                    .col(
                        ColumnDef::new(T::FirstSeenAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(T::LastSeenAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    // The store refunded or revoked it while unclaimed: never claimable.
                    .col(
                        ColumnDef::new(T::RefundedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(T::ClaimedBy).string_len(128).null())
                    .col(
                        ColumnDef::new(T::ClaimedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(T::ClaimedOrderId).string_len(36).null())
                    // Who claimed it and why (empty operator: the player's own redemption).
                    .col(ColumnDef::new(T::Operator).string_len(128).null())
                    .col(ColumnDef::new(T::Reason).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("unclaimed_purchases_per_purchase")
                    .table(T::Table)
                    .col(T::Platform)
                    .col(T::StoreTransactionId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The gauges and the listing read only the open rows.
        execute_portable(
            manager,
            "CREATE INDEX unclaimed_purchases_open ON unclaimed_purchases (first_seen_at) \
             WHERE claimed_at IS NULL AND refunded_at IS NULL",
        )
        .await?;
        // Refunds name a token or a store order id.
        for (name, col) in [
            ("unclaimed_purchases_by_token", T::PurchaseToken),
            ("unclaimed_purchases_by_store_order", T::StoreOrderId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(T::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UnclaimedPurchases::Table).to_owned())
            .await
    }
}
