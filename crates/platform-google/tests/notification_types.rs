//! Every real-time developer notification type of platforms/google.md §3 has a defined handling:
//! decoded from a Pub/Sub push envelope (both id spellings) into the event the inbox acts on.

use base64::Engine;
use iap_domain::notifications::{NotificationDecoder, StoreEvent};
use iap_domain::{AppId, Platform};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{Value, json};

const PACKAGE: &str = "com.example.game";

fn verifier() -> iap_platform_google::GoogleVerifier {
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let account = json!({ "client_email": "api@example.iam.gserviceaccount.com",
        "private_key": pem, "token_uri": "http://127.0.0.1:9/token" });
    let config: iap_platform_google::GoogleAppConfig = serde_json::from_value(
        json!({ "package_name": PACKAGE, "service_account_json": account.to_string() }),
    )
    .unwrap();
    let app = AppId::parse(PACKAGE).unwrap();
    iap_platform_google::GoogleVerifier::new([(&app, &config)]).unwrap()
}

/// A push envelope around a DeveloperNotification carrying `kind: body`.
fn push(id: usize, kind: &str, body: &Value) -> String {
    let notification = json!({ "version": "1.0", "packageName": PACKAGE,
        "eventTimeMillis": "1700000000000", kind: body });
    let data = base64::engine::general_purpose::STANDARD.encode(notification.to_string());
    // Half the envelopes use the snake_case spelling real pushes also carry.
    let message = if id.is_multiple_of(2) {
        json!({ "data": data, "messageId": id.to_string() })
    } else {
        json!({ "data": data, "message_id": id.to_string() })
    };
    json!({ "message": message, "subscription": "projects/p/subscriptions/s" }).to_string()
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

#[tokio::test]
async fn every_subscription_type_refreshes_and_a_revocation_revokes_first() {
    let verifier = verifier();
    // SubscriptionNotification.notificationType 1–13, 17–20, 22 (8 is deprecated but still sent).
    for (i, kind) in [
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 17, 18, 19, 20, 22,
    ]
    .into_iter()
    .enumerate()
    {
        let body = push(
            i,
            "subscriptionNotification",
            &json!({ "version": "1.0", "notificationType": kind, "purchaseToken": "tok-1" }),
        );
        let decoded = verifier.decode(&body).await.unwrap();
        // The message id, then a digest of what the message says.
        let (id, digest) = decoded.inbound.notification_id.split_once(':').unwrap();
        assert_eq!(id, i.to_string());
        assert_eq!(digest.len(), 64);
        assert_eq!(
            decoded.inbound.notification_type,
            format!("SUBSCRIPTION/{kind}")
        );
        assert_eq!(decoded.inbound.subject.as_deref(), Some("tok-1"));
        match (kind, &decoded.event) {
            (
                12,
                StoreEvent::Refunded {
                    store_transaction_id,
                    revoked: true,
                    subscription: Some(subscription),
                    ..
                },
            ) => {
                assert_eq!(store_transaction_id, "tok-1");
                assert_eq!(subscription.key, "tok-1");
            }
            (12, other) => panic!("SUBSCRIPTION_REVOKED decoded as {other:?}"),
            (_, StoreEvent::SubscriptionChanged { subscription, .. }) => {
                assert_eq!(subscription.platform, Platform::Google);
                assert_eq!(subscription.key, "tok-1");
                assert_eq!(subscription.purchase_token.as_deref(), Some("tok-1"));
            }
            (_, other) => panic!("type {kind} decoded as {other:?}"),
        }
    }
}

#[tokio::test]
async fn one_time_voided_and_test_notifications_have_their_handling() {
    let verifier = verifier();
    let cases = [
        (
            "oneTimeProductNotification",
            json!({ "version": "1.0", "notificationType": 1, "purchaseToken": "t", "sku": "gems_100" }),
            "purchased",
        ),
        (
            "oneTimeProductNotification",
            json!({ "version": "1.0", "notificationType": 2, "purchaseToken": "t", "sku": "gems_100" }),
            "recheck",
        ),
        (
            "voidedPurchaseNotification",
            json!({ "purchaseToken": "t", "orderId": "GPA.1", "productType": 2, "refundType": 1 }),
            "refunded",
        ),
        (
            "voidedPurchaseNotification",
            json!({ "purchaseToken": "t", "orderId": "GPA.1..3", "productType": 1, "refundType": 1 }),
            "refunded",
        ),
        ("testNotification", json!({ "version": "1.0" }), "ignored"),
        ("somethingNew", json!({}), "ignored"),
    ];
    for (i, (kind, body, expected)) in cases.into_iter().enumerate() {
        let decoded = verifier.decode(&push(i, kind, &body)).await.unwrap();
        assert_eq!(shape(&decoded.event), expected, "{kind} {body}");
    }
    // A voided subscription period is revoked by its order id, then its subscription refreshed.
    let decoded = verifier
        .decode(&push(
            9,
            "voidedPurchaseNotification",
            &json!({ "purchaseToken": "t", "orderId": "GPA.1..3", "productType": 1, "refundType": 1 }),
        ))
        .await
        .unwrap();
    let StoreEvent::Refunded {
        store_transaction_id,
        subscription: Some(subscription),
        ..
    } = decoded.event
    else {
        panic!("a voided subscription is refunded and refreshed");
    };
    assert_eq!(store_transaction_id, "GPA.1..3");
    assert_eq!(subscription.key, "t");
}
