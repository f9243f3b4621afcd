//! Real-time developer notifications as Pub/Sub pushes them. Whatever the body, decoding is the
//! same whether the message id is spelled `messageId` or `message_id`; an accepted notification
//! is keyed by that id, for the configured package, and a purchase it reports names the token
//! and SKU the notification carried.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

use iap_domain::AppId;
use iap_domain::notifications::{DecodedNotification, NotificationDecoder, StoreEvent};
use iap_domain::ports::StoreError;
use iap_domain::purchase::PurchaseProof;
use iap_fuzz::block_on;
use iap_fuzz::rsa_keys::GOOGLE_PACKAGE;
use iap_platform_google::{GoogleAppConfig, GoogleVerifier};

static VERIFIER: LazyLock<GoogleVerifier> = LazyLock::new(|| {
    let config = GoogleAppConfig {
        package_name: GOOGLE_PACKAGE.into(),
        service_account_json: serde_json::json!({
            "client_email": "fuzz@example.iam.gserviceaccount.com",
            "private_key": "unused",
            "token_uri": "http://127.0.0.1:9/token",
        })
        .to_string(),
        license_key_base64: None,
        api_root_url: "http://127.0.0.1:9/".into(),
        push_audience: None,
        push_service_account: None,
        push_certs_url: "http://127.0.0.1:9/certs".into(),
    };
    GoogleVerifier::new([(&AppId::parse("game").unwrap(), &config)]).unwrap()
});

/// The outcome without the raw body (which differs between the two spellings by design).
fn comparable(
    result: Result<DecodedNotification, StoreError>,
) -> Result<DecodedNotification, String> {
    result
        .map(|mut d| {
            d.inbound.raw_body.clear();
            d
        })
        .map_err(|e| e.to_string())
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let result = block_on(VERIFIER.decode(body));
    if let Ok(decoded) = &result {
        let envelope: Value = serde_json::from_str(body).unwrap();
        let message = &envelope["message"];
        let id = [&message["messageId"], &message["message_id"]]
            .into_iter()
            .filter_map(Value::as_str)
            .find(|s| !s.is_empty())
            .unwrap();
        assert_eq!(decoded.inbound.notification_id, id);
        assert_eq!(decoded.inbound.raw_body, body);
        assert_eq!(
            decoded.inbound.app_id.as_ref().map(AppId::as_str),
            Some("game")
        );
        if let StoreEvent::Purchased { proof, .. } = &decoded.event {
            let PurchaseProof::Google {
                purchase_token,
                product_id,
                signed_data,
            } = proof
            else {
                panic!("a Google notification reported {proof:?}");
            };
            assert!(signed_data.is_none());
            assert_eq!(
                decoded.inbound.subject.as_deref(),
                Some(purchase_token.as_str())
            );
            assert!(!product_id.as_str().is_empty());
        }
    }

    // The other spelling of the message id decodes the same way.
    let Ok(mut envelope) = serde_json::from_str::<Value>(body) else {
        return;
    };
    let Some(message) = envelope.get_mut("message").and_then(Value::as_object_mut) else {
        return;
    };
    let (from, to) = match (
        message.contains_key("messageId"),
        message.contains_key("message_id"),
    ) {
        (true, false) => ("messageId", "message_id"),
        (false, true) => ("message_id", "messageId"),
        _ => return,
    };
    let id = message.remove(from).unwrap();
    message.insert(to.to_owned(), id);
    let respelled = envelope.to_string();
    let other = block_on(VERIFIER.decode(&respelled));
    assert_eq!(comparable(result), comparable(other), "spellings disagree");
});
