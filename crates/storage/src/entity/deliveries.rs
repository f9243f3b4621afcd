//! `deliveries` table.

use sea_orm::entity::prelude::*;

/// The grant record of one order.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub order_id: String,
    #[sea_orm(unique)]
    pub grant_id: String,
    pub state: String,
    pub grant_calls: i32,
    pub confirm_calls: i32,
    pub game_ack_reference: Option<String>,
    #[sea_orm(unique)]
    pub revoke_id: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub granted_at: Option<DateTimeUtc>,
    pub confirmed_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
}

/// No declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
