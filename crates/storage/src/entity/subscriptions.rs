//! `subscriptions` table.

use sea_orm::entity::prelude::*;

/// One store subscription.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "subscriptions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub app_id: String,
    pub user_id: String,
    pub platform: String,
    pub product_id: String,
    pub subscription_key: String,
    pub purchase_token: Option<String>,
    pub linked_purchase_token: Option<String>,
    pub replaced_by: Option<String>,
    pub original_order_id: String,
    pub latest_order_id: String,
    pub latest_store_transaction_id: String,
    pub state: String,
    pub environment: String,
    pub expires_at: Option<DateTimeUtc>,
    pub grace_until: Option<DateTimeUtc>,
    pub auto_renew: bool,
    pub auto_renew_product_id: Option<String>,
    pub price_change_state: Option<String>,
    pub latest_receipt: Option<String>,
    pub detail: Json,
    pub checked_at: Option<DateTimeUtc>,
    pub next_check_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i64,
    pub synced_version: i64,
    pub next_sync_at: Option<DateTimeUtc>,
    pub last_error: Option<String>,
}

/// No declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
