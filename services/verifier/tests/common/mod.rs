//! Starts a verifier in-process on port 0 against a fresh PostgreSQL database.

// Each test binary uses a different part of this harness.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use iap_runtime::{Settings, Shutdown};
use iap_storage::{PoolOptions, Storage};
use iap_test_support::TestDatabase;
use tokio::net::TcpListener;
use tonic::transport::Channel;

pub(crate) const APP: &str = "com.example.game";

pub(crate) struct RunningVerifier {
    pub(crate) grpc: SocketAddr,
    pub(crate) http: SocketAddr,
    pub(crate) channel: Channel,
    pub(crate) shutdown: Shutdown,
    pub(crate) task: tokio::task::JoinHandle<Result<(), iap_runtime::StartupError>>,
    pub(crate) _db: TestDatabase,
}

pub(crate) fn test_settings() -> Settings {
    settings_from(&format!(
        r#"
        [apps."{APP}"]
        max_open_orders_per_user = 3
        [apps."{APP}".products.gems_100]
        kind = "consumable"
        max_quantity = 10
        [apps."{APP}".products.premium_monthly]
        kind = "auto_renewable"
        "#
    ))
}

pub(crate) fn settings_from(toml: &str) -> Settings {
    let dir = std::env::temp_dir().join(format!(
        "iap-verifier-test-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("iap.toml");
    std::fs::write(&file, toml).unwrap();
    let settings = Settings::load(Some(&file)).unwrap();
    let _ = std::fs::remove_dir_all(dir);
    settings
}

pub(crate) async fn start() -> RunningVerifier {
    start_with(test_settings()).await
}

pub(crate) async fn start_with(settings: Settings) -> RunningVerifier {
    iap_test_support::init_tracing();
    let db = TestDatabase::create().await;
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    storage.migrate().await.unwrap();
    let catalog = Arc::new(settings.catalog().unwrap());
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (grpc_addr, http_addr) = (grpc.local_addr().unwrap(), http.local_addr().unwrap());
    let shutdown = Shutdown::new();
    let stores = iap_verifier::store_verifiers(&settings).unwrap();
    let verifier = iap_verifier::Verifier::new(storage, catalog, stores);
    let task = tokio::spawn(iap_verifier::serve(
        verifier,
        iap_verifier::Listeners { grpc, http },
        shutdown.clone(),
    ));
    let channel = Channel::from_shared(format!("http://{grpc_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    RunningVerifier {
        grpc: grpc_addr,
        http: http_addr,
        channel,
        shutdown,
        task,
        _db: db,
    }
}

/// A plain HTTP/1.0 GET, enough for the operations endpoints.
pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Runs `SELECT COUNT(*) ... WHERE condition` against the verifier's database.
pub(crate) async fn count_rows(verifier: &RunningVerifier, table: &str, condition: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let storage = Storage::connect(verifier._db.url(), &PoolOptions::default())
        .await
        .unwrap();
    let row = storage
        .connection()
        .query_one(Statement::from_string(
            storage.backend(),
            format!("SELECT COUNT(*) AS n FROM {table} WHERE {condition}"),
        ))
        .await
        .unwrap()
        .unwrap();
    let n: i64 = row.try_get("", "n").unwrap();
    storage.close().await;
    n
}

/// An `iap-emulator` on a free port, with the Google and Huawei settings that point at it.
pub(crate) struct Emulator {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
}

pub(crate) const HUAWEI_APP: &str = "102932647";

impl Emulator {
    pub(crate) async fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(iap_emulator::serve(
            listener,
            iap_emulator::EmulatorConfig::default(),
            std::future::pending(),
        ));
        Self {
            base,
            http: reqwest::Client::new(),
        }
    }

    pub(crate) async fn get_json(&self, path: &str) -> serde_json::Value {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub(crate) async fn post_json(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let reply = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_success(), "{path}: {}", reply.status());
        reply.json().await.unwrap_or(serde_json::Value::Null)
    }

    /// `[apps.<APP>.google]` and `[apps.<APP>.huawei]` pointing at this emulator.
    pub(crate) async fn store_settings(&self) -> String {
        let base = &self.base;
        let account = self
            .http
            .get(format!("{base}/emulator/google/service-account.json"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let key = self
            .get_json(&format!("/emulator/google/apps/{APP}/license-key"))
            .await;
        let huawei = self
            .get_json(&format!("/emulator/huawei/apps/{HUAWEI_APP}/credentials"))
            .await;
        use base64::Engine;
        let apple_root = base64::engine::general_purpose::STANDARD.encode(
            self.http
                .get(format!("{base}/emulator/apple/root.der"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap(),
        );
        format!(
            r#"
            [apps."{APP}".apple]
            bundle_id = "{APP}"
            trust_apple_root = false
            extra_roots_base64 = ["{apple_root}"]
            [apps."{APP}".google]
            package_name = "{APP}"
            service_account_json = '''{account}'''
            license_key_base64 = "{}"
            api_root_url = "{base}/google/"
            [apps."{APP}".huawei]
            app_id = "{HUAWEI_APP}"
            client_secret = "{}"
            public_key_base64 = "{}"
            token_url = "{base}/huawei/oauth2/v3/token"
            orders_root_url = "{base}/huawei/orders"
            subscriptions_root_url = "{base}/huawei/subscr"
            "#,
            key["public_key_base64"].as_str().unwrap(),
            huawei["client_secret"].as_str().unwrap(),
            huawei["public_key_base64"].as_str().unwrap()
        )
    }
}
