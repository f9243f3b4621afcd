//! Support's 补单 and the real purchase meet. A player reports a lost purchase, support grants
//! it by hand (CompensateOrder), and then the store's proof arrives after all — the client
//! retries, or the player plays the cheater and sends it on purpose. The purchase must be
//! recorded against the compensation: one grant for one payment, and the store purchase still
//! consumed at the store (Google refunds what stays unacknowledged).

mod common;

use std::time::Duration;

use iap_domain::OrderId;
use iap_proto::v1 as pb;
use iap_proto::v1::admin_service_client::AdminServiceClient;
use iap_proto::v1::order_service_client::OrderServiceClient;
use serde_json::{Value, json};

use common::{APP, World};

const PRODUCT: &str = "gems_100";

async fn google_order(w: &World, user: &str) -> pb::CreateOrderResponse {
    OrderServiceClient::new(w.verifier_channel())
        .create_order(pb::CreateOrderRequest {
            app_id: APP.into(),
            user_id: user.into(),
            product_id: PRODUCT.into(),
            platform: pb::Platform::Google.into(),
            quantity: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// A Google purchase of `paid` units; bound to `created` when given, else carrying no ids.
async fn google_buy(w: &World, created: Option<&pb::CreateOrderResponse>, paid: u32) -> Value {
    let binding = created.and_then(|c| c.binding.clone()).unwrap_or_default();
    w.store
        .post_json(
            "/emulator/google/purchases",
            json!({ "package_name": APP, "product_id": PRODUCT, "kind": "inapp", "quantity": paid,
                "obfuscated_account_id": binding.google_obfuscated_account_id,
                "obfuscated_profile_id": binding.google_obfuscated_profile_id }),
        )
        .await
}

fn verify_request(user: &str, made: &Value) -> pb::VerifyPurchaseRequest {
    pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: user.into(),
        order_id: String::new(),
        purchase: Some(pb::verify_purchase_request::Purchase::Google(
            pb::GooglePurchase {
                purchase_token: made["purchase_token"].as_str().unwrap().into(),
                product_id: PRODUCT.into(),
                original_json: made["original_json"].as_str().unwrap().into(),
                signature: made["signature"].as_str().unwrap().into(),
            },
        )),
    }
}

async fn compensate(w: &World, request: pb::CompensateOrderRequest) -> pb::Order {
    let reply = AdminServiceClient::new(w.verifier_channel())
        .compensate_order(pb::CompensateOrderRequest {
            operator: "support-1".into(),
            reason: "player reported a lost purchase".into(),
            ..request
        })
        .await
        .unwrap()
        .into_inner();
    reply.order.unwrap()
}

async fn history(w: &World, order_id: &str) -> Vec<String> {
    AdminServiceClient::new(w.verifier_channel())
        .get_order_history(pb::GetOrderHistoryRequest {
            order_id: order_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .events
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

async fn consumed(w: &World, made: &Value) -> bool {
    let token = made["purchase_token"].as_str().unwrap();
    w.store
        .get_json(&format!("/emulator/google/purchases/{token}"))
        .await["consumed"]
        == true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_compensated_order_then_its_real_purchase_grants_once() {
    let w = World::start().await;
    let created = google_order(&w, "unlucky").await;
    let order_id = created.order.as_ref().unwrap().order_id.clone();
    compensate(
        &w,
        pb::CompensateOrderRequest {
            idempotency_key: "ticket-1".into(),
            order_id: order_id.clone(),
            ..Default::default()
        },
    )
    .await;
    w.sweep_until_quiet(5).await;
    assert_eq!(w.game.ledger().balance(APP, "unlucky", PRODUCT), 1);

    // The real purchase for that order arrives, twice (the client retries).
    let made = google_buy(&w, Some(&created), 1).await;
    for _ in 0..2 {
        let verified = w.verify(verify_request("unlucky", &made)).await.unwrap();
        assert_eq!(verified.order.as_ref().unwrap().order_id, order_id);
        assert!(verified.finish_transaction);
        assert_eq!(
            verified.binding_reason(),
            pb::BindingReason::CompensationMatched
        );
    }
    w.sweep_until_quiet(5).await;
    let ledger = w.game.ledger();
    assert_eq!(
        ledger.balance(APP, "unlucky", PRODUCT),
        1,
        "one payment, one grant"
    );
    assert_eq!(ledger.stats().grant_effects, 1);
    assert_eq!(w.count("orders", "1 = 1").await, 1, "no second order");
    // The store purchase is consumed, and the order's story tells both facts.
    assert!(
        consumed(&w, &made).await,
        "the purchase is consumed at Google"
    );
    let order = w.order(OrderId::parse(&order_id).unwrap()).await;
    assert_eq!(order.state, iap_domain::OrderState::Confirmed);
    let events = history(&w, &order_id).await;
    assert!(events.iter().any(|k| k == "admin.compensate"), "{events:?}");
    assert!(
        events.iter().any(|k| k == "purchase.matched_compensation"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purchase_without_an_order_meets_the_users_recent_compensation() {
    let w = World::start().await;
    compensate(
        &w,
        pb::CompensateOrderRequest {
            idempotency_key: "ticket-2".into(),
            app_id: APP.into(),
            user_id: "orderless".into(),
            product_id: PRODUCT.into(),
            platform: pb::Platform::Google.into(),
            quantity: 1,
            ..Default::default()
        },
    )
    .await;
    w.sweep_until_quiet(5).await;
    // The purchase carries no order id (the client lost it).
    let made = google_buy(&w, None, 1).await;
    let verified = w.verify(verify_request("orderless", &made)).await.unwrap();
    assert_eq!(
        verified.binding_reason(),
        pb::BindingReason::CompensationMatched
    );
    w.sweep_until_quiet(5).await;
    assert_eq!(w.game.ledger().balance(APP, "orderless", PRODUCT), 1);
    assert_eq!(w.game.ledger().stats().grant_effects, 1);
    assert!(consumed(&w, &made).await);

    // Another user's purchase is not matched to it, nor is one after the window.
    let made = google_buy(&w, None, 1).await;
    w.verify(verify_request("someone-else", &made))
        .await
        .unwrap();
    compensate(
        &w,
        pb::CompensateOrderRequest {
            idempotency_key: "ticket-3".into(),
            app_id: APP.into(),
            user_id: "late".into(),
            product_id: PRODUCT.into(),
            platform: pb::Platform::Google.into(),
            quantity: 1,
            ..Default::default()
        },
    )
    .await;
    w.sweep_until_quiet(5).await;
    w.execute(
        "UPDATE orders SET created_at = created_at - INTERVAL '4 days' WHERE user_id = 'late'",
    )
    .await;
    let made = google_buy(&w, None, 1).await;
    let verified = w.verify(verify_request("late", &made)).await.unwrap();
    assert_eq!(
        verified.binding_reason(),
        pb::BindingReason::CreatedAtVerification,
        "a compensation older than the window is not matched"
    );
    w.sweep_until_quiet(5).await;
    let ledger = w.game.ledger();
    assert_eq!(ledger.balance(APP, "someone-else", PRODUCT), 1);
    assert_eq!(ledger.balance(APP, "late", PRODUCT), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paying_more_than_was_compensated_grants_the_difference() {
    let w = World::start().await;
    let created = google_order(&w, "topped").await;
    let order_id = created.order.as_ref().unwrap().order_id.clone();
    compensate(
        &w,
        pb::CompensateOrderRequest {
            idempotency_key: "ticket-4".into(),
            order_id: order_id.clone(),
            ..Default::default()
        },
    )
    .await;
    w.sweep_until_quiet(5).await;
    let made = google_buy(&w, Some(&created), 3).await;
    let verified = w.verify(verify_request("topped", &made)).await.unwrap();
    assert_eq!(
        verified.binding_reason(),
        pb::BindingReason::CompensationTopUp
    );
    let top_up = verified.order.unwrap();
    assert_ne!(top_up.order_id, order_id);
    assert_eq!(top_up.quantity, 2);
    w.sweep_until_quiet(5).await;
    assert_eq!(
        w.game.ledger().balance(APP, "topped", PRODUCT),
        3,
        "paid three: one by support, two by the top-up"
    );
    assert!(consumed(&w, &made).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_purchases_racing_for_one_compensation_take_it_once() {
    let w = World::start().await;
    compensate(
        &w,
        pb::CompensateOrderRequest {
            idempotency_key: "ticket-5".into(),
            app_id: APP.into(),
            user_id: "racer".into(),
            product_id: PRODUCT.into(),
            platform: pb::Platform::Google.into(),
            quantity: 1,
            ..Default::default()
        },
    )
    .await;
    w.sweep_until_quiet(5).await;
    // Two real purchases, verified at the same moment: one is the lost one, the other a new
    // purchase that must be granted.
    let first = google_buy(&w, None, 1).await;
    let second = google_buy(&w, None, 1).await;
    let (a, b) = tokio::join!(
        w.verify(verify_request("racer", &first)),
        w.verify(verify_request("racer", &second))
    );
    let reasons = [a.unwrap().binding_reason(), b.unwrap().binding_reason()];
    assert_eq!(
        reasons
            .iter()
            .filter(|r| **r == pb::BindingReason::CompensationMatched)
            .count(),
        1,
        "{reasons:?}"
    );
    w.sweep_until_quiet(5).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        w.game.ledger().balance(APP, "racer", PRODUCT),
        2,
        "two payments: the compensation and one new grant"
    );
}
