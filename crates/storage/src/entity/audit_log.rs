//! `audit_log` table.

use sea_orm::entity::prelude::*;

/// One operator action.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub actor: String,
    pub action: String,
    pub order_id: Option<String>,
    pub reason: String,
    pub detail: Json,
    pub idempotency_key: Option<String>,
    pub created_at: DateTimeUtc,
}

/// No declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
