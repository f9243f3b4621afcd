//! `iapd --demo`: the real binary buys once at each embedded store, and every order ends up
//! granted exactly once in the reference game server's ledger, printed with grpcurl commands.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use iap_test_support::process::RunningBinary;

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iapd-demo-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn demo(dir: &Path, extra: &[&str]) -> RunningBinary {
    let mut command = Command::new(env!("CARGO_BIN_EXE_iapd"));
    command
        .arg("--demo")
        .args(extra)
        .current_dir(dir)
        .env("IAP_VERIFIER_GRPC_LISTEN", "127.0.0.1:0")
        .env("IAP_VERIFIER_HTTP_LISTEN", "127.0.0.1:0")
        .env("IAP_VERIFIER_METRICS_LISTEN", "127.0.0.1:0")
        .env("IAP_EMULATOR_LISTEN", "127.0.0.1:0");
    RunningBinary::spawn(command)
}

/// The table row of one store: `store order_id product state reference`.
struct Row {
    order_id: String,
    state: String,
    reference: String,
}

fn row(line: &str, store: &str) -> Row {
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&store), "{line}");
    assert_eq!(
        fields.len(),
        5,
        "store, order, product, state, reference: {line}"
    );
    Row {
        order_id: fields[1].to_owned(),
        state: fields[3].to_owned(),
        reference: fields[4].to_owned(),
    }
}

#[test]
fn demo_buys_once_per_store_and_each_order_is_granted_once() {
    let dir = scratch_dir();
    let mut process = demo(&dir, &["--exit"]);
    process.wait_for_line("Demo: one purchase per store", Duration::from_secs(90));
    let rows: Vec<Row> = ["apple", "google", "huawei"]
        .iter()
        .map(|store| {
            let line = process.wait_for_line(&format!("  {store} "), Duration::from_secs(5));
            row(&line, store)
        })
        .collect();
    let get_order = process.wait_for_line("iap.v1.OrderService/GetOrder", Duration::from_secs(5));
    assert!(
        get_order.starts_with("  grpcurl -plaintext -d '{\"order_id\":\""),
        "{get_order}"
    );
    assert!(get_order.contains(&rows[0].order_id), "{get_order}");
    let status = process.wait_exit(Duration::from_secs(30));
    assert!(
        status.success(),
        "--demo --exit ends with 0 when all three were delivered"
    );

    let ledger = iap_game_server::Ledger::open(dir.join("iapd-game-ledger.jsonl")).unwrap();
    for row in &rows {
        // Google and Huawei are confirmed at the store after the grant; the App Store has
        // nothing to confirm server-side, so all three end CONFIRMED.
        assert_eq!(row.state, "CONFIRMED", "order {}", row.order_id);
        assert!(!row.reference.is_empty());
        assert_eq!(
            ledger.effects_for_order(&row.order_id),
            1,
            "order {} granted exactly once",
            row.order_id
        );
    }
    assert_eq!(
        ledger.balance("com.example.game", "demo-player", "gems_100"),
        3
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn demo_without_exit_keeps_serving_until_sigterm() {
    let dir = scratch_dir();
    let mut process = demo(&dir, &[]);
    process.wait_for_line("  huawei ", Duration::from_secs(90));
    process.wait_for_line("The demo keeps running", Duration::from_secs(5));
    let (status, output) = process.terminate();
    assert!(status.success(), "{}", output.join("\n"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn exit_without_demo_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_iapd"))
        .arg("--exit")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--demo"),
        "clap names the missing flag"
    );
}
