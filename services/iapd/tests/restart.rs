//! `iapd` killed (SIGKILL) with purchases in flight and started again in the same directory: the
//! embedded emulator keeps its keys, roots and purchases beside `iapd.db`, so the clients' retries
//! verify what was bought before the kill, and every paid purchase is granted exactly once (read
//! from the reference game server's ledger file after the process stopped).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_proto::v1::verification_service_client::VerificationServiceClient;
use iap_test_support::process::RunningBinary;
use serde_json::{Value, json};
use tonic::transport::Channel;

const APP: &str = "com.example.game";
const HUAWEI_APP_ID: &str = "100000001";

struct Running {
    process: RunningBinary,
    channel: Channel,
    emulator: String,
}

async fn start(dir: &Path) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_iapd"));
    command
        .current_dir(dir)
        .env("IAP_VERIFIER_GRPC_LISTEN", "127.0.0.1:0")
        .env("IAP_VERIFIER_HTTP_LISTEN", "127.0.0.1:0")
        .env("IAP_VERIFIER_METRICS_LISTEN", "127.0.0.1:0")
        .env("IAP_EMULATOR_LISTEN", "127.0.0.1:0");
    let mut process = RunningBinary::spawn(command);
    let second = |line: String| line.split_whitespace().nth(1).unwrap().to_owned();
    let grpc = second(process.wait_for_line("gRPC ", Duration::from_secs(30)));
    let emulator = second(process.wait_for_line("emulator ", Duration::from_secs(5)));
    let channel = Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Running {
        process,
        channel,
        emulator,
    }
}

/// One player's purchase: the order, and what the store SDK handed the client.
#[derive(Clone)]
struct Bought {
    user: String,
    order_id: String,
    purchase: pb::verify_purchase_request::Purchase,
}

async fn control(emulator: &str, path: &str, body: Value) -> Value {
    let reply = reqwest::Client::new()
        .post(format!("{emulator}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(reply.status().is_success(), "{path}: {}", reply.status());
    reply.json().await.unwrap()
}

fn text(made: &Value, field: &str) -> String {
    made[field].as_str().unwrap().to_owned()
}

async fn buy(running: &Running, user: &str, platform: pb::Platform) -> Bought {
    use pb::verify_purchase_request::Purchase;
    let created = OrderServiceClient::new(running.channel.clone())
        .create_order(pb::CreateOrderRequest {
            app_id: APP.into(),
            user_id: user.into(),
            product_id: "gems_100".into(),
            platform: platform.into(),
            quantity: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let binding = created.binding.unwrap();
    let emulator = &running.emulator;
    let purchase =
        match platform {
            pb::Platform::Apple => {
                let made = control(emulator, "/emulator/apple/purchases",
                json!({ "bundle_id": APP, "product_id": "gems_100", "product_type": "Consumable",
                    "app_account_token": binding.apple_app_account_token })).await;
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
                    emulator,
                    "/emulator/huawei/purchases",
                    json!({ "app_id": HUAWEI_APP_ID, "product_id": "gems_100", "kind": 0,
                    "developer_payload": binding.huawei_developer_payload }),
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
        };
    Bought {
        user: user.into(),
        order_id: created.order.unwrap().order_id,
        purchase,
    }
}

async fn verify(channel: Channel, bought: Bought) -> Result<pb::VerifyPurchaseResponse, String> {
    VerificationServiceClient::new(channel)
        .verify_purchase(pb::VerifyPurchaseRequest {
            app_id: APP.into(),
            user_id: bought.user,
            order_id: bought.order_id,
            purchase: Some(bought.purchase),
        })
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| format!("{:?} {}", s.code(), s.message()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purchases_in_flight_at_a_kill_are_granted_once_after_the_restart() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("iapd-restart-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();

    let first = start(&dir).await;
    let mut bought = Vec::new();
    for (n, platform) in [
        pb::Platform::Apple,
        pb::Platform::Google,
        pb::Platform::Huawei,
    ]
    .into_iter()
    .cycle()
    .take(9)
    .enumerate()
    {
        bought.push(buy(&first, &format!("player-{n}"), platform).await);
    }
    // The first three are verified before the kill; the rest are in flight when it comes.
    for b in &bought[..3] {
        verify(first.channel.clone(), b.clone()).await.unwrap();
    }
    let in_flight: Vec<_> = bought[3..]
        .iter()
        .map(|b| tokio::spawn(verify(first.channel.clone(), b.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    drop(first.process); // SIGKILL
    for call in in_flight {
        let _ = call.await;
    }

    // The clients retry every purchase they hold against the restarted process.
    let second = start(&dir).await;
    for b in &bought {
        let reply = verify(second.channel.clone(), b.clone())
            .await
            .unwrap_or_else(|e| panic!("order {} after the restart: {e}", b.order_id));
        assert!(reply.finish_transaction, "order {}", b.order_id);
    }
    // Each is delivered (the fast path, or the sweeper for those cut off by the kill).
    let deadline = Instant::now() + Duration::from_secs(30);
    for b in &bought {
        loop {
            let state = OrderServiceClient::new(second.channel.clone())
                .get_order(pb::GetOrderRequest {
                    order_id: b.order_id.clone(),
                })
                .await
                .unwrap()
                .into_inner()
                .order
                .unwrap()
                .state();
            if matches!(state, pb::OrderState::Delivered | pb::OrderState::Confirmed) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "order {} is still {state:?}",
                b.order_id
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (status, _) = second.process.terminate();
    assert!(status.success(), "{status}");

    let ledger = iap_game_server::Ledger::open(dir.join("iapd-game-ledger.jsonl")).unwrap();
    for b in &bought {
        assert_eq!(
            ledger.effects_for_order(&b.order_id),
            1,
            "order {} granted exactly once",
            b.order_id
        );
    }
    assert_eq!(
        ledger.grants().len(),
        bought.len(),
        "nothing else was granted"
    );
    let _ = std::fs::remove_dir_all(dir);
}
