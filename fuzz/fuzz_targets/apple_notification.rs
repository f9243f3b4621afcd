//! App Store Server Notifications V2 bodies (`{"signedPayload": JWS}`) through the receiver's
//! decoder. Under Apple's real root nothing is accepted; under the test root a notification is
//! accepted only if the fixture signed it, and a purchase it reports carries a transaction the
//! fixture signed too.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

use iap_domain::AppId;
use iap_domain::notifications::{NotificationDecoder, StoreEvent};
use iap_domain::purchase::PurchaseProof;
use iap_fuzz::{apple, block_on};
use iap_platform_apple::{AppleAppConfig, AppleVerifier};

fn verifier(test_root: bool) -> AppleVerifier {
    use base64::Engine;
    let app = AppId::parse("game").unwrap();
    let config = AppleAppConfig {
        bundle_id: apple::BUNDLE.into(),
        app_apple_id: Some(apple::APP_APPLE_ID),
        trust_apple_root: !test_root,
        extra_roots_base64: if test_root {
            vec![base64::engine::general_purpose::STANDARD.encode(&apple::fixture().root_der)]
        } else {
            Vec::new()
        },
        shared_secret: None,
        verify_receipt_production_url: "http://127.0.0.1:9/verifyReceipt".into(),
        verify_receipt_sandbox_url: "http://127.0.0.1:9/verifyReceipt".into(),
        api: None,
        api_production_url: "http://127.0.0.1:9/".into(),
        api_sandbox_url: "http://127.0.0.1:9/".into(),
        consumption: None,
    };
    AppleVerifier::new([(&app, &config)]).unwrap()
}

static REAL: LazyLock<AppleVerifier> = LazyLock::new(|| verifier(false));
static TEST: LazyLock<AppleVerifier> = LazyLock::new(|| verifier(true));

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let fixture = apple::fixture();
    assert!(block_on(REAL.decode(body)).is_err());
    let Ok(decoded) = block_on(TEST.decode(body)) else {
        return;
    };
    let envelope: serde_json::Value = serde_json::from_str(body).unwrap();
    let signed = envelope["signedPayload"].as_str().unwrap();
    assert!(
        fixture.signed(signed),
        "an unsigned notification was accepted"
    );
    assert_eq!(decoded.inbound.raw_body, body);
    assert!(!decoded.inbound.notification_id.is_empty());
    match decoded.event {
        StoreEvent::Purchased { proof, .. } => match proof {
            PurchaseProof::AppleSignedTransaction(jws) => assert!(fixture.signed(&jws)),
            other => panic!("an App Store notification reported {other:?}"),
        },
        StoreEvent::Refunded {
            store_transaction_id,
            ..
        } => assert_eq!(
            decoded.inbound.subject.as_deref(),
            Some(&*store_transaction_id)
        ),
        _ => {}
    }
});
