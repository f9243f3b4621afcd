//! `store_transactions` table.

use sea_orm::entity::prelude::*;

/// One verified store charge.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "store_transactions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub platform: String,
    pub store_transaction_id: String,
    pub original_transaction_id: Option<String>,
    pub purchase_token: Option<String>,
    pub store_order_id: Option<String>,
    pub app_id: String,
    pub user_id: String,
    pub order_id: String,
    pub product_id: String,
    pub product_kind: String,
    pub quantity: i32,
    pub environment: String,
    pub status: String,
    pub purchased_at: Option<DateTimeUtc>,
    pub expires_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub revocation_reason: Option<String>,
    pub price_currency: Option<String>,
    pub price_amount_micros: Option<i64>,
    pub is_trial: bool,
    pub store_account_id: Option<String>,
    pub linked_purchase_token: Option<String>,
    pub raw_payload: Json,
    pub verified_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// No declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
