//! `iap-migrate` against a fresh PostgreSQL database: up, status, down, up again; and the
//! partial indexes the sweeper relies on exist.

use std::process::Command;

use iap_test_support::TestDatabase;
use sea_orm_migration::sea_orm::{ConnectionTrait, Database, Statement};

fn migrate(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_iap-migrate"))
        .env("IAP_DATABASE_URL", url)
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn up_status_down_up_on_postgres() {
    let db = TestDatabase::create().await;
    let up = migrate(db.url(), &["up"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );

    let conn = Database::connect(db.url()).await.unwrap();
    let rows = conn
        .query_all(Statement::from_string(
            conn.get_database_backend(),
            "SELECT indexname FROM pg_indexes WHERE tablename = 'orders'".to_owned(),
        ))
        .await
        .unwrap();
    let names: Vec<String> = rows
        .iter()
        .map(|r| r.try_get("", "indexname").unwrap())
        .collect();
    for expected in [
        "orders_undelivered_due",
        "orders_unconfirmed_due",
        "orders_unpaid_by_user",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    conn.close().await.unwrap();

    let status = migrate(db.url(), &["status"]);
    assert!(status.status.success());
    let down = migrate(db.url(), &["down", "9"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let again = migrate(db.url(), &["up"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn missing_url_is_a_configuration_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_iap-migrate"))
        .env_clear()
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&output.stderr).contains("IAP_DATABASE_URL"));
}
