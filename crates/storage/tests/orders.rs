//! The order repository against real PostgreSQL (a fresh database per test) and SQLite.

use iap_domain::ports::{CreateOutcome, OrderRepository};
use std::collections::BTreeMap;

use iap_domain::{AppId, NewOrder, OrderId, OrderState, Platform, ProductId, ProductKind, UserId};
use iap_storage::{PoolOptions, Storage};
use iap_test_support::{TestDatabase, TestSqlite};

fn new_order(user: &str, key: Option<&str>) -> NewOrder {
    NewOrder {
        id: OrderId::new(),
        app_id: AppId::parse("com.example.game").unwrap(),
        user_id: UserId::parse(user).unwrap(),
        product_id: ProductId::parse("gems_100").unwrap(),
        platform: Platform::Google,
        quantity: 1,
        product_kind: ProductKind::Consumable,
        expected_price: None,
        metadata: BTreeMap::new(),
        idempotency_key: key.map(str::to_owned),
        manual: false,
    }
}

async fn exercise(storage: &Storage) {
    storage.migrate().await.unwrap();
    // Migrations are idempotent.
    storage.migrate().await.unwrap();

    let CreateOutcome::Created(created) = storage
        .create_order(new_order("u1", Some("k1")))
        .await
        .unwrap()
    else {
        panic!("first insert must create");
    };
    assert_eq!(created.state, OrderState::Created);
    let read = storage
        .get_order(created.id)
        .await
        .unwrap()
        .expect("order is stored");
    assert_eq!(read, created);

    // Same idempotency key, same user: the existing order comes back, nothing new is stored.
    match storage
        .create_order(new_order("u1", Some("k1")))
        .await
        .unwrap()
    {
        CreateOutcome::Existing(existing) => assert_eq!(existing.id, created.id),
        CreateOutcome::Created(_) => panic!("idempotency key ignored"),
    }
    // Same key, another user: a different order.
    let CreateOutcome::Created(other) = storage
        .create_order(new_order("u2", Some("k1")))
        .await
        .unwrap()
    else {
        panic!("keys are scoped per user");
    };
    assert_ne!(other.id, created.id);
    // No key: always new.
    storage.create_order(new_order("u1", None)).await.unwrap();

    let app = AppId::parse("com.example.game").unwrap();
    assert_eq!(
        storage
            .count_unpaid_orders(&app, &UserId::parse("u1").unwrap())
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        storage
            .count_unpaid_orders(&app, &UserId::parse("u3").unwrap())
            .await
            .unwrap(),
        0
    );
    assert!(storage.get_order(OrderId::new()).await.unwrap().is_none());
}

#[tokio::test]
async fn orders_round_trip_on_postgres() {
    let db = TestDatabase::create().await;
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    exercise(&storage).await;
    storage.close().await;
}

#[tokio::test]
async fn orders_round_trip_on_sqlite() {
    let db = TestSqlite::create("storage");
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    exercise(&storage).await;
    storage.close().await;
}

#[tokio::test]
async fn unreachable_database_is_a_clear_connect_error() {
    let options = PoolOptions {
        connect_timeout: std::time::Duration::from_secs(2),
        ..PoolOptions::default()
    };
    let err = Storage::connect("postgres://postgres@127.0.0.1:1/none", &options)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("127.0.0.1:1") || message.to_lowercase().contains("connect"),
        "{message}"
    );
}
