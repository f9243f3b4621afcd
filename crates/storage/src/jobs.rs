//! JobCursors: `job_state` rows holding a singleton job's cursor and lease as JSON
//! (`{"cursor": …, "held_until": …}`). A replica takes a job by compare-and-set on the row's
//! value, so of replicas racing for the same window exactly one wins, on PostgreSQL and SQLite
//! alike.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue, ColumnTrait, Condition, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};

use iap_domain::ports::StorageError;
use iap_domain::reconciliation::JobCursors;

use crate::deliveries::until;
use crate::entity::job_state;
use crate::transition::fenced_update;
use crate::{Storage, classify};

#[derive(Debug, Default, Serialize, Deserialize)]
struct JobValue {
    cursor: Option<DateTime<Utc>>,
    held_until: Option<DateTime<Utc>>,
}

fn encode(value: &JobValue) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}

#[async_trait]
impl JobCursors for Storage {
    async fn take_job(
        &self,
        name: &str,
        hold: Duration,
    ) -> Result<Option<Option<DateTime<Utc>>>, StorageError> {
        let now = Utc::now().trunc_subsecs(6);
        for _ in 0..2 {
            let row = job_state::Entity::find_by_id(name.to_owned())
                .one(self.connection())
                .await
                .map_err(classify)?;
            let Some(row) = row else {
                let taken = JobValue {
                    cursor: None,
                    held_until: Some(until(now, hold)),
                };
                let inserted = job_state::Entity::insert(job_state::ActiveModel {
                    name: ActiveValue::Set(name.to_owned()),
                    value: ActiveValue::Set(encode(&taken)),
                    updated_at: ActiveValue::Set(now),
                })
                .on_conflict(
                    OnConflict::column(job_state::Column::Name)
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(self.connection())
                .await
                .map_err(classify)?;
                if inserted == 1 {
                    return Ok(Some(None));
                }
                continue;
            };
            let value: JobValue = serde_json::from_str(&row.value)
                .map_err(|e| StorageError::Corrupt(format!("job_state {name}: {e}")))?;
            if value.held_until.is_some_and(|held| held > now) {
                return Ok(None);
            }
            let taken = JobValue {
                cursor: value.cursor,
                held_until: Some(until(now, hold)),
            };
            let take = job_state::Entity::update_many()
                .col_expr(job_state::Column::Value, Expr::value(encode(&taken)))
                .col_expr(job_state::Column::UpdatedAt, Expr::value(now));
            // Under the value read: of two processes taking the job, one does.
            let unchanged = Condition::all()
                .add(job_state::Column::Name.eq(name))
                .add(job_state::Column::Value.eq(row.value));
            let took = fenced_update(self.connection(), take, unchanged).await?;
            return Ok(took.then_some(value.cursor));
        }
        Ok(None)
    }

    async fn advance_job(&self, name: &str, cursor: DateTime<Utc>) -> Result<(), StorageError> {
        let value = JobValue {
            cursor: Some(cursor),
            held_until: None,
        };
        job_state::Entity::update_many()
            .col_expr(job_state::Column::Value, Expr::value(encode(&value)))
            .col_expr(
                job_state::Column::UpdatedAt,
                Expr::value(Utc::now().trunc_subsecs(6)),
            )
            .filter(job_state::Column::Name.eq(name))
            .exec(self.connection())
            .await
            .map_err(classify)?;
        Ok(())
    }
}
