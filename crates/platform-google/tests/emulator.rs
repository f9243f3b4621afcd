//! The Google Play verifier against the emulator's Android Publisher API: payment states,
//! sandbox, subscriptions and renewals, signature fast-reject, token caching, outages.

use std::collections::HashMap;

use serde_json::{Value, json};

use iap_domain::ports::{PurchaseVerifier, StoreError, VerifyContext};
use iap_domain::purchase::{PurchaseProof, PurchaseStatus, SignedData};
use iap_domain::{AppId, Environment, ProductId, ProductKind, ProductPolicy, RejectReason};
use iap_platform_google::{GoogleAppConfig, GoogleVerifier};
use iap_test_support::emulator::Emulator;

const PACKAGE: &str = "com.example.game";

struct Setup {
    emulator: Emulator,
    verifier: GoogleVerifier,
    app: AppId,
}

impl Setup {
    async fn new() -> Self {
        let emulator = Emulator::start().await;
        let config = GoogleAppConfig {
            package_name: PACKAGE.into(),
            service_account_json: emulator.google_service_account_json().await,
            license_key_base64: Some(emulator.google_license_key_base64(PACKAGE).await),
            api_root_url: emulator.url("/google/"),
            push_audience: None,
            push_service_account: None,
            push_certs_url: iap_platform_google::push::GOOGLE_CERTS_URL.to_owned(),
        };
        let app = AppId::parse("game").unwrap();
        let verifier = GoogleVerifier::new([(&app, &config)]).unwrap();
        Self {
            emulator,
            verifier,
            app,
        }
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        self.emulator
            .http
            .post(self.emulator.url(&format!("/emulator{path}")))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn stats(&self) -> HashMap<String, u64> {
        self.emulator
            .http
            .get(self.emulator.url("/emulator/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn verify(
        &self,
        kind: ProductKind,
        made: &Value,
        signed: bool,
    ) -> Result<iap_domain::purchase::VerifiedPurchase, StoreError> {
        let policy = ProductPolicy {
            kind,
            max_quantity: 10,
            subscription_group: None,
        };
        let product = ProductId::parse(made["product_id"].as_str().unwrap_or("gems_100")).unwrap();
        let signed_data = signed.then(|| SignedData {
            data: made["original_json"].as_str().unwrap().to_owned(),
            signature: made["signature"].as_str().unwrap().to_owned(),
        });
        let proof = PurchaseProof::Google {
            purchase_token: made["purchase_token"].as_str().unwrap().to_owned(),
            product_id: product,
            signed_data,
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

    async fn buy(&self, product: &str, kind: &str, extra: Value) -> Value {
        let mut body = json!({ "package_name": PACKAGE, "product_id": product, "kind": kind });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let mut made = self.control("/google/purchases", body).await;
        made["product_id"] = json!(product);
        made
    }
}

fn code(
    result: Result<iap_domain::purchase::VerifiedPurchase, StoreError>,
) -> (RejectReason, &'static str) {
    match result {
        Err(StoreError::Rejected { reason, code, .. }) => (reason, code),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn one_time_purchases() {
    let s = Setup::new().await;
    let made = s.buy("gems_100", "inapp", json!({ "obfuscated_profile_id": "0192f7a4-55e4-7c1e-9f3e-3a1d1c2b4e5f", "quantity": 3 })).await;
    let verified = s
        .verify(ProductKind::Consumable, &made, true)
        .await
        .unwrap();
    assert_eq!(verified.status, PurchaseStatus::Purchased);
    assert_eq!(verified.environment, Environment::Production);
    // The replay key is Google's order id as Google returned it, not the client's token.
    assert_eq!(
        verified.store_transaction_id,
        made["order_id"].as_str().unwrap()
    );
    assert_eq!(
        verified.purchase_token.as_deref(),
        made["purchase_token"].as_str()
    );
    assert_eq!(
        verified.store_order_id.as_deref(),
        made["order_id"].as_str()
    );
    assert_eq!(
        verified.carried_order_id.as_deref(),
        Some("0192f7a4-55e4-7c1e-9f3e-3a1d1c2b4e5f")
    );
    assert_eq!(verified.quantity, 3);
    assert_eq!(verified.consumed, Some(false));

    // A forged JSON is refused: the licence key refuses it, and Google, asked once to tell a
    // forgery from a wrong key of ours, does not describe the purchase as the JSON does.
    let calls = s
        .stats()
        .await
        .get("google.productsv2.get")
        .copied()
        .unwrap_or(0);
    let mut forged = made.clone();
    forged["original_json"] = json!(
        made["original_json"]
            .as_str()
            .unwrap()
            .replace("\"quantity\":3", "\"quantity\":30")
    );
    assert_eq!(
        code(s.verify(ProductKind::Consumable, &forged, true).await),
        (RejectReason::SignatureInvalid, "signature_invalid")
    );
    assert_eq!(
        s.stats().await.get("google.productsv2.get").copied(),
        Some(calls + 1)
    );

    let pending = s.buy("gems_100", "inapp", json!({ "pending": true })).await;
    assert_eq!(
        s.verify(ProductKind::Consumable, &pending, false)
            .await
            .unwrap()
            .status,
        PurchaseStatus::Pending
    );
    let test = s
        .buy("gems_100", "inapp", json!({ "test_purchase": true }))
        .await;
    assert_eq!(
        s.verify(ProductKind::Consumable, &test, false)
            .await
            .unwrap()
            .environment,
        Environment::Sandbox
    );

    let unknown = json!({ "purchase_token": "no-such-token", "product_id": "gems_100" });
    assert_eq!(
        code(s.verify(ProductKind::Consumable, &unknown, false).await).0,
        RejectReason::NotFoundAtStore
    );
    let token = made["purchase_token"].as_str().unwrap();
    s.control(
        &format!("/google/purchases/{token}/invalidate_token"),
        json!({}),
    )
    .await;
    assert_eq!(
        code(s.verify(ProductKind::Consumable, &made, false).await).1,
        "token_no_longer_valid"
    );

    // One access token served every call.
    assert_eq!(s.stats().await.get("google.oauth2.token").copied(), Some(1));
}

#[tokio::test]
async fn subscriptions_key_on_the_order_id_of_each_renewal() {
    let s = Setup::new().await;
    let first = s
        .buy("premium_monthly", "subs", json!({ "free_trial": true }))
        .await;
    let verified = s
        .verify(ProductKind::AutoRenewable, &first, true)
        .await
        .unwrap();
    assert_eq!(
        verified.store_transaction_id,
        first["order_id"].as_str().unwrap()
    );
    assert!(verified.is_trial);
    assert!(verified.expires_at.is_some_and(|t| t > chrono::Utc::now()));
    let token = first["purchase_token"].as_str().unwrap();
    let renewed = s
        .control(&format!("/google/subscriptions/{token}/renew"), json!({}))
        .await;
    let again = s
        .verify(ProductKind::AutoRenewable, &first, false)
        .await
        .unwrap();
    assert_eq!(
        again.store_transaction_id,
        renewed["latest_order_id"].as_str().unwrap()
    );
    assert_ne!(again.store_transaction_id, verified.store_transaction_id);

    let upgraded = s
        .buy(
            "premium_yearly",
            "subs",
            json!({ "linked_purchase_token": token }),
        )
        .await;
    let up = s
        .verify(ProductKind::AutoRenewable, &upgraded, false)
        .await
        .unwrap();
    assert_eq!(up.linked_purchase_token.as_deref(), Some(token));
}

#[tokio::test]
async fn outages_are_retryable() {
    let s = Setup::new().await;
    let made = s.buy("gems_100", "inapp", json!({})).await;
    s.control(
        "/faults",
        json!({ "path_prefix": "/google/androidpublisher", "kind": "http503" }),
    )
    .await;
    assert!(matches!(
        s.verify(ProductKind::Consumable, &made, false).await,
        Err(StoreError::Unavailable { .. })
    ));
    s.control(
        "/faults",
        json!({ "path_prefix": "/google/androidpublisher", "kind": "http429" }),
    )
    .await;
    let limited = s.verify(ProductKind::Consumable, &made, false).await;
    assert!(
        matches!(
            limited,
            Err(StoreError::Unavailable {
                retry_after: Some(_),
                ..
            })
        ),
        "{limited:?}"
    );
    assert!(
        s.verify(ProductKind::Consumable, &made, false)
            .await
            .is_ok(),
        "faults disarm"
    );
}
