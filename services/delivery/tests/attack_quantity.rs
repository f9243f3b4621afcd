//! Grant what was paid. A cheater's client creates an order for ten and pays for one; a
//! generous player buys three in one Google multi-quantity purchase for an order of one. On
//! every store the game ledger must show the units the store says were paid — never the
//! order's own figure — and the order must say why it differs.

mod common;

use iap_domain::{BindingReason, OrderId};
use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_test_support::emulator::HUAWEI_APP;
use serde_json::json;

use common::{APP, World};

const PRODUCT: &str = "gems_100";

/// CreateOrder for `quantity` units on `platform`.
async fn order(
    w: &World,
    user: &str,
    platform: pb::Platform,
    quantity: i32,
) -> pb::CreateOrderResponse {
    OrderServiceClient::new(w.verifier_channel())
        .create_order(pb::CreateOrderRequest {
            app_id: APP.into(),
            user_id: user.into(),
            product_id: PRODUCT.into(),
            platform: platform.into(),
            quantity,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// Buys `paid` units at the emulator's store, bound to `created` when given, and returns the
/// VerifyPurchase request the client would send.
async fn buy(
    w: &World,
    user: &str,
    platform: pb::Platform,
    created: Option<&pb::CreateOrderResponse>,
    paid: u32,
) -> pb::VerifyPurchaseRequest {
    use pb::verify_purchase_request::Purchase;
    let binding = created.and_then(|c| c.binding.clone()).unwrap_or_default();
    let order_id = created
        .and_then(|c| c.order.as_ref())
        .map(|o| o.order_id.clone());
    let purchase = match platform {
        pb::Platform::Apple => {
            let mut body = json!({ "bundle_id": APP, "product_id": PRODUCT,
                "product_type": "Consumable", "environment": "Production", "quantity": paid });
            if let Some(id) = &order_id {
                body["app_account_token"] = json!(id);
            }
            let made = w.store.post_json("/emulator/apple/purchases", body).await;
            Purchase::Apple(pb::ApplePurchase {
                proof: Some(pb::apple_purchase::Proof::SignedTransaction(
                    made["signed_transaction"].as_str().unwrap().into(),
                )),
                ..Default::default()
            })
        }
        pb::Platform::Google => {
            let made = w
                .store
                .post_json(
                    "/emulator/google/purchases",
                    json!({ "package_name": APP, "product_id": PRODUCT, "kind": "inapp",
                        "quantity": paid,
                        "obfuscated_account_id": binding.google_obfuscated_account_id,
                        "obfuscated_profile_id": binding.google_obfuscated_profile_id }),
                )
                .await;
            Purchase::Google(pb::GooglePurchase {
                purchase_token: made["purchase_token"].as_str().unwrap().into(),
                product_id: PRODUCT.into(),
                original_json: made["original_json"].as_str().unwrap().into(),
                signature: made["signature"].as_str().unwrap().into(),
            })
        }
        _ => {
            let made = w
                .store
                .post_json(
                    "/emulator/huawei/purchases",
                    json!({ "app_id": HUAWEI_APP, "product_id": PRODUCT, "kind": 0,
                        "quantity": paid, "developer_payload": binding.huawei_developer_payload }),
                )
                .await;
            let field = |name: &str| made[name].as_str().unwrap_or_default().to_owned();
            Purchase::Huawei(pb::HuaweiPurchase {
                purchase_token: field("purchase_token"),
                product_id: PRODUCT.into(),
                in_app_purchase_data: field("in_app_purchase_data"),
                signature: field("data_signature"),
                signature_algorithm: field("signature_algorithm"),
            })
        }
    };
    pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: user.into(),
        order_id: String::new(),
        purchase: Some(purchase),
    }
}

const STORES: [(pb::Platform, &str); 3] = [
    (pb::Platform::Apple, "apple"),
    (pb::Platform::Google, "google"),
    (pb::Platform::Huawei, "huawei"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_for_ten_paid_with_one_grants_one_on_every_store() {
    let w = World::start().await;
    for (platform, store) in STORES {
        let user = format!("greedy-{store}");
        let created = order(&w, &user, platform, 10).await;
        let request = buy(&w, &user, platform, Some(&created), 1).await;
        let verified = w.verify(request).await.unwrap();
        let asked = created.order.unwrap().order_id;
        let paid = verified.order.clone().unwrap();
        assert_eq!(paid.order_id, asked, "{store}: the bound order is paid");
        assert_eq!(paid.quantity, 1, "{store}: with the quantity paid");
        assert_eq!(
            verified.binding_reason(),
            pb::BindingReason::PaidQuantityDiffers,
            "{store}"
        );
        let id = OrderId::parse(&asked).unwrap();
        assert_eq!(
            w.order(id).await.binding_reason,
            Some(BindingReason::PaidQuantityDiffers)
        );
    }
    w.sweep_until_quiet(5).await;
    let ledger = w.game.ledger();
    for (_, store) in STORES {
        assert_eq!(
            ledger.balance(APP, &format!("greedy-{store}"), PRODUCT),
            1,
            "{store}: paid one, granted one"
        );
    }
    assert_eq!(ledger.stats().grant_effects, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_for_one_paid_with_three_grants_three_on_every_store() {
    let w = World::start().await;
    for (platform, store) in STORES {
        let user = format!("generous-{store}");
        let created = order(&w, &user, platform, 1).await;
        let request = buy(&w, &user, platform, Some(&created), 3).await;
        let verified = w.verify(request).await.unwrap();
        let paid = verified.order.unwrap();
        assert_eq!(paid.order_id, created.order.unwrap().order_id, "{store}");
        assert_eq!(
            paid.quantity, 3,
            "{store}: the two extra units are not lost"
        );
    }
    // And with no order at all: the new order takes the paid quantity.
    for (platform, store) in STORES {
        let user = format!("orderless-{store}");
        let request = buy(&w, &user, platform, None, 3).await;
        let verified = w.verify(request).await.unwrap();
        assert_eq!(verified.order.unwrap().quantity, 3, "{store}");
    }
    w.sweep_until_quiet(5).await;
    let ledger = w.game.ledger();
    for (_, store) in STORES {
        for who in ["generous", "orderless"] {
            assert_eq!(
                ledger.balance(APP, &format!("{who}-{store}"), PRODUCT),
                3,
                "{who} on {store}: paid three, granted three"
            );
        }
    }
    assert_eq!(ledger.stats().grant_effects, 6, "one grant per purchase");
}

/// The same purchase verified again after its order was corrected keeps the paid figure: a
/// retry cannot bring back the order's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_verification_does_not_restore_the_asked_quantity() {
    let w = World::start().await;
    let created = order(&w, "retrier", pb::Platform::Google, 10).await;
    let request = buy(&w, "retrier", pb::Platform::Google, Some(&created), 2).await;
    let first = w.verify(request.clone()).await.unwrap();
    let again = w.verify(request).await.unwrap();
    assert!(again.already_recorded);
    assert_eq!(first.order.unwrap().quantity, 2);
    assert_eq!(again.order.unwrap().quantity, 2);
    w.sweep_until_quiet(5).await;
    assert_eq!(w.game.ledger().balance(APP, "retrier", PRODUCT), 2);
    assert_eq!(w.game.ledger().stats().grant_effects, 1);
}
