//! VerifyPurchase end to end for Huawei IAP: CreateOrder → a purchase at the emulator carrying
//! the order id as developerPayload → VerifyPurchase with the signed InAppPurchaseData → PAID.

mod common;

use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_proto::v1::verification_service_client::VerificationServiceClient;
use serde_json::{Value, json};
use tonic_types::StatusExt;

use common::{APP, settings_from, start_with};

const HUAWEI_APP: &str = "102932647";

fn request(user: &str, made: &Value) -> pb::VerifyPurchaseRequest {
    pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: user.into(),
        order_id: String::new(),
        purchase: Some(pb::verify_purchase_request::Purchase::Huawei(
            pb::HuaweiPurchase {
                purchase_token: made["purchase_token"].as_str().unwrap().into(),
                product_id: "gems_100".into(),
                in_app_purchase_data: made["in_app_purchase_data"].as_str().unwrap().into(),
                signature: made["data_signature"].as_str().unwrap().into(),
                signature_algorithm: made["signature_algorithm"].as_str().unwrap().into(),
            },
        )),
    }
}

#[tokio::test]
async fn huawei_purchases_are_verified_bound_and_recorded_once() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(iap_emulator::serve(
        listener,
        iap_emulator::EmulatorConfig::default(),
        std::future::pending(),
    ));
    let http = reqwest::Client::new();
    let credentials: Value = http
        .get(format!(
            "{base}/emulator/huawei/apps/{HUAWEI_APP}/credentials"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let settings = settings_from(&format!(
        r#"
        [apps."{APP}".products.gems_100]
        kind = "consumable"
        [apps."{APP}".huawei]
        app_id = "{HUAWEI_APP}"
        client_secret = "{}"
        public_key_base64 = "{}"
        token_url = "{base}/huawei/oauth2/v3/token"
        orders_root_url = "{base}/huawei/orders"
        subscriptions_root_url = "{base}/huawei/subscr"
        apptouch_orders_root_url = "{base}/huawei/orders-at"
        apptouch_subscriptions_root_url = "{base}/huawei/subscr-at"
        "#,
        credentials["client_secret"].as_str().unwrap(),
        credentials["public_key_base64"].as_str().unwrap()
    ));
    let verifier = start_with(settings).await;
    let mut orders = OrderServiceClient::new(verifier.channel.clone());
    let mut verification = VerificationServiceClient::new(verifier.channel.clone());
    let buy = |body: Value| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let mut full = json!({ "app_id": HUAWEI_APP, "product_id": "gems_100", "kind": 0, "signature_algorithm": "SHA256WithRSA/PSS" });
            full.as_object_mut()
                .unwrap()
                .extend(body.as_object().unwrap().clone());
            let made: Value = http
                .post(format!("{base}/emulator/huawei/purchases"))
                .json(&full)
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
            platform: pb::Platform::Huawei.into(),
            quantity: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let order_id = created.order.unwrap().order_id;
    let payload = created.binding.unwrap().huawei_developer_payload;
    let made = buy(json!({ "developer_payload": payload })).await;

    let verified = verification
        .verify_purchase(request("player-1", &made))
        .await
        .unwrap()
        .into_inner();
    let order = verified.order.clone().unwrap();
    assert_eq!(order.order_id, order_id);
    assert_eq!(order.state(), pb::OrderState::Paid);
    assert_eq!(
        order.store_transaction_id,
        made["order_id"].as_str().unwrap()
    );
    assert_eq!(
        verified.binding_reason(),
        pb::BindingReason::PurchaseCarriedOrderId
    );
    assert!(
        verification
            .verify_purchase(request("player-1", &made))
            .await
            .unwrap()
            .into_inner()
            .already_recorded
    );
    let status = verification
        .verify_purchase(request("player-2", &made))
        .await
        .unwrap_err();
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "REPLAYED_FOR_OTHER_USER"
    );

    let sandbox = buy(json!({ "sandbox": true })).await;
    let status = verification
        .verify_purchase(request("player-1", &sandbox))
        .await
        .unwrap_err();
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "SANDBOX_NOT_ALLOWED"
    );

    let mut forged = buy(json!({})).await;
    forged["in_app_purchase_data"] = json!(
        forged["in_app_purchase_data"]
            .as_str()
            .unwrap()
            .replace("\"price\":600", "\"price\":6")
    );
    let status = verification
        .verify_purchase(request("player-1", &forged))
        .await
        .unwrap_err();
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "SIGNATURE_INVALID"
    );
}
