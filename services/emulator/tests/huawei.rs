//! Huawei IAP as the emulator serves it: client-credentials OAuth, `APPAT` Basic auth, Order
//! verify/confirm/cancelledList and Subscription get/stop/delay with `responseCode`s, data signed
//! with SHA256WithRSA and SHA256WithRSA/PSS (salt 32) by a 3072-bit key.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde_json::{Value, json};

use common::Emulator;

const APP: &str = "102932647";

struct Huawei {
    emulator: Emulator,
    key: rsa::RsaPublicKey,
    access: String,
}

impl Huawei {
    async fn start() -> Self {
        let emulator = Emulator::start().await;
        let credentials = emulator
            .get(&format!("/huawei/apps/{APP}/credentials"))
            .await;
        let der = STANDARD
            .decode(credentials["public_key_base64"].as_str().unwrap())
            .unwrap();
        let key = rsa::RsaPublicKey::from_public_key_der(&der).unwrap();
        assert_eq!(
            rsa::traits::PublicKeyParts::size(&key),
            384,
            "RSA-3072 like AppGallery Connect"
        );

        let token_url = format!("{}/huawei/oauth2/v3/token", emulator.base);
        let wrong = emulator
            .http
            .post(&token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", APP),
                ("client_secret", "wrong"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        let reply: Value = emulator
            .http
            .post(&token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", APP),
                (
                    "client_secret",
                    credentials["client_secret"].as_str().unwrap(),
                ),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(reply["expires_in"], 3600);
        let access = reply["access_token"].as_str().unwrap().to_owned();
        Self {
            emulator,
            key,
            access,
        }
    }

    async fn call(&self, path: &str, body: Value, pss: bool) -> (StatusCode, Value) {
        let basic = STANDARD.encode(format!("APPAT:{}", self.access));
        let mut request = self
            .emulator
            .http
            .post(format!("{}/huawei{path}", self.emulator.base))
            .header("authorization", format!("Basic {basic}"))
            .json(&body);
        if pss {
            request = request.header(
                "HW-IAP-APPINFO",
                r#"{"signatureAlgorithm":"SHA256WithRSA/PSS"}"#,
            );
        }
        let response = request.send().await.unwrap();
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    fn verifies(&self, data: &str, signature: &str, pss: bool) -> bool {
        let signature = STANDARD.decode(signature).unwrap();
        if pss {
            let key = rsa::pss::VerifyingKey::<sha2::Sha256>::new(self.key.clone());
            rsa::pss::Signature::try_from(signature.as_slice())
                .is_ok_and(|s| key.verify(data.as_bytes(), &s).is_ok())
        } else {
            let key = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(self.key.clone());
            rsa::pkcs1v15::Signature::try_from(signature.as_slice())
                .is_ok_and(|s| key.verify(data.as_bytes(), &s).is_ok())
        }
    }
}

#[tokio::test]
async fn consumable_is_signed_verified_and_confirmed_once() {
    let huawei = Huawei::start().await;
    let made = huawei
        .emulator
        .control(
            "/huawei/purchases",
            json!({ "app_id": APP, "product_id": "gems_100", "kind": 0, "developer_payload": "order-7",
                    "signature_algorithm": "SHA256WithRSA/PSS", "sandbox": true }),
        )
        .await;
    let data = made["in_app_purchase_data"].as_str().unwrap();
    assert!(
        huawei.verifies(data, made["data_signature"].as_str().unwrap(), true),
        "PSS signature"
    );
    assert!(
        !huawei.verifies(data, made["data_signature"].as_str().unwrap(), false),
        "not PKCS#1"
    );
    let parsed: Value = serde_json::from_str(data).unwrap();
    assert_eq!(parsed["purchaseState"], 0);
    assert_eq!(parsed["purchaseType"], 0, "sandbox");
    assert_eq!(parsed["developerPayload"], "order-7");
    assert_eq!(parsed["purchaseToken"].as_str().unwrap().len(), 92);
    let token = made["purchase_token"].as_str().unwrap();
    let body = json!({ "purchaseToken": token, "productId": "gems_100" });

    // No or wrong authorization: 401.
    let response = huawei
        .emulator
        .http
        .post(format!(
            "{}/huawei/orders/applications/purchases/tokens/verify",
            huawei.emulator.base
        ))
        .header(
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("AT:{}", huawei.access))),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let (status, verified) = huawei
        .call(
            "/orders/applications/purchases/tokens/verify",
            body.clone(),
            false,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verified["responseCode"], "0");
    assert_eq!(verified["signatureAlgorithm"], "SHA256WithRSA");
    let token_data = verified["purchaseTokenData"].as_str().unwrap();
    assert!(huawei.verifies(
        token_data,
        verified["dataSignature"].as_str().unwrap(),
        false
    ));
    let (_, verified_pss) = huawei
        .call(
            "/orders/applications/purchases/tokens/verify",
            body.clone(),
            true,
        )
        .await;
    assert_eq!(verified_pss["signatureAlgorithm"], "SHA256WithRSA/PSS");
    assert!(huawei.verifies(
        verified_pss["purchaseTokenData"].as_str().unwrap(),
        verified_pss["dataSignature"].as_str().unwrap(),
        true
    ));

    let wrong_product = json!({ "purchaseToken": token, "productId": "gems_999" });
    assert_eq!(
        huawei
            .call(
                "/orders/applications/purchases/tokens/verify",
                wrong_product,
                false
            )
            .await
            .1["responseCode"],
        "5"
    );
    let unknown = json!({ "purchaseToken": "nope", "productId": "gems_100" });
    assert_eq!(
        huawei
            .call(
                "/orders/applications/purchases/tokens/verify",
                unknown,
                false
            )
            .await
            .1["responseCode"],
        "8"
    );

    assert_eq!(
        huawei
            .call(
                "/orders/applications/v2/purchases/confirm",
                body.clone(),
                false
            )
            .await
            .1["responseCode"],
        "0"
    );
    assert_eq!(
        huawei
            .call(
                "/orders/applications/v2/purchases/confirm",
                body.clone(),
                false
            )
            .await
            .1["responseCode"],
        "9"
    );
    assert_eq!(
        huawei
            .call("/orders/applications/purchases/tokens/verify", body, false)
            .await
            .1["responseCode"],
        "9"
    );

    let stats = huawei.emulator.get("/stats").await;
    assert_eq!(stats["huawei.orders.confirm"], 2);
}

#[tokio::test]
async fn refunds_appear_in_the_cancelled_list_and_subscriptions_renew() {
    let huawei = Huawei::start().await;
    let made = huawei
        .emulator
        .control(
            "/huawei/purchases",
            json!({ "app_id": APP, "product_id": "no_ads", "kind": 1 }),
        )
        .await;
    let parsed: Value =
        serde_json::from_str(made["in_app_purchase_data"].as_str().unwrap()).unwrap();
    assert!(parsed.get("purchaseType").is_none(), "absent in production");
    let token = made["purchase_token"].as_str().unwrap();
    let refunded = huawei
        .emulator
        .control(&format!("/huawei/purchases/{token}/refund"), json!({}))
        .await;
    assert_eq!(
        refunded["notification"]["orderNotification"]["notificationType"],
        2
    );
    let (_, cancelled) = huawei
        .call(
            "/orders/applications/v2/purchases/cancelledList",
            json!({ "type": 0 }),
            false,
        )
        .await;
    let list: Value =
        serde_json::from_str(cancelled["cancelledPurchaseList"].as_str().unwrap()).unwrap();
    assert_eq!(list[0]["purchaseToken"], token);

    let sub = huawei
        .emulator
        .control(
            "/huawei/purchases",
            json!({ "app_id": APP, "product_id": "premium_monthly", "kind": 2 }),
        )
        .await;
    let (sub_token, sub_id) = (
        sub["purchase_token"].as_str().unwrap(),
        sub["subscription_id"].as_str().unwrap(),
    );
    let ids = json!({ "subscriptionId": sub_id, "purchaseToken": sub_token });
    let order_body = json!({ "purchaseToken": sub_token, "productId": "premium_monthly" });
    assert_eq!(
        huawei
            .call(
                "/orders/applications/purchases/tokens/verify",
                order_body,
                false
            )
            .await
            .1["responseCode"],
        "6",
        "subscription tokens belong to the Subscription service"
    );
    let (_, got) = huawei
        .call(
            "/subscr/sub/applications/v2/purchases/get",
            ids.clone(),
            false,
        )
        .await;
    assert_eq!(got["responseCode"], "0");
    let data = got["inappPurchaseData"].as_str().unwrap();
    assert!(huawei.verifies(data, got["dataSignature"].as_str().unwrap(), false));
    let data: Value = serde_json::from_str(data).unwrap();
    assert_eq!(data["subIsvalid"], true);
    let first_order = data["orderId"].clone();

    let renewed = huawei
        .emulator
        .control(&format!("/huawei/subscriptions/{sub_id}/renew"), json!({}))
        .await;
    let sub_notification = &renewed["notification"]["subNotification"];
    let status = sub_notification["statusUpdateNotification"]
        .as_str()
        .unwrap();
    assert!(huawei.verifies(
        status,
        sub_notification["notificationSignature"].as_str().unwrap(),
        false
    ));
    let status: Value = serde_json::from_str(status).unwrap();
    assert_eq!(status["notificationType"], 7);
    assert_ne!(
        status["orderId"], first_order,
        "each renewal is a new order"
    );

    let (_, stopped) = huawei
        .call(
            "/subscr/sub/applications/v2/purchases/stop",
            ids.clone(),
            false,
        )
        .await;
    assert_eq!(stopped["responseCode"], "0");
    let (_, got) = huawei
        .call("/subscr/sub/applications/v2/purchases/get", ids, false)
        .await;
    let data: Value = serde_json::from_str(got["inappPurchaseData"].as_str().unwrap()).unwrap();
    assert_eq!(data["renewStatus"], 0);
    assert_eq!(data["subIsvalid"], true, "valid until expiry after a stop");
}
