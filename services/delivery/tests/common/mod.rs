//! A whole system in one test process: a fresh PostgreSQL database, the emulator (Google Play),
//! the reference game server with its ledger, the verifier (to make real paid orders) and the
//! delivery role on port-0 listeners.

// Each test binary uses a different part of this harness.
#![allow(dead_code)]

use std::sync::Arc;

use iap_domain::usecases::deliver::Deliveries;
use iap_domain::{Order, OrderId};
use iap_game_server::GameServerHandle;
use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_proto::v1::verification_service_client::VerificationServiceClient;
use iap_runtime::lock::LockBackend;
use iap_runtime::{Settings, Shutdown};
use iap_storage::{PoolOptions, Storage};
use iap_test_support::TestDatabase;
use iap_test_support::emulator::Emulator;
use serde_json::json;
use tokio::net::TcpListener;
use tonic::transport::Channel;

pub(crate) const APP: &str = "com.example.game";

pub(crate) struct World {
    /// The database URL (a fresh database on the shared server, or a private server's).
    pub(crate) db_url: String,
    _db: Option<TestDatabase>,
    pub(crate) storage: Storage,
    pub(crate) store: Emulator,
    pub(crate) game: GameServerHandle,
    pub(crate) settings: Settings,
    /// The TOML the settings came from (for child processes).
    pub(crate) toml: String,
    pub(crate) delivery: iap_app::delivery::Delivery,
    /// DeliveryService.
    pub(crate) delivery_channel: Channel,
    verifier_channel: Channel,
    /// The verifier's HTTP port (store notifications).
    pub(crate) verifier_http: std::net::SocketAddr,
    /// The notification inbox's handler (run it with `run_once`).
    pub(crate) notifications:
        Arc<iap_domain::usecases::handle_notifications::NotificationHandler<Storage>>,
    pub(crate) shutdown: Shutdown,
}

/// Settings (as TOML) with short timings, so retries and backoff happen within a test.
pub(crate) async fn settings_toml(
    store: &Emulator,
    game_url: &str,
    redis_url: Option<&str>,
) -> String {
    let redis = match redis_url {
        Some(url) => format!(
            "[redis]\nurl = \"{url}\"\nkey_prefix = \"{}\"\n",
            iap_test_support::TestRedis::new().prefix
        ),
        None => String::new(),
    };
    format!(
        r#"
        {redis}
        [delivery]
        game_server_url = "{game_url}"
        max_attempts = 3
        call_deadline_ms = 1000
        calls_per_attempt = 2
        backoff_base_ms = 20
        backoff_max_ms = 100
        lock_ttl_ms = 3000
        sweep_interval_ms = 0
        [apps."{APP}"]
        [apps."{APP}".products.gems_100]
        kind = "consumable"
        max_quantity = 10
        [apps."{APP}".products.no_ads]
        kind = "non_consumable"
        [apps."{APP}".products.vip_monthly]
        kind = "auto_renewable"
        subscription_group = "vip"
        [apps."{APP}".products.vip_yearly]
        kind = "auto_renewable"
        subscription_group = "vip"
        {}
        "#,
        store.store_settings_for(APP).await
    )
}

impl World {
    /// A world whose delivery lock is on the shared test Redis.
    pub(crate) async fn start() -> Self {
        Self::start_with_redis(Some(&iap_test_support::redis_url())).await
    }

    /// A world whose delivery lock is on `redis` (or in process when `None`).
    pub(crate) async fn start_with_redis(redis: Option<&str>) -> Self {
        let db = TestDatabase::create().await;
        let url = db.url().to_owned();
        Self::start_on(url, Some(db), redis).await
    }

    /// A world on the database at `db_url`, with its delivery lock on `redis`.
    pub(crate) async fn start_on(
        db_url: String,
        db: Option<TestDatabase>,
        redis: Option<&str>,
    ) -> Self {
        iap_test_support::init_tracing();
        let storage = Storage::connect(&db_url, &PoolOptions::default())
            .await
            .unwrap();
        storage.migrate().await.unwrap();
        let store = Emulator::start().await;
        let game = iap_game_server::spawn(
            ([127, 0, 0, 1], 0).into(),
            iap_game_server::Ledger::in_memory(),
        )
        .await
        .unwrap();
        let toml = settings_toml(&store, &game.endpoint(), redis).await;
        let settings = Settings::from_toml(&toml).unwrap();
        let shutdown = Shutdown::new();

        let delivery = iap_app::delivery::Delivery::new(
            storage.clone(),
            LockBackend::from_settings(&settings).unwrap(),
            iap_app::delivery::game_server(&settings).unwrap(),
            iap_app::delivery::store_confirmers(&settings).unwrap(),
            settings.delivery.policy(),
        );
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let delivery_addr = grpc.local_addr().unwrap();
        tokio::spawn(iap_app::delivery::serve(
            delivery.clone(),
            grpc,
            http,
            shutdown.clone(),
        ));

        // The verifier without a fast path: tests decide when delivery runs.
        let catalog = Arc::new(settings.catalog().unwrap());
        let stores = iap_app::verifier::store_verifiers(&settings).unwrap();
        let verifier = iap_app::verifier::Verifier::new(storage.clone(), catalog, stores)
            .with_notifications(iap_app::verifier::notification_decoders(&settings).unwrap());
        let listeners = iap_app::verifier::Listeners {
            grpc: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            http: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let verifier_addr = listeners.grpc.local_addr().unwrap();
        let verifier_http = listeners.http.local_addr().unwrap();
        let notifications = iap_app::delivery::notification_handler(
            &delivery,
            &settings,
            &settings.store_clients().unwrap(),
            None,
        )
        .unwrap();
        tokio::spawn(iap_app::verifier::serve(
            verifier,
            listeners,
            shutdown.clone(),
        ));

        Self {
            db_url,
            _db: db,
            storage,
            store,
            game,
            settings,
            toml,
            delivery,
            delivery_channel: connect(delivery_addr).await,
            verifier_http,
            notifications,
            verifier_channel: connect(verifier_addr).await,
            shutdown,
        }
    }

    pub(crate) fn verifier_channel(&self) -> Channel {
        self.verifier_channel.clone()
    }

    pub(crate) fn deliveries(&self) -> Arc<Deliveries<Storage>> {
        self.delivery.deliveries()
    }

    /// A purchase ready to verify: CreateOrder, then a purchase at the emulator's Google Play
    /// carrying the order's ids.
    pub(crate) async fn purchase(&self, user: &str, product: &str) -> pb::VerifyPurchaseRequest {
        let created = OrderServiceClient::new(self.verifier_channel.clone())
            .create_order(pb::CreateOrderRequest {
                app_id: APP.into(),
                user_id: user.into(),
                product_id: product.into(),
                platform: pb::Platform::Google.into(),
                quantity: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let binding = created.binding.unwrap();
        let made = self
            .store
            .post_json(
                "/emulator/google/purchases",
                json!({ "package_name": APP, "product_id": product, "kind": "inapp",
                    "obfuscated_account_id": binding.google_obfuscated_account_id,
                    "obfuscated_profile_id": binding.google_obfuscated_profile_id }),
            )
            .await;
        pb::VerifyPurchaseRequest {
            app_id: APP.into(),
            user_id: user.into(),
            order_id: String::new(),
            purchase: Some(pb::verify_purchase_request::Purchase::Google(
                pb::GooglePurchase {
                    purchase_token: made["purchase_token"].as_str().unwrap().into(),
                    product_id: product.into(),
                    original_json: made["original_json"].as_str().unwrap().into(),
                    signature: made["signature"].as_str().unwrap().into(),
                },
            )),
        }
    }

    /// VerifyPurchase through gRPC.
    pub(crate) async fn verify(
        &self,
        request: pb::VerifyPurchaseRequest,
    ) -> Result<pb::VerifyPurchaseResponse, tonic::Status> {
        VerificationServiceClient::new(self.verifier_channel.clone())
            .verify_purchase(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// A real paid order (see [`World::purchase`]), verified. Returns the PAID order's id.
    pub(crate) async fn paid_order(&self, user: &str, product: &str) -> OrderId {
        let request = self.purchase(user, product).await;
        let order = self.verify(request).await.unwrap().order.unwrap();
        assert_eq!(order.state(), pb::OrderState::Paid);
        OrderId::parse(&order.order_id).unwrap()
    }

    pub(crate) async fn order(&self, id: OrderId) -> Order {
        use iap_domain::ports::OrderRepository;
        self.storage.get_order(id).await.unwrap().unwrap()
    }

    /// Rows of `table` matching `condition`.
    pub(crate) async fn count(&self, table: &str, condition: &str) -> i64 {
        use sea_orm::{ConnectionTrait, Statement};
        let row = self
            .storage
            .connection()
            .query_one(Statement::from_string(
                self.storage.backend(),
                format!("SELECT COUNT(*) AS n FROM {table} WHERE {condition}"),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get("", "n").unwrap()
    }

    /// Runs one SQL statement (a test moving time or state by hand).
    pub(crate) async fn execute(&self, sql: &str) {
        use sea_orm::{ConnectionTrait, Statement};
        self.storage
            .connection()
            .execute(Statement::from_string(
                self.storage.backend(),
                sql.to_owned(),
            ))
            .await
            .unwrap();
    }

    /// Points the emulator's notifications of `store` (`apple`, `google`, `huawei`) at the
    /// verifier's receiver, every one delivered `1 + duplicate` times.
    pub(crate) async fn notify_here(&self, store: &str, duplicate: u32) {
        let target = format!("http://{}/notifications/{store}", self.verifier_http);
        let http = reqwest::Client::new();
        http.put(format!(
            "{}/emulator/notifications/targets/{store}",
            self.store.base
        ))
        .json(&json!({ "url": target }))
        .send()
        .await
        .unwrap();
        self.notification_mode(json!({ "duplicate": duplicate }))
            .await;
    }

    /// Sets the emulator's delivery mode (duplicates, delay, newest-first batches).
    pub(crate) async fn notification_mode(&self, mode: serde_json::Value) {
        reqwest::Client::new()
            .put(format!("{}/emulator/notifications/mode", self.store.base))
            .json(&mode)
            .send()
            .await
            .unwrap();
    }

    /// Waits until the emulator has pushed `count` notifications in all.
    pub(crate) async fn pushed(&self, count: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let deliveries = self
                .store
                .get_json("/emulator/notifications/deliveries")
                .await;
            let done = deliveries.as_array().map_or(0, Vec::len);
            if done >= count {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "only {done} notifications pushed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Works the notification inbox until it is empty.
    pub(crate) async fn settle(&self) {
        for _ in 0..5 {
            self.notifications.run_once(100).await.unwrap();
        }
    }

    /// Runs the sweeper until nothing is due (or `passes` run out).
    pub(crate) async fn sweep_until_quiet(&self, passes: usize) {
        let sweeper = self.delivery.sweeper(&self.settings);
        for _ in 0..passes {
            let report = sweeper.run_once().await.unwrap();
            if report.reserved == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(120)).await;
        }
    }
}

pub(crate) async fn connect(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}
