//! `orders` table.

use sea_orm::entity::prelude::*;

/// One order row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub app_id: String,
    pub user_id: String,
    pub product_id: String,
    pub platform: String,
    pub quantity: i32,
    pub state: String,
    pub product_kind: String,
    pub environment: Option<String>,
    pub expected_currency: Option<String>,
    pub expected_amount_micros: Option<i64>,
    pub store_transaction_id: Option<String>,
    pub binding_reason: Option<String>,
    pub attempt: i32,
    pub attempts_before_redelivery: i32,
    pub reject_reason: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub paid_at: Option<DateTimeUtc>,
    pub delivered_at: Option<DateTimeUtc>,
    pub confirmed_at: Option<DateTimeUtc>,
    pub next_attempt_at: Option<DateTimeUtc>,
    pub lease_until: Option<DateTimeUtc>,
    pub metadata: Json,
    pub manual: bool,
    pub idempotency_key: Option<String>,
}

/// No declared relations; joins are written where needed.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
