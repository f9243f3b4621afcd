//! Apple rows recorded before periods were keyed by `webOrderLineItemId` get it from the payload
//! they keep, on PostgreSQL and SQLite; other rows are left alone.

use iap_migrations::{Migrator, MigratorTrait};
use iap_test_support::TestDatabase;
use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

/// How many migrations run before the backfill.
fn before() -> u32 {
    let position = Migrator::migrations()
        .iter()
        .position(|m| m.name().ends_with("_finish_apple_period_keys"))
        .expect("the backfill migration is listed");
    u32::try_from(position).unwrap()
}

async fn insert(db: &DatabaseConnection, id: &str, platform: &str, payload: &str) {
    let sql = format!(
        "INSERT INTO store_transactions (id, platform, store_transaction_id, app_id, user_id, \
         order_id, product_id, product_kind, quantity, environment, status, is_trial, \
         raw_payload, verified_at, updated_at) VALUES ('{id}', '{platform}', 'tx-{id}', 'app', \
         'user', 'order-{id}', 'vip', 'auto_renewable', 1, 'production', 'purchased', false, \
         '{payload}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    );
    db.execute_unprepared(&sql).await.unwrap();
}

async fn period(db: &DatabaseConnection, id: &str) -> Option<String> {
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT store_order_id FROM store_transactions WHERE id = '{id}'"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "store_order_id").unwrap()
}

async fn backfills(db: &DatabaseConnection) {
    Migrator::up(db, Some(before())).await.unwrap();
    insert(
        db,
        "a1",
        "apple",
        r#"{"transactionId":"2000","webOrderLineItemId":"3000"}"#,
    )
    .await;
    insert(
        db,
        "a2",
        "apple",
        r#"{"transaction_id":"2001","web_order_line_item_id":"3001"}"#,
    )
    .await;
    insert(db, "a3", "apple", r#"{"transactionId":"2002"}"#).await;
    insert(db, "g1", "google", r#"{"webOrderLineItemId":"3003"}"#).await;
    Migrator::up(db, None).await.unwrap();
    assert_eq!(
        period(db, "a1").await.as_deref(),
        Some("3000"),
        "signed transaction"
    );
    assert_eq!(
        period(db, "a2").await.as_deref(),
        Some("3001"),
        "receipt entry"
    );
    assert_eq!(period(db, "a3").await, None, "no period id: left alone");
    assert_eq!(period(db, "g1").await, None, "not the App Store's");
}

#[tokio::test]
async fn apple_period_keys_are_backfilled_on_postgres() {
    let test_db = TestDatabase::create().await;
    let db = Database::connect(test_db.url()).await.unwrap();
    backfills(&db).await;
}

#[tokio::test]
async fn apple_period_keys_are_backfilled_on_sqlite() {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    backfills(&db).await;
}
