//! The Huawei verifier against the emulator's Order and Subscription services.

use serde_json::{Value, json};

use iap_domain::ports::{PurchaseVerifier, StoreError, VerifyContext};
use iap_domain::purchase::{PurchaseProof, PurchaseStatus, SignedData};
use iap_domain::{AppId, Environment, ProductId, ProductKind, ProductPolicy, RejectReason};
use iap_platform_huawei::{HuaweiAppConfig, HuaweiVerifier};
use iap_test_support::emulator::{Emulator, HUAWEI_APP, HuaweiCredentials};

struct Setup {
    emulator: Emulator,
    verifier: HuaweiVerifier,
    app: AppId,
}

/// `[apps.<id>.huawei]` for AppGallery app `agc_app_id` at the emulator, with these credentials.
fn config(
    emulator: &Emulator,
    agc_app_id: &str,
    credentials: &HuaweiCredentials,
    prefer_pss: bool,
) -> HuaweiAppConfig {
    HuaweiAppConfig {
        app_id: agc_app_id.into(),
        client_secret: credentials.client_secret.clone(),
        public_key_base64: credentials.public_key_base64.clone(),
        prefer_pss,
        token_url: emulator.url("/huawei/oauth2/v3/token"),
        orders_root_url: emulator.url("/huawei/orders"),
        subscriptions_root_url: emulator.url("/huawei/subscr"),
        apptouch_orders_root_url: emulator.url("/huawei/orders-at"),
        apptouch_subscriptions_root_url: emulator.url("/huawei/subscr-at"),
    }
}

impl Setup {
    async fn new(prefer_pss: bool) -> Self {
        let emulator = Emulator::start().await;
        let app = AppId::parse("game").unwrap();
        let credentials = emulator.huawei_credentials(HUAWEI_APP).await;
        let config = config(&emulator, HUAWEI_APP, &credentials, prefer_pss);
        let verifier = HuaweiVerifier::new([(&app, &config)]).unwrap();
        Self {
            emulator,
            verifier,
            app,
        }
    }

    async fn buy(&self, body: Value) -> Value {
        let mut full = json!({ "app_id": HUAWEI_APP });
        full.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        self.emulator
            .http
            .post(self.emulator.url("/emulator/huawei/purchases"))
            .json(&full)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn verify(
        &self,
        made: &Value,
        product: &str,
        data: Option<String>,
    ) -> Result<iap_domain::purchase::VerifiedPurchase, StoreError> {
        let policy = ProductPolicy {
            kind: ProductKind::Consumable,
            max_quantity: 1,
            subscription_group: None,
        };
        let proof = PurchaseProof::Huawei {
            purchase_token: made["purchase_token"].as_str().unwrap().into(),
            product_id: ProductId::parse(product).unwrap(),
            signed_data: SignedData {
                data: data.unwrap_or_else(|| made["in_app_purchase_data"].as_str().unwrap().into()),
                signature: made["data_signature"].as_str().unwrap().into(),
            },
            signature_algorithm: made["signature_algorithm"].as_str().map(str::to_owned),
        };
        self.verifier
            .verify(
                VerifyContext {
                    app_id: &self.app,
                    product: Some(&policy),
                    ledger: None,
                },
                &proof,
            )
            .await
    }
}

#[tokio::test]
async fn one_time_purchases_verify_and_survive_confirmation() {
    let s = Setup::new(true).await;
    let made = s
        .buy(json!({ "product_id": "gems_100", "kind": 0, "developer_payload": "0192f7a4-55e4-7c1e-9f3e-3a1d1c2b4e5f",
                     "signature_algorithm": "SHA256WithRSA/PSS", "price": 600, "currency": "CNY" }))
        .await;
    let verified = s.verify(&made, "gems_100", None).await.unwrap();
    assert_eq!(verified.status, PurchaseStatus::Purchased);
    assert_eq!(verified.environment, Environment::Production);
    assert_eq!(
        verified.store_transaction_id,
        made["order_id"].as_str().unwrap()
    );
    assert_eq!(
        verified.carried_order_id.as_deref(),
        Some("0192f7a4-55e4-7c1e-9f3e-3a1d1c2b4e5f")
    );
    assert_eq!(
        verified.price.as_ref().map(|p| p.amount_micros),
        Some(6_000_000)
    );

    let tampered = made["in_app_purchase_data"]
        .as_str()
        .unwrap()
        .replace("\"price\":600", "\"price\":1");
    assert!(matches!(
        s.verify(&made, "gems_100", Some(tampered)).await,
        Err(StoreError::Rejected {
            reason: RejectReason::SignatureInvalid,
            ..
        })
    ));
    assert!(matches!(
        s.verify(&made, "gems_999", None).await,
        Err(StoreError::Rejected {
            reason: RejectReason::ProductMismatch,
            ..
        })
    ));

    // Confirmed at the store: verifying again (a client retry) still recognises the purchase.
    let api = s.verifier.api(&s.app).unwrap();
    let confirmed = api
        .confirm(made["purchase_token"].as_str().unwrap(), "gems_100")
        .await
        .unwrap();
    assert_eq!(iap_platform_huawei::api::response_code(&confirmed), "0");
    let again = s.verify(&made, "gems_100", None).await.unwrap();
    assert_eq!(again.consumed, Some(true));
    assert_eq!(again.store_transaction_id, verified.store_transaction_id);

    let sandbox = s
        .buy(json!({ "product_id": "gems_100", "kind": 0, "sandbox": true }))
        .await;
    assert_eq!(
        s.verify(&sandbox, "gems_100", None)
            .await
            .unwrap()
            .environment,
        Environment::Sandbox
    );
    let pending = s
        .buy(json!({ "product_id": "gems_100", "kind": 0, "pending": true }))
        .await;
    assert_eq!(
        s.verify(&pending, "gems_100", None).await.unwrap().status,
        PurchaseStatus::Pending
    );
}

#[tokio::test]
async fn subscriptions_are_read_from_the_subscription_service() {
    let s = Setup::new(false).await;
    let made = s
        .buy(json!({ "product_id": "premium_monthly", "kind": 2 }))
        .await;
    let verified = s.verify(&made, "premium_monthly", None).await.unwrap();
    assert_eq!(
        verified.original_transaction_id.as_deref(),
        made["subscription_id"].as_str()
    );
    assert!(verified.expires_at.is_some_and(|t| t > chrono::Utc::now()));
    assert_eq!(verified.kind, Some(ProductKind::AutoRenewable));
}

/// Signed purchase data of another AppGallery app is refused even when its signature verifies
/// (two apps configured with one signing key): the signed `applicationId` must be this app's.
#[tokio::test]
async fn purchase_data_of_another_app_id_is_refused_even_with_a_valid_signature() {
    let s = Setup::new(false).await;
    let made = s.buy(json!({ "product_id": "gems_100", "kind": 0 })).await;
    // The signing key of app HUAWEI_APP, configured for another AppGallery app.
    let credentials = s.emulator.huawei_credentials(HUAWEI_APP).await;
    let other = AppId::parse("other-game").unwrap();
    let config = config(&s.emulator, "109999999", &credentials, false);
    let verifier = HuaweiVerifier::new([(&other, &config)]).unwrap();
    let policy = ProductPolicy {
        kind: ProductKind::Consumable,
        max_quantity: 1,
        subscription_group: None,
    };
    let proof = PurchaseProof::Huawei {
        purchase_token: made["purchase_token"].as_str().unwrap().into(),
        product_id: ProductId::parse("gems_100").unwrap(),
        signed_data: SignedData {
            data: made["in_app_purchase_data"].as_str().unwrap().into(),
            signature: made["data_signature"].as_str().unwrap().into(),
        },
        signature_algorithm: made["signature_algorithm"].as_str().map(str::to_owned),
    };
    let refused = verifier
        .verify(
            VerifyContext {
                app_id: &other,
                product: Some(&policy),
                ledger: None,
            },
            &proof,
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(StoreError::Rejected {
                reason: RejectReason::BundleMismatch,
                code: "app_mismatch",
                ..
            })
        ),
        "{refused:?}"
    );
}
