//! Huawei IAP server notifications v2 through the receiver's decoder. ORDER events are unsigned,
//! so a payment is only ever a hint to ask the Order service (unreachable here: a closed
//! loopback port), never a purchase by itself; the inbox key is stable for the same body; a
//! refund names the notification's purchase token.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

use iap_domain::AppId;
use iap_domain::notifications::{NotificationDecoder, StoreEvent};
use iap_domain::ports::StoreError;
use iap_fuzz::{block_on, rsa_keys};
use iap_platform_huawei::{HuaweiAppConfig, HuaweiVerifier};

/// The configured AppGallery Connect app id.
const AGC_APP_ID: &str = "101234567";

static VERIFIER: LazyLock<HuaweiVerifier> = LazyLock::new(|| {
    let config = HuaweiAppConfig {
        app_id: AGC_APP_ID.into(),
        client_secret: "unused".into(),
        public_key_base64: rsa_keys::huawei().public_base64.clone(),
        prefer_pss: false,
        // Port 9 (discard) is closed on loopback: every store call fails at once.
        token_url: "http://127.0.0.1:9/oauth2/v3/token".into(),
        orders_root_url: "http://127.0.0.1:9".into(),
        subscriptions_root_url: "http://127.0.0.1:9".into(),
        apptouch_orders_root_url: "http://127.0.0.1:9".into(),
        apptouch_subscriptions_root_url: "http://127.0.0.1:9".into(),
    };
    HuaweiVerifier::new([(&AppId::parse("game").unwrap(), &config)]).unwrap()
});

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let decoded = match block_on(VERIFIER.decode(body)) {
        Ok(decoded) => decoded,
        Err(StoreError::Unavailable { .. } | StoreError::Rejected { .. }) => return,
        Err(other) => panic!("unexpected error kind: {other:?}"),
    };
    assert_eq!(
        decoded.inbound.app_id.as_ref().map(AppId::as_str),
        Some("game")
    );
    assert_eq!(decoded.inbound.raw_body, body);
    match &decoded.event {
        StoreEvent::Purchased { .. } => panic!("an unsigned ORDER event became a purchase"),
        StoreEvent::Refunded {
            store_transaction_id,
            ..
        } if serde_json::from_str::<serde_json::Value>(body).unwrap()["eventType"] == "ORDER" => {
            // A signed SUBSCRIPTION cancel names the order instead; ORDER refunds the token.
            let body: serde_json::Value = serde_json::from_str(body).unwrap();
            let token = &body["orderNotification"]["purchaseToken"];
            assert!(!store_transaction_id.is_empty());
            assert!(
                token.as_str() == Some(store_transaction_id)
                    || token.as_number().map(ToString::to_string).as_deref()
                        == Some(store_transaction_id.as_str())
            );
        }
        _ => {}
    }
    // Same body, same inbox key.
    let again = block_on(VERIFIER.decode(body)).expect("decodes again");
    assert_eq!(
        again.inbound.notification_id,
        decoded.inbound.notification_id
    );
});
