//! App Store JWS (signed transactions, renewal infos, notification payloads) and the mapping of a
//! signed transaction to a purchase. Under Apple's real trust (Root CA G3 pinned) no input ever
//! verifies; under the fixture's test root only what the fixture signed verifies, and a verified
//! transaction is only ever for the configured bundle.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

use iap_domain::ports::{PurchaseVerifier, VerifyContext};
use iap_domain::purchase::PurchaseProof;
use iap_domain::{AppId, Platform};
use iap_fuzz::{NOW_MS, apple, block_on};
use iap_platform_apple::jws::{self, ChainTrust};
use iap_platform_apple::model::{NotificationPayload, RenewalInfoPayload, TransactionPayload};
use iap_platform_apple::{AppleAppConfig, AppleVerifier};

static REAL: LazyLock<ChainTrust> = LazyLock::new(ChainTrust::default);
static TEST: LazyLock<ChainTrust> = LazyLock::new(|| apple::fixture().trust());
static APP: LazyLock<AppId> = LazyLock::new(|| AppId::parse("game").unwrap());
static VERIFIER: LazyLock<AppleVerifier> = LazyLock::new(|| {
    use base64::Engine;
    let config = AppleAppConfig {
        bundle_id: apple::BUNDLE.into(),
        app_apple_id: Some(apple::APP_APPLE_ID),
        trust_apple_root: false,
        extra_roots_base64: vec![
            base64::engine::general_purpose::STANDARD.encode(&apple::fixture().root_der),
        ],
        shared_secret: None,
        verify_receipt_production_url: "http://127.0.0.1:9/verifyReceipt".into(),
        verify_receipt_sandbox_url: "http://127.0.0.1:9/verifyReceipt".into(),
        api: None,
        api_production_url: "http://127.0.0.1:9/".into(),
        api_sandbox_url: "http://127.0.0.1:9/".into(),
        consumption: None,
    };
    AppleVerifier::new([(&*APP, &config)]).unwrap()
});

fuzz_target!(|data: &[u8]| {
    let Ok(jws) = std::str::from_utf8(data) else {
        return;
    };
    let fixture = apple::fixture();
    let _ = jws::peek_payload(jws);

    // Nothing but Apple signs under Apple's root.
    assert!(jws::verify::<Value>(jws, &REAL, NOW_MS).is_err());
    assert!(jws::verify::<TransactionPayload>(jws, &REAL, NOW_MS).is_err());

    // Under the test root: only what the fixture signed.
    let verified = jws::verify::<Value>(jws, &TEST, NOW_MS);
    if verified.is_ok() {
        assert!(
            fixture.signed(jws),
            "a JWS the fixture never signed verified"
        );
    }
    for result in [
        jws::verify::<TransactionPayload>(jws, &TEST, NOW_MS).map(|_| ()),
        jws::verify::<RenewalInfoPayload>(jws, &TEST, NOW_MS).map(|_| ()),
        jws::verify::<NotificationPayload>(jws, &TEST, NOW_MS).map(|_| ()),
    ] {
        if result.is_ok() {
            assert!(fixture.signed(jws));
        }
    }

    // The verifier's mapping of a signed transaction.
    let ctx = VerifyContext {
        app_id: &APP,
        product: None,
        ledger: None,
    };
    let proof = PurchaseProof::AppleSignedTransaction(jws.to_owned());
    if let Ok(purchase) = block_on(VERIFIER.verify(ctx, &proof)) {
        assert!(fixture.signed(jws));
        assert_eq!(purchase.platform, Platform::Apple);
        assert_eq!(purchase.raw["bundleId"], apple::BUNDLE);
        assert!(!purchase.store_transaction_id.is_empty());
        assert!(purchase.quantity >= 1);
    }
});
