//! VerifyPurchase end to end for Google Play: CreateOrder → a purchase at the emulator carrying
//! the binding ids → VerifyPurchase with token, original JSON and signature → PAID.

mod common;

use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_proto::v1::verification_service_client::VerificationServiceClient;
use serde_json::{Value, json};
use tonic_types::StatusExt;

use common::{APP, settings_from, start_with};

fn request(user: &str, made: &Value, product: &str) -> pb::VerifyPurchaseRequest {
    pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: user.into(),
        order_id: String::new(),
        purchase: Some(pb::verify_purchase_request::Purchase::Google(
            pb::GooglePurchase {
                purchase_token: made["purchase_token"].as_str().unwrap().into(),
                product_id: product.into(),
                original_json: made["original_json"].as_str().unwrap().into(),
                signature: made["signature"].as_str().unwrap().into(),
            },
        )),
    }
}

#[tokio::test]
async fn google_purchases_are_verified_bound_and_recorded_once() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(iap_emulator::serve(
        listener,
        iap_emulator::EmulatorConfig::default(),
        std::future::pending(),
    ));
    let http = reqwest::Client::new();
    let account = http
        .get(format!("{base}/emulator/google/service-account.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key: Value = http
        .get(format!("{base}/emulator/google/apps/{APP}/license-key"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let settings = settings_from(&format!(
        r#"
        [apps."{APP}"]
        sandbox = {{ users = ["tester"] }}
        [apps."{APP}".products.gems_100]
        kind = "consumable"
        max_quantity = 10
        [apps."{APP}".products.premium_monthly]
        kind = "auto_renewable"
        [apps."{APP}".google]
        package_name = "{APP}"
        service_account_json = '''{account}'''
        license_key_base64 = "{}"
        api_root_url = "{base}/google/"
        "#,
        key["public_key_base64"].as_str().unwrap()
    ));
    let verifier = start_with(settings).await;
    let mut orders = OrderServiceClient::new(verifier.channel.clone());
    let mut verification = VerificationServiceClient::new(verifier.channel.clone());
    let buy = |body: Value| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let made: Value = http
                .post(format!("{base}/emulator/google/purchases"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            made
        }
    };

    let created = orders
        .create_order(pb::CreateOrderRequest {
            app_id: APP.into(),
            user_id: "player-1".into(),
            product_id: "gems_100".into(),
            platform: pb::Platform::Google.into(),
            quantity: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let order_id = created.order.unwrap().order_id;
    let binding = created.binding.unwrap();
    let made = buy(
        json!({ "package_name": APP, "product_id": "gems_100", "kind": "inapp",
        "obfuscated_account_id": binding.google_obfuscated_account_id,
        "obfuscated_profile_id": binding.google_obfuscated_profile_id }),
    )
    .await;

    let verified = verification
        .verify_purchase(request("player-1", &made, "gems_100"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(verified.order.as_ref().unwrap().order_id, order_id);
    assert_eq!(
        verified.order.as_ref().unwrap().state(),
        pb::OrderState::Paid
    );
    assert!(verified.finish_transaction && !verified.sandbox);
    let again = verification
        .verify_purchase(request("player-1", &made, "gems_100"))
        .await
        .unwrap()
        .into_inner();
    assert!(again.already_recorded);

    // Pending: refused, and the client must keep the transaction open.
    let pending = buy(
        json!({ "package_name": APP, "product_id": "gems_100", "kind": "inapp", "pending": true }),
    )
    .await;
    let status = verification
        .verify_purchase(request("player-1", &pending, "gems_100"))
        .await
        .unwrap_err();
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.reason, "PENDING");
    assert_eq!(info.metadata["finish_transaction"], "false");

    // Test purchases are sandbox: only allow-listed users.
    let test = buy(json!({ "package_name": APP, "product_id": "gems_100", "kind": "inapp", "test_purchase": true })).await;
    let status = verification
        .verify_purchase(request("player-1", &test, "gems_100"))
        .await
        .unwrap_err();
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "SANDBOX_NOT_ALLOWED"
    );
    let ok = verification
        .verify_purchase(request("tester", &test, "gems_100"))
        .await
        .unwrap()
        .into_inner();
    assert!(ok.sandbox);

    // A subscription: verified through subscriptionsv2.
    let sub =
        buy(json!({ "package_name": APP, "product_id": "premium_monthly", "kind": "subs" })).await;
    let verified = verification
        .verify_purchase(request("player-2", &sub, "premium_monthly"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        verified.order.unwrap().store_transaction_id,
        sub["order_id"].as_str().unwrap()
    );

    // The signature check catches a client that edits the JSON.
    let mut forged = made.clone();
    forged["original_json"] = json!(
        made["original_json"]
            .as_str()
            .unwrap()
            .replace("gems_100", "gems_999")
    );
    let status = verification
        .verify_purchase(request("player-1", &forged, "gems_100"))
        .await
        .unwrap_err();
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "SIGNATURE_INVALID"
    );
}
