//! `iapd`'s HTTP port takes the stores' notifications from the internet; `/metrics` is served on
//! `verifier.metrics_listen` instead, so that port never shows the process's counters.

use std::process::Command;
use std::time::Duration;

use iap_test_support::process::RunningBinary;

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_served_on_their_own_port_only() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("iapd-metrics-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_iapd"));
    command
        .current_dir(&dir)
        .env("IAP_VERIFIER_GRPC_LISTEN", "127.0.0.1:0")
        .env("IAP_VERIFIER_HTTP_LISTEN", "127.0.0.1:0")
        .env("IAP_VERIFIER_METRICS_LISTEN", "127.0.0.1:0")
        .env("IAP_EMULATOR_LISTEN", "127.0.0.1:0");
    let mut process = RunningBinary::spawn(command);
    let second = |line: String| line.split_whitespace().nth(1).unwrap().to_owned();
    let http = second(process.wait_for_line("HTTP ", Duration::from_secs(30)));
    let metrics = second(process.wait_for_line("metrics ", Duration::from_secs(5)));
    assert_ne!(http, metrics.trim_end_matches("/metrics"));

    let (code, page) = get(&metrics).await;
    assert_eq!(code, 200);
    assert!(page.contains("# HELP iap_"), "{page}");
    let (code, page) = get(&format!("{http}/metrics")).await;
    assert_eq!(code, 404, "the stores' port serves no metrics: {page}");
    assert!(!page.contains("iap_"), "{page}");
    assert_eq!(get(&format!("{http}/healthz")).await.0, 200);

    let (status, _) = process.terminate();
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(dir);
}
