//! The real `iap-scheduler` binary: starts against PostgreSQL, answers `/readyz` and `/metrics`,
//! drains on SIGTERM with exit code 0; an unreachable database is a one-line error, exit 69.

use std::process::Command;
use std::time::Duration;

use iap_test_support::TestDatabase;
use iap_test_support::process::{RunningBinary, json_field};

async fn get(addr: &str, path: &str) -> String {
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

// Multi-threaded: the blocking wait for the child's exit must not stall the client's
// connection task, which has to see the server's GOAWAY.
#[tokio::test(flavor = "multi_thread")]
async fn starts_serves_readiness_and_stops_on_sigterm() {
    let db = TestDatabase::create().await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_iap-scheduler"));
    command
        .env("IAP_DATABASE_URL", db.url())
        .env("IAP_DATABASE_MIGRATE_ON_START", "true")
        .env("IAP_SCHEDULER_HTTP_LISTEN", "127.0.0.1:0")
        .env("IAP_TELEMETRY_LOG_FORMAT", "json");
    let mut process = RunningBinary::spawn(command);
    let line = process.wait_for_line("iap-scheduler listening", Duration::from_secs(30));
    let http = json_field(&line, "http").expect("http address logged");
    assert!(get(&http, "/readyz").await.contains(" 200 "));
    assert!(get(&http, "/metrics").await.contains(" 200 "));
    let (status, output) = process.terminate();
    assert!(
        status.success(),
        "exit {status:?}; output:\n{}",
        output.join("\n")
    );
}

#[test]
fn unreachable_database_is_reported_in_one_line() {
    let output = Command::new(env!("CARGO_BIN_EXE_iap-scheduler"))
        .env("IAP_DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .env("IAP_DATABASE_CONNECT_TIMEOUT", "1s")
        .env("IAP_DATABASE_ACQUIRE_TIMEOUT", "1s")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("iap-scheduler: database unreachable")),
        "{stderr}"
    );
}
