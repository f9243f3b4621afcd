//! The counts behind `GetStats`: orders per state and store, the oldest undelivered and
//! unconfirmed, unprocessed notifications and entitled subscriptions.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};

use iap_domain::admin::OrderStats;
use iap_domain::ports::StorageError;
use iap_domain::{AppId, OrderState};

use crate::convert::parse;
use crate::entity::{notifications, orders, subscriptions};
use crate::{Storage, classify};

/// Subscription states that entitle the user now.
const ENTITLED_SUBSCRIPTION_STATES: [&str; 2] = ["active", "grace"];

pub(super) async fn order_stats(
    storage: &Storage,
    app: Option<&AppId>,
) -> Result<OrderStats, StorageError> {
    let conn = storage.connection();
    let app_filter = |column: orders::Column| match app {
        Some(app) => Condition::all().add(column.eq(app.as_str())),
        None => Condition::all(),
    };
    let counts: Vec<(String, String, i64)> = orders::Entity::find()
        .select_only()
        .column(orders::Column::State)
        .column(orders::Column::Platform)
        .expr(Expr::col(orders::Column::Id).count())
        .filter(app_filter(orders::Column::AppId))
        .group_by(orders::Column::State)
        .group_by(orders::Column::Platform)
        .into_tuple()
        .all(conn)
        .await
        .map_err(classify)?;
    let mut by_state = Vec::with_capacity(counts.len());
    for (state, platform, n) in counts {
        by_state.push((
            parse("orders.state", &state)?,
            parse("orders.platform", &platform)?,
            u64::try_from(n).unwrap_or(0),
        ));
    }
    by_state.sort();
    let oldest = |states: &[OrderState], column: orders::Column| {
        orders::Entity::find()
            .select_only()
            .expr(Func::min(Expr::col(column)))
            .filter(orders::Column::State.is_in(states.iter().map(|s| s.as_str())))
            .filter(app_filter(orders::Column::AppId))
            .into_tuple::<Option<DateTime<Utc>>>()
            .one(conn)
    };
    let oldest_undelivered_since = oldest(
        &[OrderState::Paid, OrderState::Delivering],
        orders::Column::PaidAt,
    )
    .await
    .map_err(classify)?
    .flatten();
    let oldest_unconfirmed_since = oldest(&[OrderState::Delivered], orders::Column::DeliveredAt)
        .await
        .map_err(classify)?
        .flatten();
    let mut unprocessed =
        notifications::Entity::find().filter(notifications::Column::ProcessedAt.is_null());
    if let Some(app) = app {
        unprocessed = unprocessed.filter(notifications::Column::AppId.eq(app.as_str()));
    }
    let unprocessed_notifications = unprocessed.count(conn).await.map_err(classify)?;
    let mut entitled = subscriptions::Entity::find()
        .filter(subscriptions::Column::State.is_in(ENTITLED_SUBSCRIPTION_STATES));
    if let Some(app) = app {
        entitled = entitled.filter(subscriptions::Column::AppId.eq(app.as_str()));
    }
    let active_subscriptions = entitled.count(conn).await.map_err(classify)?;
    Ok(OrderStats {
        by_state,
        oldest_undelivered_since,
        oldest_unconfirmed_since,
        unprocessed_notifications,
        active_subscriptions,
    })
}
