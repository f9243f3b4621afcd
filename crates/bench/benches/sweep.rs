//! The sweeper's cost against the size of history: one pass over 1,000 stale paid orders beside
//! 10,000 and then 1,000,000 delivered ones, on a fresh PostgreSQL database. Prints the median
//! pass time for each size and the query plan, which must read only the partial indexes of
//! unsettled orders.
//!
//! Run: `cargo bench -p iap-bench --bench sweep` (PostgreSQL at `IAP_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`).

use std::time::{Duration, Instant};

use iap_domain::delivery::DeliveryStore;
use iap_storage::{PoolOptions, Storage};
use iap_test_support::TestDatabase;
use sea_orm::{ConnectionTrait, Statement};

const STALE: u64 = 1_000;
const PASSES: usize = 30;

async fn execute(storage: &Storage, sql: &str) {
    storage
        .connection()
        .execute(Statement::from_string(storage.backend(), sql.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Adds `count` orders in `state`, with `next_attempt_at` in the past for unsettled ones.
async fn insert_orders(storage: &Storage, count: u64, state: &str, first: u64) {
    let next = if state == "CONFIRMED" {
        "NULL"
    } else {
        "now() - interval '10 minutes'"
    };
    execute(
        storage,
        &format!(
            "INSERT INTO orders (id, app_id, user_id, product_id, platform, quantity, state, \
             product_kind, attempt, created_at, updated_at, paid_at, next_attempt_at, metadata, manual) \
             SELECT gen_random_uuid()::text, 'com.example.game', 'user-' || (g % 50000), 'gems_100', \
             'google', 1, '{state}', 'consumable', 1, now(), now(), now(), {next}, '{{}}', false \
             FROM generate_series({first}, {}) AS g",
            first + count - 1
        ),
    )
    .await;
}

async fn measure(storage: &Storage) -> (Duration, usize) {
    let mut times = Vec::with_capacity(PASSES);
    let mut found = 0;
    for _ in 0..PASSES {
        let started = Instant::now();
        found = storage
            .due_orders(chrono::Utc::now(), STALE as u32)
            .await
            .unwrap()
            .len();
        times.push(started.elapsed());
    }
    times.sort();
    (times[PASSES / 2], found)
}

async fn plan(storage: &Storage) -> String {
    let sql = format!(
        "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {}",
        storage.due_orders_sql(chrono::Utc::now(), STALE as u32)
    );
    let rows = storage
        .connection()
        .query_all(Statement::from_string(storage.backend(), sql))
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let db = TestDatabase::create().await;
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    storage.migrate().await.unwrap();
    insert_orders(&storage, STALE, "PAID", 1).await;
    let mut delivered = 0;
    let mut report = Vec::new();
    for target in [10_000_u64, 1_000_000] {
        let started = Instant::now();
        insert_orders(
            &storage,
            target - delivered,
            "CONFIRMED",
            delivered + STALE + 1,
        )
        .await;
        delivered = target;
        execute(&storage, "ANALYZE orders").await;
        println!(
            "{target} delivered orders inserted in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let (median, found) = measure(&storage).await;
        assert_eq!(found as u64, STALE, "the pass finds every stale order");
        report.push((target, median));
        println!(
            "\n== {target} delivered + {STALE} stale: median pass {:.2} ms over {PASSES} passes ==\n{}",
            median.as_secs_f64() * 1000.0,
            plan(&storage).await
        );
    }
    let ((small, t_small), (large, t_large)) = (report[0], report[1]);
    println!(
        "\nsweep pass: {:.2} ms with {small} delivered, {:.2} ms with {large} delivered (ratio {:.2})",
        t_small.as_secs_f64() * 1000.0,
        t_large.as_secs_f64() * 1000.0,
        t_large.as_secs_f64() / t_small.as_secs_f64()
    );
    storage.close().await;
}
