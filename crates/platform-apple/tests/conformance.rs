//! The JWS verifier against Apple's own vectors (../shared/conformance/apple): the official test
//! chain, a real Apple-signed notification under the real Apple Root CA G3, and chains minted
//! here from Apple's test keys to reach each refusal.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::Digest;

use iap_domain::ports::StoreError;
use iap_platform_apple::jws::{self, APPLE_ROOT_CA_G3_SHA256, ChainTrust, JwsError};
use iap_platform_apple::model::{NotificationPayload, RenewalInfoPayload, TransactionPayload};

const NOW_MS: i64 = 1_800_000_000_000;

fn vector(path: &str) -> Vec<u8> {
    let full = format!(
        "{}/../../../shared/conformance/apple/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn text(path: &str) -> String {
    String::from_utf8(vector(path)).unwrap().trim().to_owned()
}

fn test_trust() -> ChainTrust {
    ChainTrust::empty().with_root(vector("official-test/testCA.der"))
}

/// The base64 body of the PEM block (the files also carry OpenSSL's text dump).
fn pem_der(path: &str) -> String {
    let pem = text(path);
    let body = pem.split("-----BEGIN CERTIFICATE-----").nth(1).unwrap();
    body.split("-----END CERTIFICATE-----")
        .next()
        .unwrap()
        .lines()
        .map(str::trim)
        .collect()
}

/// Signs `payload` with Apple's test leaf key (SEC1 PEM) under the given x5c chain.
fn mint(payload: &Value, chain: &[&str]) -> String {
    use p256::ecdsa::signature::Signer;
    let header =
        json!({ "alg": "ES256", "x5c": chain.iter().map(|p| pem_der(p)).collect::<Vec<_>>() });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let secret = p256::SecretKey::from_sec1_pem(&text("official-test/testLeaf.key")).unwrap();
    let signature: p256::ecdsa::Signature =
        p256::ecdsa::SigningKey::from(secret).sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

const GOOD_CHAIN: [&str; 3] = [
    "official-test/testLeaf.pem",
    "official-test/testIntermediate.pem",
    "official-test/testCA.pem",
];

#[test]
fn pinned_fingerprint_is_the_real_apple_root_ca_g3() {
    let digest = sha2::Sha256::digest(vector("real/AppleRootCA-G3.der"));
    assert_eq!(hex::encode(digest), APPLE_ROOT_CA_G3_SHA256);
}

#[test]
fn official_test_vectors_verify_with_the_test_root() {
    let transaction = jws::verify::<TransactionPayload>(
        &text("official-test/transactionInfo"),
        &test_trust(),
        NOW_MS,
    )
    .unwrap();
    assert_eq!(
        transaction.payload.bundle_id.as_deref(),
        Some("com.example")
    );
    assert_eq!(
        transaction.payload.environment(),
        Some(iap_domain::Environment::Sandbox)
    );
    assert!(transaction.signed_date_ms.is_some());

    let renewal = jws::verify::<RenewalInfoPayload>(
        &text("official-test/renewalInfo"),
        &test_trust(),
        NOW_MS,
    )
    .unwrap();
    // Apple's renewalInfo vector carries only its environment and signedDate.
    assert_eq!(renewal.payload.environment.as_deref(), Some("Sandbox"));
    assert_eq!(renewal.signed_date_ms, Some(1_672_956_154_000));

    let notification = jws::verify::<NotificationPayload>(
        &text("official-test/testNotification"),
        &test_trust(),
        NOW_MS,
    )
    .unwrap();
    assert_eq!(notification.payload.bundle_id(), Some("com.example"));
    assert_eq!(notification.payload.app_apple_id(), Some(1234));

    // wrongBundleId is properly signed; the bundle check is the verifier's, not the chain's.
    let wrong = jws::verify::<TransactionPayload>(
        &text("official-test/wrongBundleId"),
        &test_trust(),
        NOW_MS,
    )
    .unwrap();
    assert_ne!(wrong.payload.bundle_id.as_deref(), Some("com.example"));
}

#[test]
fn the_real_notification_verifies_only_under_the_real_root() {
    let jws = text("real/realTestNotification.jws");
    let verified =
        jws::verify::<NotificationPayload>(&jws, &ChainTrust::default(), NOW_MS).unwrap();
    assert_eq!(verified.payload.notification_type.as_deref(), Some("TEST"));
    assert_eq!(
        verified.payload.bundle_id(),
        Some("com.loki-project.loki-messenger")
    );
    assert_eq!(verified.signed_date_ms, Some(1_757_035_472_686));

    // Apple's genuine signature under trust settings that leave Apple's root out: our
    // configuration is wrong, not the data (a misconfiguration, never SIGNATURE_INVALID).
    let err = jws::verify::<NotificationPayload>(&jws, &test_trust(), NOW_MS).unwrap_err();
    assert_eq!(err, JwsError::AppleRootNotTrusted);
    assert!(matches!(
        StoreError::from(err),
        StoreError::Misconfigured(_)
    ));
    // The same chain over an edited payload is a forgery whatever the settings.
    let mut parts: Vec<String> = jws.split('.').map(str::to_owned).collect();
    let payload = URL_SAFE_NO_PAD.decode(&parts[1]).unwrap();
    let edited = String::from_utf8(payload)
        .unwrap()
        .replace("TEST", "REFUND");
    parts[1] = URL_SAFE_NO_PAD.encode(edited);
    let forged = parts.join(".");
    for trust in [test_trust(), ChainTrust::default()] {
        let err = jws::verify::<NotificationPayload>(&forged, &trust, NOW_MS).unwrap_err();
        assert_eq!(err, JwsError::SignatureInvalid);
    }
    // A chain ending at a root that is not Apple's stays untrusted.
    // Apple's test vectors do not pass under the default (real) trust either.
    let err = jws::verify::<Value>(
        &text("official-test/transactionInfo"),
        &ChainTrust::default(),
        NOW_MS,
    )
    .unwrap_err();
    assert_eq!(err.code(), "untrusted_root");
}

#[test]
fn each_defect_has_its_own_reason() {
    let err = jws::verify::<Value>(
        &text("official-test/missingX5CHeaderClaim"),
        &test_trust(),
        NOW_MS,
    )
    .unwrap_err();
    assert_eq!(err.code(), "x5c_missing");

    let payload = json!({ "bundleId": "com.example", "signedDate": 1_700_000_000_000_i64, "environment": "Sandbox" });
    let good = mint(&payload, &GOOD_CHAIN);
    jws::verify::<Value>(&good, &test_trust(), NOW_MS).expect("a minted chain verifies");

    let wrong_leaf = mint(
        &payload,
        &[
            "official-test/testInvalidOIDLeaf.pem",
            GOOD_CHAIN[1],
            GOOD_CHAIN[2],
        ],
    );
    assert_eq!(
        jws::verify::<Value>(&wrong_leaf, &test_trust(), NOW_MS)
            .unwrap_err()
            .code(),
        "apple_oid_missing"
    );
    let wrong_intermediate = mint(
        &payload,
        &[
            GOOD_CHAIN[0],
            "official-test/testInvalidOIDIntermediate.pem",
            GOOD_CHAIN[2],
        ],
    );
    let err = jws::verify::<Value>(&wrong_intermediate, &test_trust(), NOW_MS).unwrap_err();
    assert!(
        matches!(err.code(), "apple_oid_missing" | "chain_signature_invalid"),
        "{err}"
    );

    let two = mint(&payload, &GOOD_CHAIN[..2]);
    assert_eq!(
        jws::verify::<Value>(&two, &test_trust(), NOW_MS).unwrap_err(),
        JwsError::X5cLength(2)
    );

    // Tampered payload: same header and signature, another product.
    let parts: Vec<&str> = good.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(
        json!({ "bundleId": "com.example", "signedDate": 1_700_000_000_000_i64, "price": 1 })
            .to_string(),
    );
    let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
    assert_eq!(
        jws::verify::<Value>(&tampered, &test_trust(), NOW_MS)
            .unwrap_err()
            .code(),
        "signature_invalid"
    );

    // Signed when the chain had expired (the test certificates end in 2032/2033) or was not
    // yet valid (they start in 2023).
    let late = mint(&json!({ "signedDate": 2_100_000_000_000_i64 }), &GOOD_CHAIN);
    assert_eq!(
        jws::verify::<Value>(&late, &test_trust(), NOW_MS)
            .unwrap_err()
            .code(),
        "certificate_expired"
    );
    let early = mint(&json!({ "signedDate": 1_500_000_000_000_i64 }), &GOOD_CHAIN);
    assert_eq!(
        jws::verify::<Value>(&early, &test_trust(), NOW_MS)
            .unwrap_err()
            .code(),
        "certificate_not_yet_valid"
    );

    // alg other than ES256, including none.
    let header = URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "x5c": [] }).to_string());
    let none = format!("{header}.{}.", parts[1]);
    assert_eq!(
        jws::verify::<Value>(&none, &test_trust(), NOW_MS)
            .unwrap_err()
            .code(),
        "alg_unsupported"
    );
    assert_eq!(
        jws::verify::<Value>("not-a-jws", &test_trust(), NOW_MS)
            .unwrap_err()
            .code(),
        "malformed"
    );
    // A root presented in x5c is never trusted for its bytes alone.
    let self_made = STANDARD.encode(vector("official-test/testCA.der"));
    assert!(!self_made.is_empty());
    assert_eq!(
        jws::verify::<Value>(&good, &ChainTrust::empty(), NOW_MS)
            .unwrap_err()
            .code(),
        "untrusted_root"
    );
}

/// The verifier, not only the JWS layer: an environment Apple does not define is refused with
/// ENVIRONMENT_MISMATCH, a foreign bundle with BUNDLE_MISMATCH, and a good one is accepted.
#[tokio::test]
async fn the_verifier_checks_bundle_and_environment_after_the_chain() {
    use iap_domain::ports::{PurchaseVerifier, StoreError, VerifyContext};
    use iap_domain::purchase::PurchaseProof;
    use iap_domain::{AppId, RejectReason};

    let app = AppId::parse("com.example").unwrap();
    let config: iap_platform_apple::AppleAppConfig = serde_json::from_value(json!({
        "bundle_id": "com.example",
        "app_apple_id": 1234,
        "trust_apple_root": false,
        "extra_roots_base64": [STANDARD.encode(vector("official-test/testCA.der"))],
    }))
    .unwrap();
    let verifier = iap_platform_apple::AppleVerifier::new([(&app, &config)]).unwrap();
    let transaction = |bundle: &str, environment: &str| {
        mint(
            &json!({ "bundleId": bundle, "environment": environment,
                "signedDate": 1_700_000_000_000_i64, "transactionId": "2000000000000001",
                "originalTransactionId": "2000000000000001", "productId": "gems_100",
                "type": "Consumable", "quantity": 1, "purchaseDate": 1_700_000_000_000_i64 }),
            &GOOD_CHAIN,
        )
    };
    let verify = |jws: String| {
        let verifier = &verifier;
        let app = &app;
        async move {
            let ctx = VerifyContext {
                app_id: app,
                product: None,
                ledger: None,
            };
            verifier
                .verify(ctx, &PurchaseProof::AppleSignedTransaction(jws))
                .await
        }
    };
    let reason = |result: Result<_, StoreError>| match result {
        Err(StoreError::Rejected { reason, code, .. }) => (reason, code),
        other => panic!("expected a rejection, got {other:?}"),
    };

    let ok = verify(transaction("com.example", "Sandbox")).await.unwrap();
    assert_eq!(ok.store_transaction_id, "2000000000000001");
    assert_eq!(
        reason(verify(transaction("com.example", "Staging")).await),
        (RejectReason::EnvironmentMismatch, "environment_unknown")
    );
    assert_eq!(
        reason(verify(transaction("com.other", "Sandbox")).await).0,
        RejectReason::BundleMismatch
    );
}

/// A Production notification is ours only when it names our app's Apple id: one for another app
/// under the same bundle id, or one naming no app at all, is refused, as Apple's own library
/// refuses them. A Sandbox notification carries no app id to check.
#[tokio::test]
async fn a_production_notification_must_name_the_apps_apple_id() {
    use iap_domain::AppId;
    use iap_domain::notifications::NotificationDecoder;
    use iap_domain::ports::StoreError;

    let app = AppId::parse("com.example").unwrap();
    let config: iap_platform_apple::AppleAppConfig = serde_json::from_value(json!({
        "bundle_id": "com.example",
        "app_apple_id": 1234,
        "trust_apple_root": false,
        "extra_roots_base64": [STANDARD.encode(vector("official-test/testCA.der"))],
    }))
    .unwrap();
    let verifier = iap_platform_apple::AppleVerifier::new([(&app, &config)]).unwrap();
    let notification = |environment: &str, app_apple_id: Option<i64>| {
        let mut data = json!({ "bundleId": "com.example", "environment": environment });
        if let Some(id) = app_apple_id {
            data["appAppleId"] = json!(id);
        }
        let payload = json!({ "notificationType": "TEST", "version": "2.0",
            "notificationUUID": format!("{environment}-{app_apple_id:?}"),
            "signedDate": 1_700_000_000_000_i64, "data": data });
        json!({ "signedPayload": mint(&payload, &GOOD_CHAIN) }).to_string()
    };

    assert!(
        verifier
            .decode(&notification("Production", Some(1234)))
            .await
            .is_ok()
    );
    assert!(
        verifier
            .decode(&notification("Sandbox", None))
            .await
            .is_ok()
    );
    for stranger in [Some(9999), None] {
        match verifier.decode(&notification("Production", stranger)).await {
            Err(StoreError::Rejected { code, .. }) => assert_eq!(code, "app_apple_id_mismatch"),
            other => panic!("appAppleId {stranger:?} was not refused: {other:?}"),
        }
    }
}

/// An App Store app without its Apple id is a configuration error: the verifier is not built,
/// and the message names the key.
#[test]
fn an_app_without_its_apple_id_is_refused_at_start() {
    use iap_domain::AppId;

    let app = AppId::parse("com.example").unwrap();
    let config: iap_platform_apple::AppleAppConfig =
        serde_json::from_value(json!({ "bundle_id": "com.example" })).unwrap();
    let error = iap_platform_apple::AppleVerifier::new([(&app, &config)]).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("apps.com.example.apple") && message.contains("app_apple_id"),
        "{message}"
    );
}

/// A real App Store Server Notification (Apple-signed TEST for a real app), posted the way Apple
/// posts it, is authenticated under the pinned Apple Root CA G3 and answered as a test; the same
/// body for an app we do not serve, or under the test root only, is refused.
#[tokio::test]
async fn a_real_apple_notification_is_decoded_by_the_receiver() {
    use iap_domain::notifications::{NotificationDecoder, StoreEvent};
    use iap_domain::{AppId, Platform};

    let body = json!({ "signedPayload": text("real/realTestNotification.jws") }).to_string();
    let app = AppId::parse("loki-messenger").unwrap();
    let config: iap_platform_apple::AppleAppConfig = serde_json::from_value(
        json!({ "bundle_id": "com.loki-project.loki-messenger", "app_apple_id": 1 }),
    )
    .unwrap();
    let verifier = iap_platform_apple::AppleVerifier::new([(&app, &config)]).unwrap();
    let decoded = verifier.decode(&body).await.unwrap();
    assert_eq!(decoded.inbound.platform, Platform::Apple);
    assert_eq!(decoded.inbound.notification_type, "TEST");
    assert_eq!(decoded.inbound.app_id, Some(app.clone()));
    assert!(!decoded.inbound.notification_id.is_empty());
    assert!(matches!(decoded.event, StoreEvent::Ignored(_)));

    let other: iap_platform_apple::AppleAppConfig =
        serde_json::from_value(json!({ "bundle_id": "com.example.other", "app_apple_id": 1 }))
            .unwrap();
    let stranger = iap_platform_apple::AppleVerifier::new([(&app, &other)]).unwrap();
    assert!(stranger.decode(&body).await.is_err(), "not our bundle");

    let untrusting: iap_platform_apple::AppleAppConfig = serde_json::from_value(json!({
        "bundle_id": "com.loki-project.loki-messenger",
        "app_apple_id": 1,
        "trust_apple_root": false,
        "extra_roots_base64": [STANDARD.encode(vector("official-test/testCA.der"))],
    }))
    .unwrap();
    let wrong_root = iap_platform_apple::AppleVerifier::new([(&app, &untrusting)]).unwrap();
    assert!(wrong_root.decode(&body).await.is_err(), "untrusted root");
}
