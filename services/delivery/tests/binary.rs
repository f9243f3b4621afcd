//! The real `iap-delivery` binary: starts against PostgreSQL, serves health and metrics, drains
//! on SIGTERM with exit code 0.

use std::process::Command;
use std::time::Duration;

use iap_test_support::TestDatabase;
use iap_test_support::process::{RunningBinary, json_field};

// Multi-threaded: the blocking wait for the child's exit must not stall the client's
// connection task, which has to see the server's GOAWAY.
#[tokio::test(flavor = "multi_thread")]
async fn starts_serves_health_and_stops_on_sigterm() {
    let db = TestDatabase::create().await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_iap-delivery"));
    command
        .env("IAP_DATABASE_URL", db.url())
        .env("IAP_DATABASE_MIGRATE_ON_START", "true")
        .env("IAP_DELIVERY_GRPC_LISTEN", "127.0.0.1:0")
        .env("IAP_DELIVERY_HTTP_LISTEN", "127.0.0.1:0")
        .env("IAP_DELIVERY_GAME_SERVER_URL", "http://127.0.0.1:9")
        .env("IAP_REDIS_URL", iap_test_support::redis_url())
        .env(
            "IAP_REDIS_KEY_PREFIX",
            iap_test_support::TestRedis::new().prefix,
        )
        .env("IAP_TELEMETRY_LOG_FORMAT", "json");
    let mut process = RunningBinary::spawn(command);
    let line = process.wait_for_line("iap-delivery listening", Duration::from_secs(30));
    let grpc = json_field(&line, "grpc").expect("grpc address logged");
    let http = json_field(&line, "http").expect("http address logged");

    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        reply.into_inner().status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    let body = reqwest_free_get(&http, "/readyz").await;
    assert!(
        body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"),
        "{body}"
    );

    let (status, output) = process.terminate();
    assert!(
        status.success(),
        "exit {status:?}; output:\n{}",
        output.join("\n")
    );
}

async fn reqwest_free_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
}

// Redis is optional: when it is unreachable the process still starts and stays ready, saying
// that it delivers on the database fence alone.
#[tokio::test(flavor = "multi_thread")]
async fn unreachable_redis_degrades_but_stays_ready() {
    let db = TestDatabase::create().await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_iap-delivery"));
    command
        .env("IAP_DATABASE_URL", db.url())
        .env("IAP_DELIVERY_GRPC_LISTEN", "127.0.0.1:0")
        .env("IAP_DELIVERY_HTTP_LISTEN", "127.0.0.1:0")
        .env("IAP_DELIVERY_GAME_SERVER_URL", "http://127.0.0.1:9")
        .env("IAP_REDIS_URL", "redis://127.0.0.1:1/0")
        .env("IAP_TELEMETRY_LOG_FORMAT", "json");
    let mut process = RunningBinary::spawn(command);
    let line = process.wait_for_line("iap-delivery listening", Duration::from_secs(30));
    let http = json_field(&line, "http").expect("http address logged");
    let body = reqwest_free_get(&http, "/readyz").await;
    assert!(body.contains(" 200 "), "{body}");
    assert!(body.contains("redis down"), "{body}");
    let (status, _) = process.terminate();
    assert!(status.success());
}
