//! `trial_usage` table.

use sea_orm::entity::prelude::*;

/// One free trial taken.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "trial_usage")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub app_id: String,
    pub platform: String,
    pub user_id: String,
    pub store_account_id: Option<String>,
    pub subscription_group: String,
    pub store_transaction_id: String,
    pub created_at: DateTimeUtc,
}

/// No declared relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
