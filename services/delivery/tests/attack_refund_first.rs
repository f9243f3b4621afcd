//! Refunded before redeemed. A player buys, asks the store for a refund at once and keeps the
//! proof of purchase; the store's notifications arrive out of order (Apple releases a held batch
//! newest first), so the refund is processed before the purchase. Neither the purchase's own
//! notification nor the client's later VerifyPurchase with the kept proof may grant anything:
//! the game ledger must show zero units for a purchase the store took back.

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use iap_domain::{OrderId, OrderState};
use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use serde_json::{Value, json};
use tonic_types::StatusExt;

use common::{APP, World};

async fn apple_order(w: &World, user: &str) -> OrderId {
    let created = OrderServiceClient::new(w.verifier_channel())
        .create_order(pb::CreateOrderRequest {
            app_id: APP.into(),
            user_id: user.into(),
            product_id: "gems_100".into(),
            platform: pb::Platform::Apple.into(),
            quantity: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    OrderId::parse(&created.order.unwrap().order_id).unwrap()
}

async fn apple_buy(w: &World, order: OrderId) -> Value {
    w.store
        .post_json(
            "/emulator/apple/purchases",
            json!({ "bundle_id": APP, "product_id": "gems_100", "product_type": "Consumable",
                "environment": "Production", "app_account_token": order.to_string() }),
        )
        .await
}

/// The rejection's machine reason and whether the client may finish the transaction.
fn refusal(status: &tonic::Status) -> (String, bool) {
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo on {status:?}"));
    let finish = info.metadata.get("finish_transaction").map(String::as_str) == Some("true");
    (info.reason, finish)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_apple_refund_processed_before_its_purchase_leaves_nothing_granted() {
    let w = World::start().await;
    w.notify_here("apple", 1).await;
    // The store holds two notifications and releases them newest first: REFUND, then
    // ONE_TIME_CHARGE.
    w.notification_mode(json!({ "duplicate": 1, "reverse_batches": 2 }))
        .await;
    let order = apple_order(&w, "refund-first").await;
    let bought = apple_buy(&w, order).await;
    let transaction = bought["transaction_id"].as_str().unwrap();
    w.store
        .post_json(
            &format!("/emulator/apple/transactions/{transaction}/refund"),
            json!({}),
        )
        .await;
    w.pushed(4).await;
    w.settle().await;

    let ledger = w.game.ledger();
    assert_eq!(ledger.stats().grant_effects, 0, "nothing granted");
    assert_eq!(ledger.balance(APP, "refund-first", "gems_100"), 0);
    assert_eq!(w.order(order).await.state, OrderState::Created);
    assert_eq!(
        w.count(
            "notifications",
            "notification_type = 'REFUND' AND outcome LIKE 'refund of a purchase not redeemed here%'"
        )
        .await,
        1
    );
    assert_eq!(
        w.count(
            "notifications",
            "notification_type = 'ONE_TIME_CHARGE' AND outcome LIKE '%REFUNDED%'"
        )
        .await,
        1,
        "the purchase's own notification is refused"
    );

    // The cheater's client replays the signed transaction it kept, by each proof it has.
    let signed = bought["signed_transaction"].as_str().unwrap();
    for proof in [
        pb::apple_purchase::Proof::SignedTransaction(signed.into()),
        pb::apple_purchase::Proof::TransactionId(transaction.into()),
    ] {
        let status = w
            .verify(pb::VerifyPurchaseRequest {
                app_id: APP.into(),
                user_id: "refund-first".into(),
                order_id: order.to_string(),
                purchase: Some(pb::verify_purchase_request::Purchase::Apple(
                    pb::ApplePurchase {
                        proof: Some(proof),
                        ..Default::default()
                    },
                )),
            })
            .await
            .expect_err("a refunded purchase is refused");
        assert_eq!(
            refusal(&status),
            ("REFUNDED".to_owned(), true),
            "refused, and the client may finish the transaction: {status:?}"
        );
    }
    w.sweep_until_quiet(3).await;
    assert_eq!(w.game.ledger().stats().grant_effects, 0);
    assert_eq!(w.count("store_transactions", "1 = 1").await, 0);
}

/// A refund that arrives after the grant still takes the items back: the mark is only for what
/// was not redeemed, and a redeemed purchase is revoked, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_apple_refund_after_the_grant_revokes_it_once_and_marks_nothing() {
    let w = World::start().await;
    w.notify_here("apple", 1).await;
    let order = apple_order(&w, "refund-after").await;
    let bought = apple_buy(&w, order).await;
    w.pushed(2).await;
    w.settle().await;
    assert_eq!(w.game.ledger().balance(APP, "refund-after", "gems_100"), 1);

    let transaction = bought["transaction_id"].as_str().unwrap();
    w.store
        .post_json(
            &format!("/emulator/apple/transactions/{transaction}/refund"),
            json!({}),
        )
        .await;
    w.pushed(4).await;
    w.settle().await;
    assert_eq!(w.game.ledger().balance(APP, "refund-after", "gems_100"), 0);
    assert_eq!(w.game.ledger().stats().revoke_calls, 1);
    assert_eq!(w.order(order).await.state, OrderState::Refunded);
    assert_eq!(w.count("refund_marks", "1 = 1").await, 0);
}

/// Where the store's pushes go when a test wants to hold them: every body is kept, answered 200.
async fn capture_sink() -> (String, Arc<Mutex<Vec<String>>>) {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::post(
                |State(kept): State<Arc<Mutex<Vec<String>>>>, body: String| async move {
                    kept.lock().unwrap().push(body);
                },
            ),
        )
        .with_state(kept.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, kept)
}

/// The purchase's notification reaches us only after the refund, and the refund's own
/// notification never does (Apple resends a failed delivery hours later; a network can lose
/// it). The signed transaction inside ONE_TIME_CHARGE still looks paid, but Apple's current
/// state says refunded: nothing is granted, and the client's kept proof is refused afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_apple_charge_that_arrives_after_its_refund_is_checked_with_apple() {
    let w = World::start().await;
    let (sink, kept) = capture_sink().await;
    reqwest::Client::new()
        .put(format!(
            "{}/emulator/notifications/targets/apple",
            w.store.base
        ))
        .json(&json!({ "url": sink }))
        .send()
        .await
        .unwrap();
    w.notification_mode(json!({ "duplicate": 0 })).await;
    let order = apple_order(&w, "late-charge").await;
    let bought = apple_buy(&w, order).await;
    w.pushed(1).await;
    let transaction = bought["transaction_id"].as_str().unwrap();
    w.store
        .post_json(
            &format!("/emulator/apple/transactions/{transaction}/refund"),
            json!({}),
        )
        .await;
    w.pushed(2).await;
    let charge = kept.lock().unwrap()[0].clone();

    // Only the late ONE_TIME_CHARGE arrives.
    let answer = reqwest::Client::new()
        .post(format!("http://{}/notifications/apple", w.verifier_http))
        .body(charge)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{answer:?}");
    w.settle().await;
    w.sweep_until_quiet(3).await;
    assert_eq!(w.game.ledger().stats().grant_effects, 0, "nothing granted");
    assert_eq!(
        w.count(
            "notifications",
            "notification_type = 'ONE_TIME_CHARGE' AND outcome LIKE '%REFUNDED%'"
        )
        .await,
        1,
        "the charge was refused on Apple's current state"
    );
    assert_eq!(w.count("refund_marks", "1 = 1").await, 1);

    // The kept signed transaction has no revocationDate; the mark refuses it.
    let signed = bought["signed_transaction"].as_str().unwrap();
    let status = w
        .verify(pb::VerifyPurchaseRequest {
            app_id: APP.into(),
            user_id: "late-charge".into(),
            order_id: order.to_string(),
            purchase: Some(pb::verify_purchase_request::Purchase::Apple(
                pb::ApplePurchase {
                    proof: Some(pb::apple_purchase::Proof::SignedTransaction(signed.into())),
                    ..Default::default()
                },
            )),
        })
        .await
        .expect_err("a refunded purchase is refused");
    assert_eq!(refusal(&status), ("REFUNDED".to_owned(), true));
    w.sweep_until_quiet(3).await;
    assert_eq!(w.game.ledger().stats().grant_effects, 0);
    assert_eq!(w.game.ledger().balance(APP, "late-charge", "gems_100"), 0);
}
