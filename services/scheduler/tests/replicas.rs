//! Three `iap-scheduler` replicas, killed (SIGKILL) and restarted over and over, sweep 1,000
//! paid orders that nobody delivered through a real `DeliveryService` and the reference game
//! server: afterwards every order is CONFIRMED and granted exactly once.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iap_domain::order::{BindingReason, Environment, NewOrder, Platform, ProductKind};
use iap_domain::ports::{PaymentLedger, PaymentTarget, PaymentToRecord};
use iap_domain::purchase::{PurchaseStatus, VerifiedPurchase};
use iap_domain::{AppId, OrderId, ProductId, UserId};
use iap_runtime::lock::LockBackend;
use iap_runtime::{Settings, Shutdown};
use iap_storage::{PoolOptions, Storage};
use iap_test_support::TestDatabase;
use iap_test_support::process::RunningBinary;
use sea_orm::{ConnectionTrait, Statement};

const ORDERS: usize = 1_000;
const REPLICAS: usize = 3;

fn paid_apple_purchase(i: usize, user: &UserId, app: &AppId) -> PaymentToRecord {
    let order = NewOrder {
        id: OrderId::new(),
        app_id: app.clone(),
        user_id: user.clone(),
        product_id: ProductId::parse("gems_100").unwrap(),
        platform: Platform::Apple,
        quantity: 1,
        product_kind: ProductKind::Consumable,
        expected_price: None,
        metadata: Default::default(),
        idempotency_key: None,
        manual: false,
    };
    PaymentToRecord {
        target: PaymentTarget::NewOrder(order),
        purchase: VerifiedPurchase {
            platform: Platform::Apple,
            environment: Environment::Production,
            store_transaction_id: format!("{}", 3_000_000_000_000_000_u64 + i as u64),
            original_transaction_id: None,
            purchase_token: None,
            store_order_id: None,
            product_id: ProductId::parse("gems_100").unwrap(),
            quantity: 1,
            status: PurchaseStatus::Purchased,
            purchased_at: None,
            expires_at: None,
            carried_order_id: None,
            store_account_id: None,
            is_trial: false,
            price: None,
            kind: Some(ProductKind::Consumable),
            linked_purchase_token: None,
            acknowledged: None,
            consumed: None,
            subscription_status: None,
            subscription_group: None,
            raw: serde_json::Value::Null,
            finish_withheld: false,
            latest_receipt: None,
        },
        app_id: app.clone(),
        user_id: user.clone(),
        binding_reason: BindingReason::CreatedAtVerification,
        trial_group: None,
        subscription: None,
    }
}

async fn confirmed(storage: &Storage) -> i64 {
    let row = storage
        .connection()
        .query_one(Statement::from_string(
            storage.backend(),
            "SELECT COUNT(*) AS n FROM orders WHERE state = 'CONFIRMED'".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

fn replica(db_url: &str, delivery_url: &str) -> RunningBinary {
    let mut command = Command::new(env!("CARGO_BIN_EXE_iap-scheduler"));
    command
        .env("IAP_DATABASE_URL", db_url)
        .env("IAP_SCHEDULER_HTTP_LISTEN", "127.0.0.1:0")
        .env("IAP_SCHEDULER_DELIVERY_URL", delivery_url)
        .env("IAP_SCHEDULER_SWEEP_INTERVAL_MS", "100")
        .env("IAP_SCHEDULER_SWEEP_BATCH", "40")
        .env("IAP_SCHEDULER_SWEEP_CONCURRENCY", "8")
        .env("IAP_SCHEDULER_SWEEP_HOLD_MS", "2000")
        .env("IAP_TELEMETRY_LOG_FORMAT", "json");
    RunningBinary::spawn(command)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_killed_and_restarted_deliver_every_stuck_order_once() {
    iap_test_support::init_tracing();
    let db = TestDatabase::create().await;
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    storage.migrate().await.unwrap();
    let app = AppId::parse("com.example.game").unwrap();
    for i in 0..ORDERS {
        let user = UserId::parse(format!("stuck-{}", i % 100)).unwrap();
        storage
            .record_payment(paid_apple_purchase(i, &user, &app))
            .await
            .unwrap();
    }

    let backlog = storage.backlog().await.unwrap();
    assert_eq!(
        (backlog.undelivered, backlog.unconfirmed),
        (ORDERS as u64, 0)
    );
    assert!(backlog.oldest_undelivered_paid_at.is_some());

    // The delivery service the replicas call, with the reference game server behind it.
    let game = iap_game_server::spawn(
        ([127, 0, 0, 1], 0).into(),
        iap_game_server::Ledger::in_memory(),
    )
    .await
    .unwrap();
    game.faults().set_reply_delay(Duration::from_millis(5));
    let settings = Settings::from_toml(&format!(
        "[delivery]\ngame_server_url = \"{}\"\ncall_deadline_ms = 2000\n",
        game.endpoint()
    ))
    .unwrap();
    let delivery = iap_app::delivery::Delivery::new(
        storage.clone(),
        LockBackend::from_settings(&settings).unwrap(),
        iap_app::delivery::game_server(&settings).unwrap(),
        iap_app::delivery::store_confirmers(&settings).unwrap(),
        settings.delivery.policy(),
    );
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let delivery_url = format!("http://{}", grpc.local_addr().unwrap());
    let shutdown = Shutdown::new();
    tokio::spawn(iap_app::delivery::serve(
        delivery,
        grpc,
        http,
        shutdown.clone(),
    ));

    let mut replicas: Vec<RunningBinary> = (0..REPLICAS)
        .map(|_| replica(db.url(), &delivery_url))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut kills = 0;
    let mut victim = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let done = confirmed(&storage).await;
        if done == ORDERS as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {done}/{ORDERS} confirmed after {kills} kills"
        );
        // SIGKILL one replica (dropping the handle kills it) and start a fresh one.
        replicas[victim] = replica(db.url(), &delivery_url);
        kills += 1;
        victim = (victim + 1) % REPLICAS;
    }
    drop(replicas);
    shutdown.trigger();
    let backlog = storage.backlog().await.unwrap();
    assert_eq!((backlog.undelivered, backlog.unconfirmed), (0, 0));
    assert_eq!(backlog.oldest_undelivered_paid_at, None);

    let ledger: Arc<iap_game_server::Ledger> = game.ledger().clone();
    let grants = ledger.grants();
    assert_eq!(grants.len(), ORDERS, "one grant effect per order");
    let mut orders: Vec<&str> = grants.iter().map(|g| g.order_id.as_str()).collect();
    orders.sort_unstable();
    orders.dedup();
    assert_eq!(orders.len(), ORDERS, "no order granted twice");
    let stats = ledger.stats();
    println!(
        "replicas: {ORDERS} stuck orders, {kills} replica kills, {} GrantItems calls, {} effects, {} duplicate calls",
        stats.grant_calls, stats.grant_effects, stats.duplicate_grant_calls
    );
}
