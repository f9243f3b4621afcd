//! `partial_revocations` table.

use sea_orm::entity::prelude::*;

/// One step of a purchase taken back in parts.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "partial_revocations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub revoke_id: String,
    pub order_id: String,
    pub from_units: i32,
    pub to_units: i32,
    pub state: String,
    pub reason: String,
    pub store_source: Option<String>,
    pub store_reason: Option<String>,
    pub game_reference: Option<String>,
    pub created_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
}

/// No declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
