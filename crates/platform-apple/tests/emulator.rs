//! What the emulator signs verifies here when its root is trusted, and only then.

use serde_json::json;

use iap_emulator::DEFAULT_APP_APPLE_ID as EMULATOR_APP_APPLE_ID;

use iap_platform_apple::AppleAppConfig;
use iap_platform_apple::jws::{self, ChainTrust};
use iap_platform_apple::model::{NotificationPayload, TransactionPayload};
use iap_test_support::emulator::Emulator;

/// `[apps.<id>.apple]` of `com.example.game` at the emulator: Apple's root trusted (so not the
/// emulator's signatures), no shared secret, no App Store Server API credentials.
fn at_emulator(emulator: &Emulator) -> AppleAppConfig {
    AppleAppConfig {
        bundle_id: "com.example.game".into(),
        app_apple_id: Some(EMULATOR_APP_APPLE_ID),
        trust_apple_root: true,
        extra_roots_base64: Vec::new(),
        shared_secret: None,
        verify_receipt_production_url: emulator.url("/apple/production/verifyReceipt"),
        verify_receipt_sandbox_url: emulator.url("/apple/sandbox/verifyReceipt"),
        api: None,
        api_production_url: emulator.url("/apple/production"),
        api_sandbox_url: emulator.url("/apple/sandbox"),
        consumption: None,
    }
}

/// The same, trusting the emulator's root instead of Apple's.
async fn trusting_the_emulator(emulator: &Emulator) -> AppleAppConfig {
    AppleAppConfig {
        trust_apple_root: false,
        extra_roots_base64: vec![emulator.apple_root_base64().await],
        ..at_emulator(emulator)
    }
}

#[tokio::test]
async fn emulator_signed_data_verifies_under_the_emulator_root_only() {
    let emulator = Emulator::start().await;
    let (base, http) = (emulator.base.clone(), emulator.http.clone());
    let root = emulator.apple_root_der().await;
    let made: serde_json::Value = http
        .post(format!("{base}/emulator/apple/purchases"))
        .json(&json!({ "bundle_id": "com.example.game", "product_id": "premium", "product_type": "Auto-Renewable Subscription", "free_trial": true }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let trust = ChainTrust::empty().with_root(root);
    let transaction = jws::verify::<TransactionPayload>(
        made["signed_transaction"].as_str().unwrap(),
        &trust,
        now,
    )
    .unwrap();
    assert_eq!(
        transaction.payload.kind(),
        Some(iap_domain::ProductKind::AutoRenewable)
    );
    assert!(transaction.payload.is_free_trial());
    let notification = jws::verify::<NotificationPayload>(
        made["notification"]["signedPayload"].as_str().unwrap(),
        &trust,
        now,
    )
    .unwrap();
    assert_eq!(
        notification.payload.notification_type.as_deref(),
        Some("SUBSCRIBED")
    );

    // The production trust (Apple Root CA G3) refuses the emulator's chain.
    let err = jws::verify::<TransactionPayload>(
        made["signed_transaction"].as_str().unwrap(),
        &ChainTrust::default(),
        now,
    )
    .unwrap_err();
    assert_eq!(err.code(), "untrusted_root");
}

/// Legacy receipts through verifyReceipt: production first, the sandbox redirect, the shared
/// secret, the right transaction picked among several, retries through transient failures.
#[tokio::test]
async fn legacy_receipts_go_through_verify_receipt() {
    use iap_domain::ports::{PurchaseVerifier, StoreError, VerifyContext};
    use iap_domain::purchase::PurchaseProof;
    use iap_platform_apple::AppleVerifier;

    let emulator = Emulator::start().await;
    let (base, http) = (emulator.base.clone(), emulator.http.clone());
    let config = |shared_secret: Option<String>| AppleAppConfig {
        shared_secret,
        ..at_emulator(&emulator)
    };
    let app = iap_domain::AppId::parse("game").unwrap();
    let good = config(Some(emulator.apple_shared_secret("com.example.game").await));
    let verifier = AppleVerifier::new([(&app, &good)]).unwrap();
    let buy = |product: &str, product_type: &str| {
        let body = json!({ "bundle_id": "com.example.game", "product_id": product, "product_type": product_type,
                           "app_account_token": "0192f7a4-55e4-7c1e-9f3e-3a1d1c2b4e5f" });
        let (http, base) = (http.clone(), base.clone());
        async move {
            http.post(format!("{base}/emulator/apple/purchases"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let first = buy("gems_100", "Consumable").await;
    let second = buy("no_ads", "Non-Consumable").await;
    let ctx = VerifyContext {
        app_id: &app,
        product: None,
        ledger: None,
    };
    let receipt =
        |made: &serde_json::Value, id: Option<&serde_json::Value>| PurchaseProof::AppleReceipt {
            receipt_data: made["receipt_data"].as_str().unwrap().into(),
            product_id: None,
            transaction_id: id.and_then(|v| v.as_str()).map(str::to_owned),
        };

    // The second receipt holds both purchases: the transaction id picks one.
    let verified = verifier
        .verify(
            ctx.clone(),
            &receipt(&second, Some(&first["transaction_id"])),
        )
        .await
        .unwrap();
    assert_eq!(
        verified.store_transaction_id,
        first["transaction_id"].as_str().unwrap()
    );
    assert_eq!(
        verified.environment,
        iap_domain::Environment::Sandbox,
        "redirected on 21007"
    );
    assert_eq!(
        verified.carried_order_id.as_deref(),
        Some("0192f7a4-55e4-7c1e-9f3e-3a1d1c2b4e5f")
    );
    let ambiguous = verifier.verify(ctx.clone(), &receipt(&second, None)).await;
    assert!(matches!(
        ambiguous,
        Err(StoreError::Rejected {
            code: "transaction_not_in_receipt",
            ..
        })
    ));

    // Transient failures are retried.
    http.post(format!("{base}/emulator/faults"))
        .json(&json!({ "path_prefix": "/apple/sandbox/verifyReceipt", "kind": "http503", "count": 2 }))
        .send()
        .await
        .unwrap();
    assert!(
        verifier
            .verify(
                ctx.clone(),
                &receipt(&first, Some(&first["transaction_id"]))
            )
            .await
            .is_ok()
    );

    // Subscription receipts need the right shared secret.
    let sub = buy("premium_monthly", "Auto-Renewable Subscription").await;
    let proof = receipt(&sub, Some(&sub["transaction_id"]));
    assert!(
        verifier
            .verify(ctx.clone(), &proof)
            .await
            .unwrap()
            .expires_at
            .is_some()
    );
    let wrong = AppleVerifier::new([(&app, &config(Some("wrong".into())))]).unwrap();
    assert!(matches!(
        wrong.verify(ctx, &proof).await,
        Err(StoreError::Misconfigured(_))
    ));
}

/// A purchase named only by its transaction id is fetched from the App Store Server API
/// (production, then sandbox) and verified like any signed transaction.
#[tokio::test]
async fn transaction_ids_are_looked_up_with_the_server_api() {
    use iap_domain::ports::{PurchaseVerifier, StoreError, VerifyContext};
    use iap_domain::purchase::PurchaseProof;
    use iap_platform_apple::AppleVerifier;
    use iap_platform_apple::server_api::ApiCredentials;

    let emulator = Emulator::start().await;
    let (base, http) = (emulator.base.clone(), emulator.http.clone());
    let key = emulator.apple_api_key().await;
    let config = AppleAppConfig {
        api: Some(ApiCredentials {
            issuer_id: key["issuer_id"].as_str().unwrap().into(),
            key_id: key["key_id"].as_str().unwrap().into(),
            private_key_pem: key["private_key_pem"].as_str().unwrap().into(),
        }),
        ..trusting_the_emulator(&emulator).await
    };
    let app = iap_domain::AppId::parse("game").unwrap();
    let verifier = AppleVerifier::new([(&app, &config)]).unwrap();
    let made: serde_json::Value = http
        .post(format!("{base}/emulator/apple/purchases"))
        .json(&json!({ "bundle_id": "com.example.game", "product_id": "gems_100", "product_type": "Consumable" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = made["transaction_id"].as_str().unwrap().to_owned();
    let ctx = VerifyContext {
        app_id: &app,
        product: None,
        ledger: None,
    };
    let verified = verifier
        .verify(ctx.clone(), &PurchaseProof::AppleTransactionId(id.clone()))
        .await
        .unwrap();
    assert_eq!(verified.store_transaction_id, id);
    assert_eq!(
        verified.environment,
        iap_domain::Environment::Sandbox,
        "found in sandbox after production's 4040010"
    );

    let unknown = verifier
        .verify(ctx.clone(), &PurchaseProof::AppleTransactionId("1".into()))
        .await;
    assert!(
        matches!(
            unknown,
            Err(StoreError::Rejected {
                code: "transaction_not_found",
                ..
            })
        ),
        "{unknown:?}"
    );

    http.post(format!("{base}/emulator/faults"))
        .json(&json!({ "path_prefix": "/apple/production/inApps", "kind": "http429" }))
        .send()
        .await
        .unwrap();
    let limited = verifier
        .verify(ctx, &PurchaseProof::AppleTransactionId(id))
        .await;
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
}

/// A prorated refund's share is rounded to units as the app is configured
/// (`apps.<id>.partial_refund_rounding`): 3 units refunded at 50 % are 1.5 units.
#[tokio::test]
async fn a_prorated_refund_is_rounded_as_the_app_configures() {
    use iap_domain::notifications::{NotificationDecoder, StoreEvent};
    use iap_domain::refunds::{PartialRefundRounding, RefundShare};
    use iap_platform_apple::AppleVerifier;
    let emulator = Emulator::start().await;
    let (base, http) = (emulator.base.clone(), emulator.http.clone());
    let config = trusting_the_emulator(&emulator).await;
    let made: serde_json::Value = http
        .post(format!("{base}/emulator/apple/purchases"))
        .json(
            &json!({ "bundle_id": "com.example.game", "product_id": "gems_100",
            "product_type": "Consumable", "quantity": 3 }),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = made["transaction_id"].as_str().unwrap();
    let refunded: serde_json::Value = http
        .post(format!("{base}/emulator/apple/transactions/{id}/refund"))
        .json(&json!({ "percentage": 50_000 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let body = refunded["notification"].to_string();
    let app = iap_domain::AppId::parse("game").unwrap();
    for (rounding, units) in [
        (None, 2),
        (Some(PartialRefundRounding::Nearest), 2),
        (Some(PartialRefundRounding::Down), 1),
        (Some(PartialRefundRounding::Up), 2),
    ] {
        let mut verifier = AppleVerifier::new([(&app, &config)]).unwrap();
        if let Some(rounding) = rounding {
            verifier = verifier.with_partial_refund_rounding(&app, rounding);
        }
        let decoded = verifier.decode(&body).await.unwrap();
        let StoreEvent::Refunded { share, cause, .. } = decoded.event else {
            panic!("not a refund: {:?}", decoded.event);
        };
        assert_eq!(share, RefundShare::Units(units), "{rounding:?}");
        assert_eq!(cause.source.as_deref(), Some("REFUND_PRORATED"));
    }
}

/// Without App Store Server API credentials, a legacy subscription is followed through the
/// `latest_receipt` Apple returned with it: the renewal Apple made since shows, and the receipt
/// itself never shows in `Debug` output.
#[tokio::test]
async fn a_legacy_subscription_is_followed_through_its_kept_receipt() {
    use iap_domain::ports::{PurchaseVerifier, StoreError, VerifyContext};
    use iap_domain::purchase::PurchaseProof;
    use iap_domain::subscriptions::{SubscriptionRef, SubscriptionState};
    use iap_platform_apple::AppleVerifier;

    let emulator = Emulator::start().await;
    let (base, http) = (emulator.base.clone(), emulator.http.clone());
    let post = |path: String, body: serde_json::Value| {
        let http = http.clone();
        async move {
            http.post(path)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let config = AppleAppConfig {
        shared_secret: Some(emulator.apple_shared_secret("com.example.game").await),
        ..at_emulator(&emulator)
    };
    let app = iap_domain::AppId::parse("game").unwrap();
    let verifier = AppleVerifier::new([(&app, &config)]).unwrap();
    let ctx = VerifyContext {
        app_id: &app,
        product: None,
        ledger: None,
    };

    // A consumable's answer keeps no receipt: there is nothing to follow.
    let gems = post(
        format!("{base}/emulator/apple/purchases"),
        json!({ "bundle_id": "com.example.game", "product_id": "gems_100", "product_type": "Consumable", "customer": "p1" }),
    )
    .await;
    let consumable = verifier
        .verify(
            ctx.clone(),
            &PurchaseProof::AppleReceipt {
                receipt_data: gems["receipt_data"].as_str().unwrap().into(),
                product_id: None,
                transaction_id: gems["transaction_id"].as_str().map(str::to_owned),
            },
        )
        .await
        .unwrap();
    assert_eq!(consumable.latest_receipt, None);

    let sub = post(
        format!("{base}/emulator/apple/purchases"),
        json!({ "bundle_id": "com.example.game", "product_id": "premium_monthly",
                "product_type": "Auto-Renewable Subscription", "customer": "p1" }),
    )
    .await;
    let first = verifier
        .verify(
            ctx.clone(),
            &PurchaseProof::AppleReceipt {
                receipt_data: sub["receipt_data"].as_str().unwrap().into(),
                product_id: None,
                transaction_id: sub["transaction_id"].as_str().map(str::to_owned),
            },
        )
        .await
        .unwrap();
    let kept = first
        .latest_receipt
        .clone()
        .expect("an auto-renewable answer carries latest_receipt");
    assert!(!format!("{first:?}").contains(kept.expose()));
    let original = first.original_transaction_id.clone().unwrap();
    let renewed = post(
        format!("{base}/emulator/apple/subscriptions/{original}/renew"),
        json!({}),
    )
    .await;

    let reference = |receipt| SubscriptionRef {
        app_id: app.clone(),
        platform: iap_domain::Platform::Apple,
        key: original.clone(),
        product_id: None,
        purchase_token: None,
        environment: Some(first.environment),
        receipt,
    };
    let now = verifier.subscription(&reference(Some(kept))).await.unwrap();
    assert_eq!(
        now.latest.store_transaction_id,
        renewed["transaction_id"].as_str().unwrap(),
        "the newest period of the chain"
    );
    assert_ne!(now.latest.store_transaction_id, first.store_transaction_id);
    assert_eq!(now.state, SubscriptionState::Active);
    assert_eq!(now.auto_renew, Some(true));
    assert!(now.latest.expires_at > first.expires_at);
    assert!(now.latest.latest_receipt.is_some());

    // No credentials and no receipt: a configuration error, not a guess.
    assert!(matches!(
        verifier.subscription(&reference(None)).await,
        Err(StoreError::Misconfigured(_))
    ));
}
