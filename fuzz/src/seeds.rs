//! Writes the small seed corpora in `fuzz/corpus/<target>/seed-*`: real-format inputs built from
//! the fixture keys (so signed seeds verify), never copied from a store. Run by
//! `scripts/fuzz.sh seeds` (the `ids` target's init step, with `IAP_FUZZ_WRITE_SEEDS` set, so
//! no second build of the dependencies is needed); the output is deterministic.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use prost::Message;
use serde_json::{Value, json};

use crate::rsa_keys::{self, GOOGLE_PACKAGE, GOOGLE_TOKEN, HUAWEI_TOKEN};
use crate::{NOW_MS, apple};
use iap_proto::v1 as pb;

struct Corpus {
    dir: PathBuf,
    count: usize,
}

impl Corpus {
    fn new(root: &Path, target: &str) -> Self {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
            {
                std::fs::remove_file(path).unwrap();
            }
        }
        Self { dir, count: 0 }
    }

    fn add(&mut self, bytes: impl AsRef<[u8]>) {
        self.count += 1;
        std::fs::write(self.dir.join(format!("seed-{:02}", self.count)), bytes).unwrap();
    }

    /// Parts joined by NUL, after a selector byte when given.
    fn parts(&mut self, selector: Option<u8>, parts: &[&str]) {
        let mut bytes: Vec<u8> = selector.into_iter().collect();
        bytes.extend_from_slice(parts.join("\0").as_bytes());
        self.add(bytes);
    }
}

fn ids(root: &Path) {
    let mut c = Corpus::new(root, "ids");
    for s in [
        "game",
        "player-1",
        "gems_100",
        "com.example.game.vip_month",
        " padded",
        "0190b2c4-3f7a-7c3e-9a55-1234567890ab",
        "{0190B2C4-3F7A-7C3E-9A55-1234567890AB}",
        "urn:uuid:0190b2c4-3f7a-7c3e-9a55-1234567890ab",
        "0190b2c43f7a7c3e9a551234567890ab",
        "apple",
        "DELIVERED",
        "auto_renewable",
    ] {
        c.add(s);
    }
}

fn grpc(root: &Path) {
    let mut c = Corpus::new(root, "grpc_requests");
    let create = pb::CreateOrderRequest {
        app_id: "game".into(),
        user_id: "player-1".into(),
        product_id: "gems_100".into(),
        platform: pb::Platform::Google as i32,
        quantity: 2,
        expected_price: Some(pb::Money {
            currency_code: "EUR".into(),
            amount_micros: 1_990_000,
        }),
        idempotency_key: "k-1".into(),
        metadata: [("campaign".to_owned(), "summer".to_owned())].into(),
    };
    let mut bytes = vec![0];
    bytes.extend(create.encode_to_vec());
    c.add(bytes);
    let verify = |purchase| pb::VerifyPurchaseRequest {
        app_id: "game".into(),
        user_id: "player-1".into(),
        order_id: "0190b2c4-3f7a-7c3e-9a55-1234567890ab".into(),
        purchase: Some(purchase),
    };
    use pb::verify_purchase_request::Purchase;
    for purchase in [
        Purchase::Apple(pb::ApplePurchase {
            proof: Some(pb::apple_purchase::Proof::SignedTransaction(
                apple::fixture().transactions[0].clone(),
            )),
            ..Default::default()
        }),
        Purchase::Apple(pb::ApplePurchase {
            proof: Some(pb::apple_purchase::Proof::ReceiptData("MIIT...".into())),
            product_id: "gems_100".into(),
            receipt_transaction_id: "1000000000000001".into(),
        }),
        Purchase::Google(pb::GooglePurchase {
            purchase_token: GOOGLE_TOKEN.into(),
            product_id: "gems_100".into(),
            original_json: rsa_keys::google().seeds[0].0.clone(),
            signature: rsa_keys::google().seeds[0].1.clone(),
        }),
        Purchase::Huawei(pb::HuaweiPurchase {
            purchase_token: HUAWEI_TOKEN.into(),
            product_id: "gems_100".into(),
            in_app_purchase_data: rsa_keys::huawei().seeds[1].0.clone(),
            signature: rsa_keys::huawei().seeds[1].1.clone(),
            signature_algorithm: "SHA256WithRSA/PSS".into(),
        }),
    ] {
        let mut bytes = vec![1];
        bytes.extend(verify(purchase).encode_to_vec());
        c.add(bytes);
    }
}

fn apple_targets(root: &Path) {
    let fixture = apple::fixture();
    let mut c = Corpus::new(root, "apple_jws");
    for jws in &fixture.transactions {
        c.add(jws);
    }
    let mut c = Corpus::new(root, "apple_notification");
    for body in &fixture.notifications {
        c.add(body);
    }
    let mut c = Corpus::new(root, "apple_receipt");
    let entry = |id: &str, product: &str, at: i64| {
        json!({
            "quantity": "1", "product_id": product, "transaction_id": id,
            "original_transaction_id": id, "purchase_date_ms": at.to_string(),
            "original_purchase_date_ms": at.to_string(), "is_trial_period": "false",
            "in_app_ownership_type": "PURCHASED",
        })
    };
    let reply = json!({
        "status": 0, "environment": "Production",
        "receipt": {
            "receipt_type": "Production", "bundle_id": apple::BUNDLE,
            "in_app": [entry("1000000000000001", "gems_100", NOW_MS - 5000),
                       entry("1000000000000002", "gems_500", NOW_MS - 4000)],
        },
        "latest_receipt_info": [{
            "quantity": "1", "product_id": "vip_month", "transaction_id": "1000000000000003",
            "purchase_date_ms": (NOW_MS - 3000).to_string(),
            "expires_date_ms": (NOW_MS + 86_400_000).to_string(),
            "cancellation_date_ms": (NOW_MS - 1000).to_string(), "cancellation_reason": "0",
            "subscription_group_identifier": "21000000", "is_trial_period": "true",
        }],
    })
    .to_string();
    c.parts(None, &[&reply]);
    c.parts(None, &[&reply, "1000000000000002"]);
    c.parts(None, &[&reply, "", "vip_month"]);
    c.parts(
        None,
        &[&json!({ "status": 21199, "is-retryable": true }).to_string()],
    );
}

fn google_targets(root: &Path) {
    let fixture = rsa_keys::google();
    let mut c = Corpus::new(root, "google_purchase");
    for (data, signature, _) in &fixture.seeds {
        let product = if data.contains("vip_month") {
            "vip_month"
        } else {
            "gems_100"
        };
        c.parts(Some(0), &[data, signature, GOOGLE_TOKEN, product]);
    }
    let product_v2 = json!({
        "kind": "androidpublisher#productPurchaseV2",
        "productLineItem": [{ "productId": "gems_100",
            "productOfferDetails": { "offerToken": "t", "quantity": 3, "refundableQuantity": 2,
                                     "consumptionState": "CONSUMPTION_STATE_YET_TO_BE_CONSUMED" } }],
        "purchaseStateContext": { "purchaseState": "PURCHASED" },
        "testPurchaseContext": { "fopType": "TEST" },
        "orderId": "GPA.1234-5678-9012-34567", "obfuscatedExternalAccountId": "acc",
        "obfuscatedExternalProfileId": "0190b2c4-3f7a-7c3e-9a55-1234567890ab",
        "acknowledgementState": "ACKNOWLEDGEMENT_STATE_PENDING",
        "purchaseCompletionTime": "2025-06-15T12:00:00.123Z",
    })
    .to_string();
    c.parts(Some(1), &[&product_v2, "gems_100"]);
    let subscription_v2 = json!({
        "kind": "androidpublisher#subscriptionPurchaseV2",
        "startTime": "2025-06-15T12:00:00Z", "regionCode": "FR",
        "subscriptionState": "SUBSCRIPTION_STATE_IN_GRACE_PERIOD",
        "latestOrderId": "GPA.1234-5678-9012-34568..0",
        "linkedPurchaseToken": "older-token", "acknowledgementState": "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
        "externalAccountIdentifiers": { "obfuscatedExternalAccountId": "acc" },
        "lineItems": [{ "productId": "vip_month", "expiryTime": "2025-07-15T12:00:00Z",
            "latestSuccessfulOrderId": "GPA.1234-5678-9012-34568..1",
            "autoRenewingPlan": { "autoRenewEnabled": true,
                "recurringPrice": { "currencyCode": "EUR", "units": "4", "nanos": 990000000 } },
            "offerPhase": { "freeTrial": {} } }],
    })
    .to_string();
    c.parts(Some(2), &[&subscription_v2, "vip_month"]);
    c.parts(Some(3), &[&fixture.public_base64]);

    let mut c = Corpus::new(root, "google_rtdn");
    let push = |id_field: &str, id: &str, notification: Value| {
        let mut message = json!({
            "data": STANDARD.encode(notification.to_string()),
            "publishTime": "2025-06-15T12:00:00.123Z", "attributes": {},
        });
        message[id_field] = json!(id);
        json!({ "message": message, "subscription": "projects/p/subscriptions/rtdn" }).to_string()
    };
    let base = |kind: &str, inner: Value| {
        json!({ "version": "1.0", "packageName": GOOGLE_PACKAGE,
                "eventTimeMillis": NOW_MS.to_string(), kind: inner })
    };
    c.add(push(
        "messageId",
        "1000001",
        base(
            "oneTimeProductNotification",
            json!({ "version": "1.0", "notificationType": 1, "purchaseToken": GOOGLE_TOKEN,
                    "sku": "gems_100" }),
        ),
    ));
    c.add(push(
        "message_id",
        "1000002",
        base(
            "voidedPurchaseNotification",
            json!({ "purchaseToken": GOOGLE_TOKEN, "orderId": "GPA.1234-5678-9012-34567",
                    "productType": 2, "refundType": 1 }),
        ),
    ));
    c.add(push(
        "messageId",
        "1000003",
        base(
            "subscriptionNotification",
            json!({ "version": "1.0", "notificationType": 4, "purchaseToken": GOOGLE_TOKEN,
                    "subscriptionId": "vip_month" }),
        ),
    ));
    c.add(push(
        "message_id",
        "1000004",
        base("testNotification", json!({ "version": "1.0" })),
    ));
}

fn huawei_targets(root: &Path) {
    let fixture = rsa_keys::huawei();
    let mut c = Corpus::new(root, "huawei_purchase");
    for (data, signature, algorithm) in &fixture.seeds {
        match algorithm {
            Some(algorithm) => c.parts(Some(0), &[data, signature, algorithm]),
            None => c.parts(Some(0), &[data, signature]),
        }
    }
    for (selector, (data, _, _)) in [1u8, 2, 1].into_iter().zip(&fixture.seeds) {
        let product: Value = serde_json::from_str(data).unwrap();
        c.parts(
            Some(selector),
            &[data, product["productId"].as_str().unwrap()],
        );
    }
    c.parts(Some(4), &[&fixture.public_base64]);

    let mut c = Corpus::new(root, "huawei_notification");
    let order = |kind: i64| {
        json!({
            "version": "v2", "eventType": "ORDER", "notifyTime": NOW_MS,
            "applicationId": "101234567",
            "orderNotification": { "version": "v2", "notificationType": kind,
                "purchaseToken": HUAWEI_TOKEN, "productId": "gems_100" },
        })
        .to_string()
    };
    c.add(order(1));
    c.add(order(2));
    let status = json!({
        "environment": "PROD", "notificationType": 2, "subscriptionId": "1000001234",
        "orderId": "202506151200001234", "purchaseToken": HUAWEI_TOKEN,
        "productId": "vip_month", "autoRenewStatus": 1,
    })
    .to_string();
    c.add(
        json!({
            "version": "v2", "eventType": "SUBSCRIPTION", "notifyTime": NOW_MS.to_string(),
            "applicationId": 101_234_567,
            "subNotification": { "statusUpdateNotification": status,
                                 "notificationSignature": "c2ln", "signatureAlgorithm": "SHA256WithRSA/PSS" },
        })
        .to_string(),
    );
}

/// Panics unless the fixtures' signed data verify with the production code: seeds that did not
/// would leave the accepting paths unexplored.
fn check_fixtures() {
    let fixture = apple::fixture();
    for jws in &fixture.transactions {
        iap_platform_apple::jws::verify::<Value>(jws, &fixture.trust(), NOW_MS)
            .expect("the Apple fixture's JWS verifies");
    }
    let google =
        iap_platform_google::signature::LicenseKey::from_base64(&rsa_keys::google().public_base64)
            .unwrap();
    for (data, signature, _) in &rsa_keys::google().seeds {
        assert!(google.verifies(data, signature), "Google fixture signature");
    }
    let huawei = iap_platform_huawei::signature::IapPublicKey::from_base64(
        &rsa_keys::huawei().public_base64,
    )
    .unwrap();
    for (data, signature, algorithm) in &rsa_keys::huawei().seeds {
        assert!(
            huawei.verifies(data, signature, *algorithm),
            "Huawei fixture signature"
        );
    }
}

/// Rewrites every target's `seed-*` files under `root` (`fuzz/corpus`).
pub fn write_all(root: &Path) {
    check_fixtures();
    ids(root);
    grpc(root);
    apple_targets(root);
    google_targets(root);
    huawei_targets(root);
}
