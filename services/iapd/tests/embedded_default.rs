//! `iapd` with no configuration: a SQLite file in the working directory, migrations applied, the
//! demo catalog, a banner with a ready-to-paste grpcurl command; CreateOrder/GetOrder work and
//! SIGTERM drains with exit code 0. Data survives a restart.

use std::process::Command;
use std::time::Duration;

use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_test_support::process::RunningBinary;

fn start(dir: &std::path::Path) -> (RunningBinary, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_iapd"));
    command
        .current_dir(dir)
        // Port 0 so parallel tests never collide; the banner prints the real address.
        .env("IAP_VERIFIER_GRPC_LISTEN", "127.0.0.1:0")
        .env("IAP_VERIFIER_HTTP_LISTEN", "127.0.0.1:0")
        .env("IAP_VERIFIER_METRICS_LISTEN", "127.0.0.1:0")
        .env("IAP_EMULATOR_LISTEN", "127.0.0.1:0");
    let mut process = RunningBinary::spawn(command);
    let line = process.wait_for_line("gRPC ", Duration::from_secs(30));
    let emulator = process.wait_for_line("emulator ", Duration::from_secs(5));
    let emulator = emulator
        .split_whitespace()
        .nth(1)
        .expect("emulator URL")
        .to_owned();
    assert!(emulator.starts_with("http://127.0.0.1:"), "{emulator}");
    let addr = line
        .split_whitespace()
        .nth(1)
        .expect("address after gRPC")
        .to_owned();
    let grpcurl = process.wait_for_line("grpcurl -plaintext -d", Duration::from_secs(5));
    assert!(
        grpcurl.contains(&addr) && grpcurl.contains("iap.v1.OrderService/CreateOrder"),
        "{grpcurl}"
    );
    (process, addr, emulator)
}

// Multi-threaded: the blocking wait for the child's exit must not stall the client's
// connection task, which has to see the server's GOAWAY.
#[tokio::test(flavor = "multi_thread")]
async fn embedded_default_serves_orders_from_a_sqlite_file() {
    let dir = std::env::temp_dir().join(format!("iapd-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();

    let (process, addr, emulator) = start(&dir);
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = OrderServiceClient::new(channel.clone());
    let created = client
        .create_order(pb::CreateOrderRequest {
            app_id: "com.example.game".into(),
            user_id: "player-1".into(),
            product_id: "gems_100".into(),
            platform: pb::Platform::Apple.into(),
            quantity: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let order_id = created.order.unwrap().order_id;

    // Bought at the embedded emulator's App Store, verified: the demo app trusts its root.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bought: serde_json::Value = reqwest::Client::new()
        .post(format!("{emulator}/emulator/apple/purchases"))
        .json(
            &serde_json::json!({ "bundle_id": "com.example.game", "product_id": "gems_100",
            "product_type": "Consumable", "app_account_token": order_id }),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut verification =
        iap_proto::v1::verification_service_client::VerificationServiceClient::new(channel.clone());
    let verified = verification
        .verify_purchase(pb::VerifyPurchaseRequest {
            app_id: "com.example.game".into(),
            user_id: "player-1".into(),
            order_id: String::new(),
            purchase: Some(pb::verify_purchase_request::Purchase::Apple(
                pb::ApplePurchase {
                    proof: Some(pb::apple_purchase::Proof::SignedTransaction(
                        bought["signed_transaction"].as_str().unwrap().into(),
                    )),
                    ..Default::default()
                },
            )),
        })
        .await
        .unwrap()
        .into_inner();
    // The fast path granted it through the embedded reference game server at once; App Store
    // purchases have nothing to confirm server-side, so the order is CONFIRMED.
    assert_eq!(
        verified.order.as_ref().unwrap().state(),
        pb::OrderState::Confirmed
    );
    assert_eq!(verified.delivery_state(), pb::DeliveryState::Confirmed);
    let stopping = std::time::Instant::now();
    let (status, output) = process.terminate();
    assert!(status.success(), "exit {status:?}:\n{}", output.join("\n"));
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "drain took {:?}",
        stopping.elapsed()
    );
    assert!(
        dir.join("iapd.db").exists(),
        "the SQLite file lives in the working directory"
    );

    // Restarted on the same file, the order is still there.
    let (process, addr, _) = start(&dir);
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let fetched = OrderServiceClient::new(channel)
        .get_order(pb::GetOrderRequest {
            order_id: order_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let fetched = fetched.order.unwrap();
    assert_eq!(fetched.order_id, order_id);
    assert_eq!(
        fetched.state(),
        pb::OrderState::Confirmed,
        "the payment and its delivery survived the restart"
    );
    assert!(
        dir.join("iapd-game-ledger.jsonl").exists(),
        "the reference game server's ledger lives beside the database"
    );
    let (status, _) = process.terminate();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn closed_database_port_exits_non_zero_with_one_line() {
    // Its own working directory: the embedded emulator saves its state there before the
    // database is tried.
    let dir = std::env::temp_dir().join(format!("iapd-closed-db-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_iapd"))
        .current_dir(&dir)
        .env("IAP_DATABASE_URL", "postgres://postgres@127.0.0.1:1/iap")
        .env("IAP_DATABASE_CONNECT_TIMEOUT", "1s")
        .env("IAP_DATABASE_ACQUIRE_TIMEOUT", "1s")
        .env("IAP_VERIFIER_GRPC_LISTEN", "127.0.0.1:0")
        .env("IAP_VERIFIER_HTTP_LISTEN", "127.0.0.1:0")
        .env("IAP_VERIFIER_METRICS_LISTEN", "127.0.0.1:0")
        .env("IAP_EMULATOR_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(output.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<_> = stderr.lines().filter(|l| l.starts_with("iapd:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("database unreachable") && errors[0].contains("127.0.0.1:1"),
        "{stderr}"
    );
}
