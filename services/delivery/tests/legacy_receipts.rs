//! Legacy App Store receipts (StoreKit 1) sent without a transaction id. One receipt holds every
//! unfinished transaction of the device: the verifier must pick one the ledger has not recorded
//! yet, and must not let the client finish a transaction it did not record. Asserted against
//! the game ledger.

mod common;

use iap_proto::v1 as pb;
use serde_json::{Value, json};

use common::{APP, World};

/// A production App Store purchase at the emulator, by the device's `customer`.
async fn buy(w: &World, product: &str, product_type: &str) -> Value {
    w.store
        .post_json(
            "/emulator/apple/purchases",
            json!({ "bundle_id": APP, "product_id": product, "product_type": product_type,
                    "environment": "Production", "customer": "device-1" }),
        )
        .await
}

/// What a StoreKit 1 client sends: the app receipt and the product, no transaction id.
fn receipt_request(user: &str, receipt: &str, product: &str) -> pb::VerifyPurchaseRequest {
    pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: user.into(),
        order_id: String::new(),
        purchase: Some(pb::verify_purchase_request::Purchase::Apple(
            pb::ApplePurchase {
                proof: Some(pb::apple_purchase::Proof::ReceiptData(receipt.into())),
                product_id: product.into(),
                ..Default::default()
            },
        )),
    }
}

/// Two unfinished purchases of one consumable, one receipt, verified twice without a
/// transaction id: the first answer records the older one and does not let the client finish
/// (the newer one is still unrecorded), the second records the newer one. Both granted, one
/// each; a third report grants nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_unfinished_consumables_in_one_receipt_are_both_granted_one_each() {
    let w = World::start_with_redis(None).await;
    let older = buy(&w, "gems_100", "Consumable").await;
    let newer = buy(&w, "gems_100", "Consumable").await;
    // The newer purchase's receipt lists both (neither is finished).
    let receipt = newer["receipt_data"].as_str().unwrap();

    let first = w
        .verify(receipt_request("finn", receipt, "gems_100"))
        .await
        .unwrap();
    assert_eq!(
        first.order.as_ref().unwrap().store_transaction_id,
        older["transaction_id"].as_str().unwrap(),
        "the older transaction first"
    );
    assert!(
        !first.finish_transaction,
        "another unfinished transaction of the product is not recorded yet"
    );

    let second = w
        .verify(receipt_request("finn", receipt, "gems_100"))
        .await
        .unwrap();
    assert_eq!(
        second.order.as_ref().unwrap().store_transaction_id,
        newer["transaction_id"].as_str().unwrap()
    );
    assert!(second.finish_transaction && !second.already_recorded);

    let third = w
        .verify(receipt_request("finn", receipt, "gems_100"))
        .await
        .unwrap();
    assert!(third.already_recorded && third.finish_transaction);

    w.sweep_until_quiet(5).await;
    assert_eq!(w.game.ledger().balance(APP, "finn", "gems_100"), 2);
    assert_eq!(w.count("store_transactions", "platform = 'apple'").await, 2);
}

/// A StoreKit 1 restore on a new device: the App Store gives the subscription's current period
/// a new transaction id, with the same `web_order_line_item_id`. The period was granted once;
/// the restored transaction is recognised as the same period and grants nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_with_a_new_transaction_id_for_the_same_period_is_no_second_grant() {
    let w = World::start_with_redis(None).await;
    let bought = buy(&w, "vip_monthly", "Auto-Renewable Subscription").await;
    let signed = |made: &Value| pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: "gus".into(),
        order_id: String::new(),
        purchase: Some(pb::verify_purchase_request::Purchase::Apple(
            pb::ApplePurchase {
                proof: Some(pb::apple_purchase::Proof::SignedTransaction(
                    made["signed_transaction"].as_str().unwrap().into(),
                )),
                ..Default::default()
            },
        )),
    };
    let first = w.verify(signed(&bought)).await.unwrap();
    assert!(!first.already_recorded);

    let original = bought["original_transaction_id"].as_str().unwrap();
    let restored = w
        .store
        .post_json(
            &format!("/emulator/apple/subscriptions/{original}/restore"),
            json!({}),
        )
        .await;
    assert_ne!(restored["transaction_id"], bought["transaction_id"]);
    let again = w.verify(signed(&restored)).await.unwrap();
    assert!(again.already_recorded, "the same period");
    assert_eq!(again.order.unwrap().order_id, first.order.unwrap().order_id);
    // The legacy receipt of the new device, naming the restored transaction: the same answer.
    let by_receipt = w
        .verify(pb::VerifyPurchaseRequest {
            purchase: Some(pb::verify_purchase_request::Purchase::Apple(
                pb::ApplePurchase {
                    proof: Some(pb::apple_purchase::Proof::ReceiptData(
                        restored["receipt_data"].as_str().unwrap().into(),
                    )),
                    product_id: "vip_monthly".into(),
                    receipt_transaction_id: restored["transaction_id"].as_str().unwrap().into(),
                },
            )),
            ..signed(&restored)
        })
        .await
        .unwrap();
    assert!(by_receipt.already_recorded);

    w.sweep_until_quiet(5).await;
    assert_eq!(w.game.ledger().balance(APP, "gus", "vip_monthly"), 1);
    assert_eq!(w.count("store_transactions", "platform = 'apple'").await, 1);
}

/// The world's settings without App Store Server API credentials (nor the consumption answers
/// that need them): a deployment that only has the shared secret.
fn without_server_api(toml: &str) -> String {
    let api = format!("[apps.\"{APP}\".apple.api]");
    let google = format!("[apps.\"{APP}\".google]");
    let start = toml
        .find(&api)
        .expect("the world's settings have API credentials");
    let end = toml.find(&google).unwrap();
    format!("{}{}", &toml[..start], &toml[end..])
}

/// Marks every subscription due for its check now.
async fn all_due(w: &World) {
    use sea_orm::{ConnectionTrait, Statement};
    w.storage
        .connection()
        .execute(Statement::from_string(
            w.storage.backend(),
            "UPDATE subscriptions SET next_check_at = CURRENT_TIMESTAMP - INTERVAL '1 minute'"
                .to_owned(),
        ))
        .await
        .unwrap();
}

/// A studio with only the shared secret: a StoreKit 1 subscription is verified by receipt and
/// Apple's `latest_receipt` is kept with it. The store renews and the notification is lost; the
/// subscription check asks verifyReceipt with the kept receipt, finds the new period and grants
/// it once. Asking again grants nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_is_found_through_the_kept_receipt_without_server_api_credentials() {
    use iap_domain::subscriptions::SubscriptionStore;
    use iap_domain::usecases::refresh_subscription::SubscriptionRefresh;
    use iap_domain::usecases::verify_purchase::PurchaseVerification;
    use std::sync::Arc;

    let w = World::start().await;
    let bought = buy(&w, "vip_monthly", "Auto-Renewable Subscription").await;
    let mut request = receipt_request(
        "hana",
        bought["receipt_data"].as_str().unwrap(),
        "vip_monthly",
    );
    if let Some(pb::verify_purchase_request::Purchase::Apple(apple)) = request.purchase.as_mut() {
        apple.receipt_transaction_id = bought["transaction_id"].as_str().unwrap().into();
    }
    assert!(!w.verify(request).await.unwrap().already_recorded);
    w.sweep_until_quiet(5).await;
    assert_eq!(w.game.ledger().balance(APP, "hana", "vip_monthly"), 1);

    let original = bought["original_transaction_id"].as_str().unwrap();
    let kept = w
        .storage
        .find_subscription(iap_domain::Platform::Apple, original)
        .await
        .unwrap()
        .expect("subscription recorded");
    assert!(
        kept.latest_receipt.is_some(),
        "Apple's latest_receipt is kept"
    );

    let settings = iap_runtime::Settings::from_toml(&without_server_api(&w.toml)).unwrap();
    let purchases = Arc::new(PurchaseVerification::new(
        Arc::new(settings.catalog().unwrap()),
        settings.purchase_verifiers().unwrap(),
        w.storage.clone(),
    ));
    let job = SubscriptionRefresh::new(purchases, w.deliveries(), w.storage.clone());
    let hold = std::time::Duration::from_secs(30);

    let renewed = w
        .store
        .post_json(
            &format!("/emulator/apple/subscriptions/{original}/renew"),
            json!({}),
        )
        .await;
    all_due(&w).await;
    let report = job.run_once(10, hold).await.unwrap();
    assert_eq!((report.checked, report.granted), (1, 1), "{report:?}");
    w.sweep_until_quiet(5).await;
    assert_eq!(w.game.ledger().balance(APP, "hana", "vip_monthly"), 2);
    let now = w
        .storage
        .find_subscription(iap_domain::Platform::Apple, original)
        .await
        .unwrap()
        .unwrap();
    assert!(now.expires_at > kept.expires_at);
    assert_eq!(
        Some(now.latest_store_transaction_id.as_str()),
        renewed["transaction_id"].as_str()
    );
    assert!(now.latest_receipt.is_some());

    // The same answer again: the period is already recorded, nothing more is granted.
    all_due(&w).await;
    let again = job.run_once(10, hold).await.unwrap();
    assert_eq!((again.checked, again.granted), (1, 0), "{again:?}");
    w.sweep_until_quiet(5).await;
    assert_eq!(w.game.ledger().balance(APP, "hana", "vip_monthly"), 2);
}
