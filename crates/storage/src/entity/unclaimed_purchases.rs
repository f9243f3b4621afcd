//! `unclaimed_purchases` table.

use sea_orm::entity::prelude::*;

/// One paid purchase no order or user could be found for.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "unclaimed_purchases")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub platform: String,
    pub store_transaction_id: String,
    pub original_transaction_id: Option<String>,
    pub purchase_token: Option<String>,
    pub store_order_id: Option<String>,
    pub app_id: String,
    pub product_id: String,
    pub quantity: i32,
    pub environment: String,
    pub purchased_at: Option<DateTimeUtc>,
    pub proof: String,
    pub source: String,
    pub first_seen_at: DateTimeUtc,
    pub last_seen_at: DateTimeUtc,
    pub refunded_at: Option<DateTimeUtc>,
    pub claimed_by: Option<String>,
    pub claimed_at: Option<DateTimeUtc>,
    pub claimed_order_id: Option<String>,
    pub operator: Option<String>,
    pub reason: Option<String>,
}

/// No declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
