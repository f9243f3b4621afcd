//! The configuration `iap-emulator --print-config` writes (what docker-compose.yml gives the
//! services) is enough for the split services: `iap-verifier`, `iap-delivery` and
//! `iap-scheduler`, started as processes from it, complete one purchase per store, granted once.
//!
//! The services' binaries are the ones beside this test's (`target/<profile>/`); `cargo nextest
//! run --workspace` builds them for their own packages' tests.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_proto::v1::verification_service_client::VerificationServiceClient;
use iap_test_support::TestDatabase;
use iap_test_support::process::RunningBinary;
use serde_json::{Value, json};
use tonic::transport::Channel;

const APP: &str = iap_emulator::DEMO_APP;

fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    exe.parent()
        .and_then(Path::parent)
        .expect("profile directory")
        .to_path_buf()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn ready(http: &reqwest::Client, port: u16, who: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let url = format!("http://127.0.0.1:{port}/readyz");
        if let Ok(reply) = http.get(&url).send().await
            && reply.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "{who} is not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn control(http: &reqwest::Client, emulator: &str, path: &str, body: Value) -> Value {
    let reply = http
        .post(format!("{emulator}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(reply.status().is_success(), "{path}: {}", reply.status());
    reply.json().await.unwrap()
}

fn text(made: &Value, field: &str) -> String {
    made[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {made}"))
        .to_owned()
}

/// Buys `gems_100` at the emulator for `binding`, as the store SDK would hand it to the game.
async fn buy(
    http: &reqwest::Client,
    emulator: &str,
    platform: pb::Platform,
    binding: &pb::PurchaseBinding,
) -> pb::verify_purchase_request::Purchase {
    use pb::verify_purchase_request::Purchase;
    match platform {
        pb::Platform::Apple => {
            let made = control(
                http,
                emulator,
                "/emulator/apple/purchases",
                json!({ "bundle_id": APP, "product_id": "gems_100", "product_type": "Consumable",
                    "app_account_token": binding.apple_app_account_token }),
            )
            .await;
            Purchase::Apple(pb::ApplePurchase {
                proof: Some(pb::apple_purchase::Proof::SignedTransaction(text(
                    &made,
                    "signed_transaction",
                ))),
                ..Default::default()
            })
        }
        pb::Platform::Google => {
            let made = control(
                http,
                emulator,
                "/emulator/google/purchases",
                json!({ "package_name": APP, "product_id": "gems_100", "kind": "inapp",
                    "obfuscated_account_id": binding.google_obfuscated_account_id,
                    "obfuscated_profile_id": binding.google_obfuscated_profile_id }),
            )
            .await;
            Purchase::Google(pb::GooglePurchase {
                purchase_token: text(&made, "purchase_token"),
                product_id: "gems_100".into(),
                original_json: text(&made, "original_json"),
                signature: text(&made, "signature"),
            })
        }
        _ => {
            let made = control(
                http,
                emulator,
                "/emulator/huawei/purchases",
                json!({ "app_id": iap_emulator::DEMO_HUAWEI_APP_ID, "product_id": "gems_100",
                    "kind": 0, "developer_payload": binding.huawei_developer_payload }),
            )
            .await;
            Purchase::Huawei(pb::HuaweiPurchase {
                purchase_token: text(&made, "purchase_token"),
                product_id: "gems_100".into(),
                in_app_purchase_data: text(&made, "in_app_purchase_data"),
                signature: text(&made, "data_signature"),
                signature_algorithm: text(&made, "signature_algorithm"),
            })
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_printed_configuration_completes_a_purchase_per_store_in_the_split_services() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bin = bin_dir();
    for binary in ["iap-verifier", "iap-delivery", "iap-scheduler"] {
        assert!(
            bin.join(binary).exists(),
            "{binary} is not built in {} (cargo build --bins)",
            bin.display()
        );
    }
    let compose = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docker-compose.yml"),
    )
    .unwrap();
    assert!(
        compose.contains("--print-config") && compose.contains("--state-file"),
        "docker-compose.yml configures the services from the emulator's printed configuration"
    );

    let dir = std::env::temp_dir().join(format!("iap-split-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("emulator-state.json");
    let emulator_port = free_port();
    let emulator = format!("http://127.0.0.1:{emulator_port}");
    // As docker-compose.yml does: print the configuration, then serve from the same state.
    let printed = Command::new(env!("CARGO_BIN_EXE_iap-emulator"))
        .args(["--print-config", "--public-url", &emulator, "--state-file"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(printed.status.success(), "{printed:?}");
    let config = dir.join("iap.toml");
    std::fs::write(&config, &printed.stdout).unwrap();
    let mut serving = Command::new(env!("CARGO_BIN_EXE_iap-emulator"));
    serving
        .args(["--listen", &format!("127.0.0.1:{emulator_port}")])
        .args(["--public-url", &emulator, "--state-file"])
        .arg(&state);
    let _emulator = RunningBinary::spawn(serving);

    let db = TestDatabase::create().await;
    let game = iap_game_server::spawn(
        ([127, 0, 0, 1], 0).into(),
        Arc::new(iap_game_server::Ledger::in_memory()),
    )
    .await
    .unwrap();
    let (verifier_grpc, verifier_http, delivery_grpc, delivery_http, scheduler_http) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let service = |binary: &str| {
        let mut command = Command::new(bin.join(binary));
        command
            .env("IAP_CONFIG", &config)
            .env("IAP_DATABASE_URL", db.url())
            .env(
                "IAP_VERIFIER_GRPC_LISTEN",
                format!("127.0.0.1:{verifier_grpc}"),
            )
            .env(
                "IAP_VERIFIER_HTTP_LISTEN",
                format!("127.0.0.1:{verifier_http}"),
            )
            .env("IAP_VERIFIER_METRICS_LISTEN", "127.0.0.1:0")
            .env(
                "IAP_VERIFIER_DELIVERY_URL",
                format!("http://127.0.0.1:{delivery_grpc}"),
            )
            .env(
                "IAP_DELIVERY_GRPC_LISTEN",
                format!("127.0.0.1:{delivery_grpc}"),
            )
            .env(
                "IAP_DELIVERY_HTTP_LISTEN",
                format!("127.0.0.1:{delivery_http}"),
            )
            .env("IAP_DELIVERY_GAME_SERVER_URL", game.endpoint())
            .env(
                "IAP_SCHEDULER_HTTP_LISTEN",
                format!("127.0.0.1:{scheduler_http}"),
            )
            .env(
                "IAP_SCHEDULER_DELIVERY_URL",
                format!("http://127.0.0.1:{delivery_grpc}"),
            );
        command
    };
    let http = reqwest::Client::new();
    let mut verifier = service("iap-verifier");
    verifier.env("IAP_DATABASE_MIGRATE_ON_START", "true");
    let _verifier = RunningBinary::spawn(verifier);
    ready(&http, verifier_http, "iap-verifier").await;
    let _delivery = RunningBinary::spawn(service("iap-delivery"));
    let _scheduler = RunningBinary::spawn(service("iap-scheduler"));
    ready(&http, delivery_http, "iap-delivery").await;
    ready(&http, scheduler_http, "iap-scheduler").await;

    let channel = Channel::from_shared(format!("http://127.0.0.1:{verifier_grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    for platform in [
        pb::Platform::Apple,
        pb::Platform::Google,
        pb::Platform::Huawei,
    ] {
        let user = format!("player-{}", platform.as_str_name().to_lowercase());
        let created = OrderServiceClient::new(channel.clone())
            .create_order(pb::CreateOrderRequest {
                app_id: APP.into(),
                user_id: user.clone(),
                product_id: "gems_100".into(),
                platform: platform.into(),
                quantity: 1,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{platform:?} CreateOrder: {e}"))
            .into_inner();
        let order_id = created.order.unwrap().order_id;
        let purchase = buy(&http, &emulator, platform, &created.binding.unwrap()).await;
        let verified = VerificationServiceClient::new(channel.clone())
            .verify_purchase(pb::VerifyPurchaseRequest {
                app_id: APP.into(),
                user_id: user,
                order_id: order_id.clone(),
                purchase: Some(purchase),
            })
            .await
            .unwrap_or_else(|e| panic!("{platform:?} VerifyPurchase: {e}"))
            .into_inner();
        assert!(verified.finish_transaction, "{platform:?}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = OrderServiceClient::new(channel.clone())
                .get_order(pb::GetOrderRequest {
                    order_id: order_id.clone(),
                })
                .await
                .unwrap()
                .into_inner()
                .order
                .unwrap()
                .state();
            if state == pb::OrderState::Confirmed {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{platform:?} order {order_id} is still {state:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            game.ledger().effects_for_order(&order_id),
            1,
            "{platform:?}: granted once"
        );
    }
    assert_eq!(game.ledger().stats().grant_effects, 3);
    let _ = std::fs::remove_dir_all(dir);
}
