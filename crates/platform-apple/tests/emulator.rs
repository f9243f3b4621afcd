//! What the emulator signs verifies here when its root is trusted, and only then.

use serde_json::json;

use iap_platform_apple::jws::{self, ChainTrust};
use iap_platform_apple::model::{NotificationPayload, TransactionPayload};

#[tokio::test]
async fn emulator_signed_data_verifies_under_the_emulator_root_only() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(iap_emulator::serve(
        listener,
        iap_emulator::EmulatorConfig::default(),
        std::future::pending(),
    ));
    let http = reqwest::Client::new();
    let root = http
        .get(format!("{base}/emulator/apple/root.der"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
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
    let trust = ChainTrust::empty().with_root(root.to_vec());
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
