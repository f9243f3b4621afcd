//! The attacks of the fences' threat model (docs/security.md), against the real `iapd` binary
//! with its demo app, its embedded emulator and its SQLite file, as a cheater would try them on
//! a studio's first install. Every test reads the reference game server's ledger from its file
//! after the process stopped: the units paid, granted once.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use iap_proto::v1 as pb;
use iap_proto::v1::admin_service_client::AdminServiceClient;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_proto::v1::verification_service_client::VerificationServiceClient;
use iap_test_support::process::RunningBinary;
use serde_json::{Value, json};
use tonic::transport::Channel;

const APP: &str = "com.example.game";
const PRODUCT: &str = "gems_100";
/// The demo app's AppGallery Connect app id at the embedded emulator.
const HUAWEI_APP_ID: &str = "100000001";

/// An order as CreateOrder made it.
struct Created {
    order_id: String,
    binding: pb::PurchaseBinding,
}

/// One `iapd` with the embedded defaults, in its own directory.
struct Iapd {
    process: RunningBinary,
    dir: PathBuf,
    channel: Channel,
    http: String,
    emulator: String,
}

impl Iapd {
    async fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir =
            std::env::temp_dir().join(format!("iapd-attack-{}", uuid::Uuid::new_v4().simple()));
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
        let grpc = second(process.wait_for_line("gRPC ", Duration::from_secs(30)));
        let http = second(process.wait_for_line("HTTP ", Duration::from_secs(5)))
            .trim_end_matches("/metrics")
            .to_owned();
        let emulator = second(process.wait_for_line("emulator ", Duration::from_secs(5)));
        let channel = Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Self {
            process,
            dir,
            channel,
            http,
            emulator,
        }
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.emulator))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{path}: {response:?}");
        response.json().await.unwrap()
    }

    async fn order(&self, user: &str, platform: pb::Platform, quantity: i32) -> Created {
        let created = OrderServiceClient::new(self.channel.clone())
            .create_order(pb::CreateOrderRequest {
                app_id: APP.into(),
                user_id: user.into(),
                product_id: PRODUCT.into(),
                platform: platform.into(),
                quantity,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        Created {
            order_id: created.order.unwrap().order_id,
            binding: created.binding.unwrap_or_default(),
        }
    }

    /// A Google purchase at the emulator, bound to `order` when given.
    async fn google_buy(&self, package: &str, order: Option<&Created>, quantity: u32) -> Value {
        let binding = order.map(|o| o.binding.clone()).unwrap_or_default();
        self.control(
            "/emulator/google/purchases",
            json!({ "package_name": package, "product_id": PRODUCT, "kind": "inapp",
                "quantity": quantity,
                "obfuscated_account_id": binding.google_obfuscated_account_id,
                "obfuscated_profile_id": binding.google_obfuscated_profile_id }),
        )
        .await
    }

    async fn verify_google(
        &self,
        user: &str,
        order_id: &str,
        token: &str,
        bought: &Value,
    ) -> Result<pb::VerifyPurchaseResponse, tonic::Status> {
        VerificationServiceClient::new(self.channel.clone())
            .verify_purchase(pb::VerifyPurchaseRequest {
                app_id: APP.into(),
                user_id: user.into(),
                order_id: order_id.into(),
                purchase: Some(pb::verify_purchase_request::Purchase::Google(
                    pb::GooglePurchase {
                        purchase_token: token.into(),
                        product_id: PRODUCT.into(),
                        original_json: bought["original_json"].as_str().unwrap_or_default().into(),
                        signature: bought["signature"].as_str().unwrap_or_default().into(),
                    },
                )),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// A Huawei purchase at the emulator, bound to `order`, verified as the client would.
    async fn huawei_buy_and_verify(&self, user: &str, order: &Created) -> Value {
        let bought = self
            .control(
                "/emulator/huawei/purchases",
                json!({ "app_id": HUAWEI_APP_ID, "product_id": PRODUCT, "kind": 0,
                    "developer_payload": order.binding.huawei_developer_payload }),
            )
            .await;
        let field = |name: &str| bought[name].as_str().unwrap_or_default().to_owned();
        VerificationServiceClient::new(self.channel.clone())
            .verify_purchase(pb::VerifyPurchaseRequest {
                app_id: APP.into(),
                user_id: user.into(),
                order_id: order.order_id.clone(),
                purchase: Some(pb::verify_purchase_request::Purchase::Huawei(
                    pb::HuaweiPurchase {
                        purchase_token: field("purchase_token"),
                        product_id: PRODUCT.into(),
                        in_app_purchase_data: field("in_app_purchase_data"),
                        signature: field("data_signature"),
                        signature_algorithm: field("signature_algorithm"),
                    },
                )),
            })
            .await
            .unwrap();
        bought
    }

    /// Waits until the order has been granted (DELIVERED or CONFIRMED).
    async fn granted(&self, order_id: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let order = OrderServiceClient::new(self.channel.clone())
                .get_order(pb::GetOrderRequest {
                    order_id: order_id.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .order
                .unwrap();
            if matches!(
                order.state(),
                pb::OrderState::Delivered | pb::OrderState::Confirmed
            ) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {order_id} is still {:?}",
                order.state()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Posts a body to the public notification port, as anyone on the internet can.
    async fn push(&self, store: &str, body: &Value) -> reqwest::StatusCode {
        reqwest::Client::new()
            .post(format!("{}/notifications/{store}", self.http))
            .json(body)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Waits until a stored notification of type `kind` has been worked (applied, or refused
    /// for good).
    async fn worked(&self, kind: &str) -> pb::StoredNotification {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let listed = AdminServiceClient::new(self.channel.clone())
                .list_notifications(pb::ListNotificationsRequest::default())
                .await
                .unwrap()
                .into_inner();
            if let Some(found) = listed
                .notifications
                .into_iter()
                .find(|n| n.notification_type == kind && n.processed_at.is_some())
            {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {kind} notification was worked"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the process (the grants it made are on disk) and reads the game's ledger.
    fn ledger(self) -> iap_game_server::Ledger {
        let (status, output) = self.process.terminate();
        assert!(status.success(), "exit {status:?}:\n{}", output.join("\n"));
        let ledger =
            iap_game_server::Ledger::open(self.dir.join("iapd-game-ledger.jsonl")).unwrap();
        let _ = std::fs::remove_dir_all(&self.dir);
        ledger
    }
}

fn units(ledger: &iap_game_server::Ledger, user: &str) -> i64 {
    ledger.balance(APP, user, PRODUCT)
}

fn grants_to(ledger: &iap_game_server::Ledger, user: &str) -> usize {
    ledger.grants().iter().filter(|g| g.user_id == user).count()
}

/// A Pub/Sub push as anyone can write one: no OIDC token, a message id of the forger's choice.
fn pubsub_push(message_id: &str, notification: &Value) -> Value {
    json!({
        "message": {
            "data": base64::engine::general_purpose::STANDARD.encode(notification.to_string()),
            "messageId": message_id,
            "publishTime": "2026-12-01T00:00:00Z",
        },
        "subscription": "projects/forger/subscriptions/rtdn",
    })
}

fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_google_purchase_is_granted_once_whatever_the_token_is_dressed_as() {
    let iapd = Iapd::start().await;
    let order = iapd.order("cheater", pb::Platform::Google, 1).await;
    let bought = iapd.google_buy(APP, Some(&order), 1).await;
    let token = bought["purchase_token"].as_str().unwrap().to_owned();
    iapd.verify_google("cheater", &order.order_id, &token, &bought)
        .await
        .unwrap();
    iapd.granted(&order.order_id).await;

    // The same purchase again, dressed in URL syntax, with a fresh order each time.
    let variants = [
        format!("{token}#x"),
        format!("{token}?x=1"),
        format!("{token}/."),
        format!("{token}/../{token}"),
        format!("./{token}"),
        format!("{token}%23x"),
        format!(" {token}"),
        format!("{token}\n"),
        format!("{token}\t"),
        format!("{token}\u{200b}"),
        format!("{token}\u{a0}"),
        token.to_uppercase(),
    ];
    for variant in &variants {
        let again = iapd.order("cheater", pb::Platform::Google, 1).await;
        match iapd
            .verify_google("cheater", &again.order_id, variant, &Value::Null)
            .await
        {
            Ok(reply) => assert_eq!(
                reply.order.unwrap().order_id,
                order.order_id,
                "{variant:?} may only name the first order"
            ),
            Err(status) => assert!(
                status.code() == tonic::Code::InvalidArgument
                    || status.code() == tonic::Code::FailedPrecondition
                    || status.code() == tonic::Code::NotFound,
                "{variant:?}: {status:?}"
            ),
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ledger = iapd.ledger();
    assert_eq!(units(&ledger, "cheater"), 1, "one unit paid, one granted");
    assert_eq!(grants_to(&ledger, "cheater"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn another_apps_purchase_cannot_be_walked_into_this_app() {
    let iapd = Iapd::start().await;
    // A real purchase of another package on the same service account.
    let other = iapd.google_buy("com.other.game", None, 1).await;
    let other_token = other["purchase_token"].as_str().unwrap();
    for depth in 1..=6 {
        for tail in [
            format!("com.other.game/purchases/products/{PRODUCT}/tokens/{other_token}"),
            format!("com.other.game/purchases/productsv2/tokens/{other_token}"),
        ] {
            let walk = format!("{}{tail}", "../".repeat(depth));
            let order = iapd.order("walker", pb::Platform::Google, 1).await;
            let status = iapd
                .verify_google("walker", &order.order_id, &walk, &Value::Null)
                .await
                .expect_err("another app's purchase is refused");
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        }
    }
    // Sent as itself (without the purchase JSON, which the SDK leaves to the client), the other
    // package's token is unknown to this app's package.
    let order = iapd.order("walker", pb::Platform::Google, 1).await;
    let status = iapd
        .verify_google("walker", &order.order_id, other_token, &Value::Null)
        .await
        .expect_err("another app's purchase is refused");
    assert_ne!(status.code(), tonic::Code::Ok);
    let ledger = iapd.ledger();
    assert_eq!(units(&ledger, "walker"), 0);
    assert_eq!(ledger.grants().len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_units_granted_are_the_units_paid_both_ways() {
    let iapd = Iapd::start().await;
    // Asked for ten, paid for one.
    let greedy = iapd.order("greedy", pb::Platform::Google, 10).await;
    let bought = iapd.google_buy(APP, Some(&greedy), 1).await;
    let token = bought["purchase_token"].as_str().unwrap();
    iapd.verify_google("greedy", &greedy.order_id, token, &bought)
        .await
        .unwrap();
    iapd.granted(&greedy.order_id).await;
    // Asked for one, paid for three (Google multi-quantity).
    let generous = iapd.order("generous", pb::Platform::Google, 1).await;
    let bought = iapd.google_buy(APP, Some(&generous), 3).await;
    let token = bought["purchase_token"].as_str().unwrap();
    iapd.verify_google("generous", &generous.order_id, token, &bought)
        .await
        .unwrap();
    iapd.granted(&generous.order_id).await;
    let ledger = iapd.ledger();
    assert_eq!(units(&ledger, "greedy"), 1, "paid one: one granted");
    assert_eq!(units(&ledger, "generous"), 3, "paid three: three granted");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_google_void_on_the_open_port_revokes_nothing() {
    let iapd = Iapd::start().await;
    let order = iapd.order("victim", pb::Platform::Google, 1).await;
    let bought = iapd.google_buy(APP, Some(&order), 1).await;
    let token = bought["purchase_token"].as_str().unwrap();
    iapd.verify_google("victim", &order.order_id, token, &bought)
        .await
        .unwrap();
    iapd.granted(&order.order_id).await;

    // The demo app has no push_audience: a hand-made push reaches the handler.
    let forged = json!({
        "version": "1.0", "packageName": APP, "eventTimeMillis": "1764547200000",
        "voidedPurchaseNotification": { "purchaseToken": token, "orderId": "GPA.0000-0000-0000-00000",
            "productType": 2, "refundType": 1 },
    });
    let answered = iapd.push("google", &pubsub_push("forged-1", &forged)).await;
    assert!(
        answered.is_success() || answered.is_client_error(),
        "{answered}"
    );
    if answered.is_success() {
        iapd.worked("VOIDED_PURCHASE").await;
    }
    let ledger = iapd.ledger();
    assert_eq!(
        units(&ledger, "victim"),
        1,
        "the real purchase stays granted"
    );
    assert_eq!(ledger.revokes().len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsigned_huawei_refund_event_revokes_nothing() {
    let iapd = Iapd::start().await;
    let order = iapd.order("victim", pb::Platform::Huawei, 1).await;
    let bought = iapd.huawei_buy_and_verify("victim", &order).await;
    iapd.granted(&order.order_id).await;

    // Huawei's ORDER events are not signed: anyone can write one.
    let forged = json!({
        "applicationId": HUAWEI_APP_ID, "eventType": "ORDER", "notifyTime": 1764547200000_i64,
        "orderNotification": { "version": "v2", "notificationType": 2,
            "purchaseToken": bought["purchase_token"], "productId": PRODUCT },
    });
    let answered = iapd.push("huawei", &forged).await;
    assert!(
        answered.is_success() || answered.is_client_error(),
        "{answered}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ledger = iapd.ledger();
    assert_eq!(
        units(&ledger, "victim"),
        1,
        "the real purchase stays granted"
    );
    assert_eq!(ledger.revokes().len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn support_compensation_and_the_real_purchase_grant_once() {
    let iapd = Iapd::start().await;
    let order = iapd.order("unlucky", pb::Platform::Google, 1).await;
    // The player's purchase seemed lost; support grants the order by hand.
    AdminServiceClient::new(iapd.channel.clone())
        .compensate_order(pb::CompensateOrderRequest {
            operator: "support-1".into(),
            reason: "ticket 42: paid, nothing arrived".into(),
            idempotency_key: "ticket-42".into(),
            order_id: order.order_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    iapd.granted(&order.order_id).await;
    // Then the real purchase for that order arrives.
    let bought = iapd.google_buy(APP, Some(&order), 1).await;
    let token = bought["purchase_token"].as_str().unwrap();
    let reply = iapd
        .verify_google("unlucky", &order.order_id, token, &bought)
        .await;
    if let Err(status) = &reply {
        assert_ne!(reason(status), "", "a refusal says why: {status:?}");
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let ledger = iapd.ledger();
    assert_eq!(units(&ledger, "unlucky"), 1, "granted once: by support");
    assert_eq!(grants_to(&ledger, "unlucky"), 1);
}
