//! The reads behind the operations gauges, on PostgreSQL and SQLite: open orders counted by state
//! and store with the oldest payment, settled orders left out, and the inbox backlog.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use sea_orm::{ConnectionTrait, Statement};

use iap_domain::notifications::{InboundNotification, NotificationInbox};
use iap_domain::ports::{CreateOutcome, OrderRepository};
use iap_domain::{AppId, NewOrder, OrderId, OrderState, Platform, ProductId, ProductKind, UserId};
use iap_storage::{PoolOptions, Storage};
use iap_test_support::{TestDatabase, TestSqlite};

async fn order_in(storage: &Storage, platform: Platform, state: OrderState, paid_ago: i64) {
    let id = OrderId::new();
    let created = storage
        .create_order(NewOrder {
            id,
            app_id: AppId::parse("com.example.game").unwrap(),
            user_id: UserId::parse(format!("u-{id}")).unwrap(),
            product_id: ProductId::parse("gems_100").unwrap(),
            platform,
            quantity: 1,
            product_kind: ProductKind::Consumable,
            expected_price: None,
            metadata: BTreeMap::new(),
            idempotency_key: None,
            manual: false,
        })
        .await
        .unwrap();
    assert!(matches!(created, CreateOutcome::Created(_)));
    if state == OrderState::Created {
        return;
    }
    // Put the row where the test needs it; the transitions themselves are tested elsewhere.
    let paid_at = (Utc::now() - Duration::seconds(paid_ago)).to_rfc3339();
    storage
        .connection()
        .execute(Statement::from_sql_and_values(
            storage.backend(),
            match storage.backend() {
                sea_orm::DatabaseBackend::Postgres => {
                    "UPDATE orders SET state = $1, paid_at = $2::timestamptz, delivered_at = $2::timestamptz WHERE id = $3"
                }
                _ => "UPDATE orders SET state = ?, paid_at = ?, delivered_at = ? WHERE id = ?",
            },
            match storage.backend() {
                sea_orm::DatabaseBackend::Postgres => vec![
                    state.as_str().into(),
                    paid_at.into(),
                    id.to_string().into(),
                ],
                _ => vec![
                    state.as_str().into(),
                    paid_at.clone().into(),
                    paid_at.into(),
                    id.to_string().into(),
                ],
            },
        ))
        .await
        .unwrap();
}

async fn exercise(storage: &Storage) {
    storage.migrate().await.unwrap();
    assert!(storage.open_orders().await.unwrap().is_empty());

    order_in(storage, Platform::Google, OrderState::Created, 0).await;
    order_in(storage, Platform::Google, OrderState::Paid, 600).await;
    order_in(storage, Platform::Google, OrderState::Paid, 60).await;
    order_in(storage, Platform::Apple, OrderState::Dead, 30).await;
    order_in(storage, Platform::Google, OrderState::Delivered, 90_000).await;
    order_in(storage, Platform::Huawei, OrderState::Confirmed, 10).await;

    let open = storage.open_orders().await.unwrap();
    let find = |state, platform| {
        open.iter()
            .find(|o| o.state == state && o.platform == platform)
            .unwrap_or_else(|| panic!("{state} {platform} missing from {open:?}"))
    };
    assert_eq!(open.len(), 4, "settled states are not counted: {open:?}");
    assert_eq!(find(OrderState::Created, Platform::Google).count, 1);
    let paid = find(OrderState::Paid, Platform::Google);
    assert_eq!(paid.count, 2);
    let oldest = Utc::now()
        - paid
            .oldest_paid_at
            .expect("paid orders have a payment time");
    assert!((599..700).contains(&oldest.num_seconds()), "{oldest}");
    assert_eq!(find(OrderState::Dead, Platform::Apple).count, 1);
    let waiting = find(OrderState::Delivered, Platform::Google);
    let age = Utc::now() - waiting.oldest_delivered_at.unwrap();
    assert!(
        age.num_hours() >= 24,
        "the Google acknowledgement clock reads {age}"
    );

    assert_eq!(storage.pending_notifications().await.unwrap().count, 0);
    let inbound = InboundNotification {
        platform: Platform::Apple,
        notification_id: "n-1".into(),
        app_id: None,
        notification_type: "TEST".into(),
        subject: None,
        raw_body: "{}".into(),
        event_at: None,
    };
    assert!(storage.receive(inbound).await.unwrap());
    let pending = storage.pending_notifications().await.unwrap();
    assert_eq!(pending.count, 1);
    assert!(pending.oldest_received_at.is_some());
}

#[tokio::test]
async fn gauge_reads_on_postgres() {
    let db = TestDatabase::create().await;
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    exercise(&storage).await;
    storage.close().await;
}

#[tokio::test]
async fn gauge_reads_on_sqlite() {
    let db = TestSqlite::create("gauges");
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    exercise(&storage).await;
    storage.close().await;
}
