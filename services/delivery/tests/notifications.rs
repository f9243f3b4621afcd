//! App Store Server Notifications V2 end to end: the emulator pushes signed notifications to the
//! verifier's `POST /notifications/apple`; the inbox stores each once; the handler grants a paid
//! purchase whose client never called us (ONE_TIME_CHARGE) and takes back a refunded one
//! (REFUND), exactly once, however often the store repeats itself.

mod common;

use iap_domain::{OrderId, OrderState};
use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use serde_json::{Value, json};

use common::{APP, World};

impl World {
    async fn apple_order(&self, user: &str) -> OrderId {
        let channel = self.verifier_channel();
        let created = OrderServiceClient::new(channel)
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

    async fn apple_buy(&self, token: Option<OrderId>) -> Value {
        let mut body = json!({ "bundle_id": APP, "product_id": "gems_100",
            "product_type": "Consumable", "environment": "Production" });
        if let Some(token) = token {
            body["app_account_token"] = json!(token.to_string());
        }
        self.store
            .post_json("/emulator/apple/purchases", body)
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_notifications_grant_unreported_purchases_and_revoke_refunds_once() {
    let w = World::start().await;
    let target = format!("http://{}/notifications/apple", w.verifier_http);
    let http = reqwest::Client::new();
    http.put(format!(
        "{}/emulator/notifications/targets/apple",
        w.store.base
    ))
    .json(&json!({ "url": target }))
    .send()
    .await
    .unwrap();
    // Stores deliver at least once: every notification arrives three times.
    http.put(format!("{}/emulator/notifications/mode", w.store.base))
        .json(&json!({ "duplicate": 2 }))
        .send()
        .await
        .unwrap();

    // The player paid, the app died before calling VerifyPurchase: ONE_TIME_CHARGE grants it.
    let order = w.apple_order("player-1").await;
    let bought = w.apple_buy(Some(order)).await;
    w.pushed(3).await;
    assert_eq!(
        w.count("notifications", "notification_type = 'ONE_TIME_CHARGE'")
            .await,
        1,
        "three deliveries, one inbox row"
    );
    w.settle().await;
    assert_eq!(w.order(order).await.state, OrderState::Confirmed);
    assert_eq!(w.game.ledger().effects_for_order(&order.to_string()), 1);
    assert_eq!(
        w.count("notifications", "processed_at IS NOT NULL").await,
        1
    );

    // Refunded at the store: REFUND takes the items back, once.
    let transaction = bought["transaction_id"].as_str().unwrap();
    w.store
        .post_json(
            &format!("/emulator/apple/transactions/{transaction}/refund"),
            json!({}),
        )
        .await;
    w.pushed(6).await;
    w.settle().await;
    assert_eq!(w.order(order).await.state, OrderState::Refunded);
    assert_eq!(w.game.ledger().balance(APP, "player-1", "gems_100"), 0);
    assert_eq!(w.game.ledger().stats().revoke_calls, 1);

    // A purchase that carries no order of ours is kept unclaimed for an operator (see
    // `unclaimed.rs`), and nothing is granted.
    let before = w.game.ledger().stats().grant_effects;
    w.apple_buy(None).await;
    w.pushed(9).await;
    w.settle().await;
    assert_eq!(w.game.ledger().stats().grant_effects, before);
    assert_eq!(
        w.count(
            "notifications",
            "outcome LIKE 'paid purchase without an order or a user: kept unclaimed%'"
        )
        .await,
        1
    );
    assert_eq!(w.count("unclaimed_purchases", "1 = 1").await, 1);

    // Bodies that are not authentic notifications are refused and never stored.
    let rows = w.count("notifications", "1 = 1").await;
    for body in [
        "not json".to_owned(),
        json!({ "signedPayload": "a.b.c" }).to_string(),
        json!({}).to_string(),
    ] {
        let reply = http.post(&target).body(body).send().await.unwrap();
        assert_eq!(reply.status().as_u16(), 400);
    }
    assert_eq!(w.count("notifications", "1 = 1").await, rows);
    let unknown = http
        .post(format!("http://{}/notifications/nokia", w.verifier_http))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
}

/// Google Play real-time developer notifications through a Pub/Sub push: a one-time purchase the
/// client never reported is looked up at Google, bound to the order its obfuscated ids carry,
/// granted and consumed; its refund (voided purchase) takes the items back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn google_rtdn_grants_unreported_purchases_and_revokes_voided_ones() {
    let w = World::start().await;
    let target = format!("http://{}/notifications/google", w.verifier_http);
    reqwest::Client::new()
        .put(format!(
            "{}/emulator/notifications/targets/google",
            w.store.base
        ))
        .json(&json!({ "url": target }))
        .send()
        .await
        .unwrap();
    let request = w.purchase("player-7", "gems_100").await;
    w.pushed(1).await;
    w.settle().await;
    // The notification names no order: the store is asked once whose the purchase is, and
    // that answer is what gets recorded (no second identical productsv2 call).
    let stats = w.store.get_json("/emulator/stats").await;
    assert_eq!(
        stats["google.productsv2.get"], 1,
        "one store call for one notification: {stats}"
    );
    let token = match &request.purchase {
        Some(pb::verify_purchase_request::Purchase::Google(g)) => g.purchase_token.clone(),
        _ => unreachable!(),
    };
    let order = {
        use iap_domain::Platform;
        use iap_domain::ports::PaymentLedger;
        // Recorded under Google's order id; found by its token too.
        w.storage
            .find_purchase_by_token(Platform::Google, &token)
            .await
            .unwrap()
            .expect("the notification recorded the purchase")
            .order_id
    };
    assert_eq!(w.order(order).await.state, OrderState::Confirmed);
    assert_eq!(w.game.ledger().balance(APP, "player-7", "gems_100"), 1);

    // The client's late VerifyPurchase finds it recorded: nothing doubles.
    let late = w.verify(request).await.unwrap();
    assert!(late.already_recorded);
    assert_eq!(w.game.ledger().stats().grant_effects, 1);

    w.store
        .post_json(
            &format!("/emulator/google/purchases/{token}/refund"),
            json!({}),
        )
        .await;
    w.pushed(2).await;
    w.settle().await;
    assert_eq!(w.order(order).await.state, OrderState::Refunded);
    assert_eq!(w.game.ledger().balance(APP, "player-7", "gems_100"), 0);
}

/// Huawei IAP notifications v2: the unsigned ORDER event is only a hint — the purchase is
/// re-queried at the Order service, whose signed answer is verified and recorded for the order
/// its developerPayload names, granted and confirmed; the refund event takes the items back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn huawei_order_events_are_requeried_then_granted_and_refunds_revoked() {
    use iap_test_support::emulator::HUAWEI_APP;
    let w = World::start().await;
    let target = format!("http://{}/notifications/huawei", w.verifier_http);
    reqwest::Client::new()
        .put(format!(
            "{}/emulator/notifications/targets/huawei",
            w.store.base
        ))
        .json(&json!({ "url": target }))
        .send()
        .await
        .unwrap();
    let created = OrderServiceClient::new(w.verifier_channel())
        .create_order(pb::CreateOrderRequest {
            app_id: APP.into(),
            user_id: "player-9".into(),
            product_id: "gems_100".into(),
            platform: pb::Platform::Huawei.into(),
            quantity: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let order = OrderId::parse(&created.order.unwrap().order_id).unwrap();
    let payload = created.binding.unwrap().huawei_developer_payload;
    let bought = w
        .store
        .post_json(
            "/emulator/huawei/purchases",
            json!({ "app_id": HUAWEI_APP, "product_id": "gems_100", "kind": 0,
                "developer_payload": payload }),
        )
        .await;
    w.pushed(1).await;
    w.settle().await;
    assert_eq!(w.order(order).await.state, OrderState::Confirmed);
    assert_eq!(w.game.ledger().balance(APP, "player-9", "gems_100"), 1);

    let token = bought["purchase_token"].as_str().unwrap();
    w.store
        .post_json(
            &format!("/emulator/huawei/purchases/{token}/refund"),
            json!({}),
        )
        .await;
    w.pushed(2).await;
    w.settle().await;
    assert_eq!(w.order(order).await.state, OrderState::Refunded);
    assert_eq!(w.game.ledger().balance(APP, "player-9", "gems_100"), 0);

    // The same event again (Huawei resends until it sees 200): one inbox row.
    let again = reqwest::Client::new()
        .post(&target)
        .body(bought["notification"].to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(again.text().await.unwrap(), "duplicate");
}
