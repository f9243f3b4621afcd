//! VerifyPurchase end to end for App Store signed transactions: CreateOrder → a purchase at the
//! emulator carrying the order id → VerifyPurchase → PAID in PostgreSQL; replays, foreign
//! bundles, sandbox policy and forgeries refused with machine-readable reasons.

mod common;

use base64::Engine;
use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_proto::v1::verification_service_client::VerificationServiceClient;
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;

use common::{APP, settings_from, start_with};

struct Store {
    base: String,
    http: reqwest::Client,
}

impl Store {
    async fn start() -> Self {
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

    async fn root_base64(&self) -> String {
        let der = self
            .http
            .get(format!("{}/emulator/apple/root.der", self.base))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        base64::engine::general_purpose::STANDARD.encode(der)
    }

    async fn buy(&self, bundle: &str, product: &str, token: Option<&str>) -> Value {
        let mut body =
            json!({ "bundle_id": bundle, "product_id": product, "product_type": "Consumable" });
        if let Some(token) = token {
            body["app_account_token"] = json!(token);
        }
        self.http
            .post(format!("{}/emulator/apple/purchases", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn request(user: &str, jws: &str) -> pb::VerifyPurchaseRequest {
    pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: user.into(),
        order_id: String::new(),
        purchase: Some(pb::verify_purchase_request::Purchase::Apple(
            pb::ApplePurchase {
                proof: Some(pb::apple_purchase::Proof::SignedTransaction(jws.into())),
                ..Default::default()
            },
        )),
    }
}

fn reason(status: &tonic::Status) -> (String, String, String) {
    let info = status.get_details_error_info().expect("ErrorInfo");
    (
        info.reason,
        info.metadata.get("code").cloned().unwrap_or_default(),
        info.metadata
            .get("finish_transaction")
            .cloned()
            .unwrap_or_default(),
    )
}

#[tokio::test]
async fn apple_signed_transactions_are_verified_bound_and_recorded_once() {
    let store = Store::start().await;
    let app_apple_id = iap_emulator::DEFAULT_APP_APPLE_ID;
    let settings = settings_from(&format!(
        r#"
        [apps."{APP}"]
        sandbox = {{ users = ["player-1", "player-2"] }}
        [apps."{APP}".products.gems_100]
        kind = "consumable"
        max_quantity = 10
        [apps."{APP}".apple]
        bundle_id = "{APP}"
        app_apple_id = {app_apple_id}
        trust_apple_root = false
        extra_roots_base64 = ["{}"]
        "#,
        store.root_base64().await
    ));
    let verifier = start_with(settings).await;
    let mut orders = OrderServiceClient::new(verifier.channel.clone());
    let mut verification = VerificationServiceClient::new(verifier.channel.clone());

    let created = orders
        .create_order(pb::CreateOrderRequest {
            app_id: APP.into(),
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
    let token = created.binding.unwrap().apple_app_account_token;
    let bought = store.buy(APP, "gems_100", Some(&token)).await;
    let jws = bought["signed_transaction"].as_str().unwrap();

    let verified = verification
        .verify_purchase(request("player-1", jws))
        .await
        .unwrap()
        .into_inner();
    let order = verified.order.clone().unwrap();
    assert_eq!(order.order_id, order_id, "bound through appAccountToken");
    assert_eq!(order.state(), pb::OrderState::Paid);
    assert_eq!(
        order.store_transaction_id,
        bought["transaction_id"].as_str().unwrap()
    );
    assert_eq!(
        verified.binding_reason(),
        pb::BindingReason::PurchaseCarriedOrderId
    );
    assert!(verified.finish_transaction && verified.sandbox && !verified.already_recorded);

    // The client retries: same order, nothing new.
    let again = verification
        .verify_purchase(request("player-1", jws))
        .await
        .unwrap()
        .into_inner();
    assert!(again.already_recorded);
    assert_eq!(again.order.unwrap().order_id, order_id);

    // Someone else presents the same transaction.
    let status = verification
        .verify_purchase(request("player-2", jws))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        reason(&status),
        (
            "REPLAYED_FOR_OTHER_USER".into(),
            "replayed_for_other_user".into(),
            "true".into()
        )
    );

    let fetched = orders
        .get_order(pb::GetOrderRequest {
            order_id: order_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.order.unwrap().state(), pb::OrderState::Paid);

    // A purchase made without an order: one is created for it.
    let unbound = store.buy(APP, "gems_100", None).await;
    let verified = verification
        .verify_purchase(request(
            "player-2",
            unbound["signed_transaction"].as_str().unwrap(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        verified.binding_reason(),
        pb::BindingReason::CreatedAtVerification
    );

    // Another app's transaction, sandbox for a user not allowed, a forgery, an unknown product.
    let foreign = store.buy("com.other.app", "gems_100", None).await;
    let status = verification
        .verify_purchase(request(
            "player-1",
            foreign["signed_transaction"].as_str().unwrap(),
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&status).0, "BUNDLE_MISMATCH");
    let sandbox = store.buy(APP, "gems_100", None).await;
    let status = verification
        .verify_purchase(request(
            "stranger",
            sandbox["signed_transaction"].as_str().unwrap(),
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&status).0, "SANDBOX_NOT_ALLOWED");
    let parts: Vec<&str> = sandbox["signed_transaction"]
        .as_str()
        .unwrap()
        .split('.')
        .collect();
    // A forgery: the signed payload altered after signing (100 gems for the price of one).
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = String::from_utf8(b64.decode(parts[1]).unwrap())
        .unwrap()
        .replace("\"quantity\":1", "\"quantity\":100");
    let forged = format!("{}.{}.{}", parts[0], b64.encode(payload), parts[2]);
    let status = verification
        .verify_purchase(request("player-1", &forged))
        .await
        .unwrap_err();
    assert_eq!(reason(&status).0, "SIGNATURE_INVALID");
    let sword = store.buy(APP, "sword", None).await;
    let status = verification
        .verify_purchase(request(
            "player-1",
            sword["signed_transaction"].as_str().unwrap(),
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&status).0, "UNKNOWN_PRODUCT");

    // Stores without settings say so.
    let google = pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: "player-1".into(),
        order_id: String::new(),
        purchase: Some(pb::verify_purchase_request::Purchase::Google(
            pb::GooglePurchase {
                purchase_token: "t".into(),
                product_id: "gems_100".into(),
                ..Default::default()
            },
        )),
    };
    let status = verification.verify_purchase(google).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status).0, "STORE_NOT_CONFIGURED");
    let status = verification
        .verify_purchase(pb::VerifyPurchaseRequest {
            app_id: APP.into(),
            user_id: "u".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}
