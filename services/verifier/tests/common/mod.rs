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
    /// `/metrics` (`verifier.metrics_listen`).
    pub(crate) metrics: SocketAddr,
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
    Settings::from_toml(toml).unwrap()
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
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (grpc_addr, http_addr) = (grpc.local_addr().unwrap(), http.local_addr().unwrap());
    let metrics_addr = metrics.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let stores = iap_app::verifier::store_verifiers(&settings).unwrap();
    let verifier = iap_app::verifier::Verifier::new(storage, catalog, stores);
    let task = tokio::spawn(iap_app::verifier::serve_with_metrics(
        verifier,
        iap_app::verifier::Listeners { grpc, http },
        Some(metrics),
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
        metrics: metrics_addr,
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

#[allow(unused_imports)]
pub(crate) use iap_test_support::emulator::{Emulator, HUAWEI_APP};
