//! Every App Store Server Notifications V2 type and subtype of platforms/apple.md §3 has a defined
//! handling: notifications minted under Apple's official test chain (../shared/conformance) are
//! authenticated by the decoder and turned into the event the inbox acts on.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use iap_domain::notifications::{NotificationDecoder, StoreEvent};
use iap_domain::{AppId, Platform};
use iap_platform_apple::{AppleAppConfig, AppleVerifier};
use serde_json::{Value, json};

/// When the vectors were signed; the chain is checked at the payload's signing time.
const SIGNED_MS: i64 = 1_672_956_154_000;

fn vector(path: &str) -> Vec<u8> {
    let full = format!(
        "{}/../../../shared/conformance/apple/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn pem_der(path: &str) -> String {
    let pem = String::from_utf8(vector(path)).unwrap();
    let body = pem.split("-----BEGIN CERTIFICATE-----").nth(1).unwrap();
    body.split("-----END CERTIFICATE-----")
        .next()
        .unwrap()
        .lines()
        .map(str::trim)
        .collect()
}

/// Signs `payload` with Apple's test leaf key under the official test chain.
fn mint(payload: &Value) -> String {
    use p256::ecdsa::signature::Signer;
    let chain = [
        "official-test/testLeaf.pem",
        "official-test/testIntermediate.pem",
        "official-test/testCA.pem",
    ];
    let header =
        json!({ "alg": "ES256", "x5c": chain.iter().map(|p| pem_der(p)).collect::<Vec<_>>() });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let key = String::from_utf8(vector("official-test/testLeaf.key")).unwrap();
    let secret = p256::SecretKey::from_sec1_pem(key.trim()).unwrap();
    let signature: p256::ecdsa::Signature =
        p256::ecdsa::SigningKey::from(secret).sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

fn verifier() -> AppleVerifier {
    let config: AppleAppConfig = serde_json::from_value(json!({
        "bundle_id": "com.example",
        "app_apple_id": 1234,
        "trust_apple_root": false,
        "extra_roots_base64": [STANDARD.encode(vector("official-test/testCA.der"))],
    }))
    .unwrap();
    let app = AppId::parse("com.example").unwrap();
    AppleVerifier::new([(&app, &config)]).unwrap()
}

/// A signed notification of `kind`/`subtype` about a transaction of `product_type`.
fn notification(id: usize, kind: &str, subtype: Option<&str>, product_type: &str) -> String {
    let transaction = mint(&json!({
        "transactionId": format!("2000000{id}"),
        "originalTransactionId": "1000000001",
        "bundleId": "com.example",
        "productId": "vip_monthly",
        "type": product_type,
        "purchaseDate": SIGNED_MS,
        "expiresDate": SIGNED_MS + 30 * 86_400_000_i64,
        "environment": "Sandbox",
        "signedDate": SIGNED_MS,
        "appAccountToken": "7e3fb20b-4cdb-47cc-936d-99d65f608138",
    }));
    let mut payload = json!({
        "notificationType": kind,
        "notificationUUID": format!("uuid-{id}"),
        "version": "2.0",
        "signedDate": SIGNED_MS,
        "data": { "bundleId": "com.example", "environment": "Sandbox",
            "signedTransactionInfo": transaction,
            "consumptionRequestReason": "UNINTENDED_PURCHASE" },
    });
    if let Some(subtype) = subtype {
        payload["subtype"] = json!(subtype);
    }
    json!({ "signedPayload": mint(&payload) }).to_string()
}

fn shape(event: &StoreEvent) -> &'static str {
    match event {
        StoreEvent::Purchased { .. } => "purchased",
        StoreEvent::Refunded { .. } => "refunded",
        StoreEvent::SubscriptionChanged { .. } => "subscription_changed",
        StoreEvent::Recheck { .. } => "recheck",
        StoreEvent::ConsumptionRequested { .. } => "consumption_requested",
        StoreEvent::RefundReversed { .. } => "refund_reversed",
        StoreEvent::Ignored(_) => "ignored",
    }
}

const RENEWABLE: &str = "Auto-Renewable Subscription";
const CONSUMABLE: &str = "Consumable";

#[tokio::test]
async fn every_notification_type_and_subtype_has_its_handling() {
    let verifier = verifier();
    let cases: &[(&str, Option<&str>, &str, &str)] = &[
        ("TEST", None, CONSUMABLE, "ignored"),
        ("ONE_TIME_CHARGE", None, CONSUMABLE, "purchased"),
        (
            "SUBSCRIBED",
            Some("INITIAL_BUY"),
            RENEWABLE,
            "subscription_changed",
        ),
        (
            "SUBSCRIBED",
            Some("RESUBSCRIBE"),
            RENEWABLE,
            "subscription_changed",
        ),
        ("DID_RENEW", None, RENEWABLE, "subscription_changed"),
        (
            "DID_RENEW",
            Some("BILLING_RECOVERY"),
            RENEWABLE,
            "subscription_changed",
        ),
        (
            "OFFER_REDEEMED",
            Some("INITIAL_BUY"),
            RENEWABLE,
            "subscription_changed",
        ),
        (
            "OFFER_REDEEMED",
            Some("RESUBSCRIBE"),
            RENEWABLE,
            "subscription_changed",
        ),
        (
            "OFFER_REDEEMED",
            Some("UPGRADE"),
            RENEWABLE,
            "subscription_changed",
        ),
        (
            "OFFER_REDEEMED",
            Some("DOWNGRADE"),
            RENEWABLE,
            "subscription_changed",
        ),
        (
            "DID_CHANGE_RENEWAL_PREF",
            Some("UPGRADE"),
            RENEWABLE,
            "subscription_changed",
        ),
        (
            "DID_CHANGE_RENEWAL_PREF",
            Some("DOWNGRADE"),
            RENEWABLE,
            "subscription_changed",
        ),
        (
            "DID_CHANGE_RENEWAL_PREF",
            None,
            RENEWABLE,
            "subscription_changed",
        ),
        (
            "DID_CHANGE_RENEWAL_STATUS",
            Some("AUTO_RENEW_ENABLED"),
            RENEWABLE,
            "subscription_changed",
        ),
        (
            "DID_CHANGE_RENEWAL_STATUS",
            Some("AUTO_RENEW_DISABLED"),
            RENEWABLE,
            "subscription_changed",
        ),
        (
            "DID_FAIL_TO_RENEW",
            Some("GRACE_PERIOD"),
            RENEWABLE,
            "subscription_changed",
        ),
        ("DID_FAIL_TO_RENEW", None, RENEWABLE, "subscription_changed"),
        (
            "GRACE_PERIOD_EXPIRED",
            None,
            RENEWABLE,
            "subscription_changed",
        ),
        (
            "EXPIRED",
            Some("VOLUNTARY"),
            RENEWABLE,
            "subscription_changed",
        ),
        (
            "EXPIRED",
            Some("BILLING_RETRY"),
            RENEWABLE,
            "subscription_changed",
        ),
        (
            "EXPIRED",
            Some("PRICE_INCREASE"),
            RENEWABLE,
            "subscription_changed",
        ),
        (
            "EXPIRED",
            Some("PRODUCT_NOT_FOR_SALE"),
            RENEWABLE,
            "subscription_changed",
        ),
        (
            "PRICE_INCREASE",
            Some("PENDING"),
            RENEWABLE,
            "subscription_changed",
        ),
        (
            "PRICE_INCREASE",
            Some("ACCEPTED"),
            RENEWABLE,
            "subscription_changed",
        ),
        ("RENEWAL_EXTENDED", None, RENEWABLE, "subscription_changed"),
        ("REFUND_REVERSED", None, RENEWABLE, "subscription_changed"),
        ("REFUND_REVERSED", None, CONSUMABLE, "refund_reversed"),
        ("REFUND", None, CONSUMABLE, "refunded"),
        ("REFUND", None, RENEWABLE, "refunded"),
        ("REVOKE", None, RENEWABLE, "refunded"),
        ("REFUND_DECLINED", None, CONSUMABLE, "ignored"),
        (
            "CONSUMPTION_REQUEST",
            None,
            CONSUMABLE,
            "consumption_requested",
        ),
        ("RENEWAL_EXTENSION", Some("SUMMARY"), RENEWABLE, "ignored"),
        ("RENEWAL_EXTENSION", Some("FAILURE"), RENEWABLE, "ignored"),
        (
            "EXTERNAL_PURCHASE_TOKEN",
            Some("UNREPORTED"),
            CONSUMABLE,
            "ignored",
        ),
        ("METADATA_UPDATE", None, RENEWABLE, "ignored"),
        ("MIGRATION", None, RENEWABLE, "ignored"),
        ("PRICE_CHANGE", None, RENEWABLE, "ignored"),
        ("RESCIND_CONSENT", None, RENEWABLE, "ignored"),
        ("A_TYPE_APPLE_ADDS_LATER", None, RENEWABLE, "ignored"),
    ];
    for (i, (kind, subtype, product_type, expected)) in cases.iter().enumerate() {
        let decoded = verifier
            .decode(&notification(i, kind, *subtype, product_type))
            .await
            .unwrap_or_else(|e| panic!("{kind}/{subtype:?}: {e}"));
        assert_eq!(
            shape(&decoded.event),
            *expected,
            "{kind}/{subtype:?} on a {product_type}"
        );
        assert_eq!(decoded.inbound.notification_id, format!("uuid-{i}"));
        let full = match subtype {
            Some(s) => format!("{kind}/{s}"),
            None => (*kind).to_owned(),
        };
        assert_eq!(decoded.inbound.notification_type, full);
        match &decoded.event {
            StoreEvent::SubscriptionChanged {
                subscription,
                paid,
                carried_order_id,
            } => {
                assert_eq!(subscription.platform, Platform::Apple);
                assert_eq!(subscription.key, "1000000001");
                assert_eq!(
                    subscription.environment,
                    Some(iap_domain::Environment::Sandbox)
                );
                // Only the paid types carry the charge for the no-API fallback.
                assert_eq!(
                    paid.is_some(),
                    matches!(*kind, "SUBSCRIBED" | "DID_RENEW" | "OFFER_REDEEMED"),
                    "{kind}"
                );
                assert_eq!(
                    carried_order_id.as_deref(),
                    Some("7e3fb20b-4cdb-47cc-936d-99d65f608138")
                );
            }
            StoreEvent::Refunded {
                revoked,
                subscription,
                store_transaction_id,
                ..
            } => {
                assert_eq!(*revoked, *kind == "REVOKE");
                assert_eq!(subscription.is_some(), *product_type == RENEWABLE);
                assert_eq!(store_transaction_id, &format!("2000000{i}"));
            }
            StoreEvent::ConsumptionRequested { reason, .. } => {
                assert_eq!(reason.as_deref(), Some("UNINTENDED_PURCHASE"));
            }
            _ => {}
        }
    }
}
