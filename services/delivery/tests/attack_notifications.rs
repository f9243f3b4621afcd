//! Notifications are claims until the store confirms them. An attacker who can reach the open
//! notification port (no `google.push_audience` set: the default) writes Pub/Sub pushes and
//! Huawei ORDER events by hand: voiding real purchases, revoking real subscriptions, cancelling,
//! claiming purchases that do not exist, taking message ids the store will use later, replaying
//! what the store sent and what was refused. Against the emulator and real PostgreSQL, the game
//! ledger must show exactly what the store says: nothing taken back that the store did not take
//! back, every real refund taken back once.

mod common;

use base64::Engine;
use iap_domain::ports::PaymentLedger;
use iap_domain::{OrderId, OrderState, Platform};
use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_test_support::emulator::HUAWEI_APP;
use serde_json::{Value, json};

use common::{APP, World};

/// A Pub/Sub push of a DeveloperNotification, as anyone can write one.
fn google_push(message_id: &str, kind: &str, body: &Value) -> String {
    let data = json!({ "version": "1.0", "packageName": APP,
        "eventTimeMillis": chrono::Utc::now().timestamp_millis().to_string(), kind: body });
    json!({ "message": { "messageId": message_id, "message_id": message_id,
            "data": base64::engine::general_purpose::STANDARD.encode(data.to_string()) },
        "subscription": "projects/attacker/subscriptions/forged" })
    .to_string()
}

/// An unsigned Huawei v2 ORDER event, as anyone can write one.
fn huawei_order_event(kind: u8, token: &str, product: &str) -> String {
    json!({ "version": "v2", "eventType": "ORDER",
        "notifyTime": chrono::Utc::now().timestamp_millis(), "applicationId": HUAWEI_APP,
        "orderNotification": { "version": "v2", "notificationType": kind,
            "purchaseToken": token, "productId": product } })
    .to_string()
}

/// The Pub/Sub message id of a push the emulator made.
fn message_id(push: &Value) -> u64 {
    push["message"]["messageId"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("a Pub/Sub message id")
}

impl World {
    /// POSTs a body to the verifier's receiver for `store`: (HTTP status, answer).
    async fn post_notification(&self, store: &str, body: &str) -> (u16, String) {
        let reply = reqwest::Client::new()
            .post(format!(
                "http://{}/notifications/{store}",
                self.verifier_http
            ))
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        (reply.status().as_u16(), reply.text().await.unwrap())
    }

    async fn open_order(
        &self,
        user: &str,
        product: &str,
        platform: pb::Platform,
    ) -> pb::CreateOrderResponse {
        OrderServiceClient::new(self.verifier_channel())
            .create_order(pb::CreateOrderRequest {
                app_id: APP.into(),
                user_id: user.into(),
                product_id: product.into(),
                platform: platform.into(),
                quantity: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// A Google Play subscription bought at the emulator for a new order of `user`.
    async fn google_subscribe(&self, user: &str, product: &str) -> Value {
        let created = self.open_order(user, product, pb::Platform::Google).await;
        let binding = created.binding.unwrap();
        self.store
            .post_json(
                "/emulator/google/purchases",
                json!({ "package_name": APP, "product_id": product, "kind": "subs",
                    "obfuscated_account_id": binding.google_obfuscated_account_id,
                    "obfuscated_profile_id": binding.google_obfuscated_profile_id }),
            )
            .await
    }

    /// A Huawei consumable bought at the emulator for a new order of `user`.
    async fn huawei_buy(&self, user: &str) -> (OrderId, Value) {
        let created = self
            .open_order(user, "gems_100", pb::Platform::Huawei)
            .await;
        let order = OrderId::parse(&created.order.unwrap().order_id).unwrap();
        let payload = created.binding.unwrap().huawei_developer_payload;
        let bought = self
            .store
            .post_json(
                "/emulator/huawei/purchases",
                json!({ "app_id": HUAWEI_APP, "product_id": "gems_100", "kind": 0,
                    "developer_payload": payload }),
            )
            .await;
        (order, bought)
    }

    /// The order a store identity (a charge or order id, or a purchase token) was recorded
    /// under.
    async fn recorded_order(&self, platform: Platform, key: &str) -> OrderId {
        let by_id = self.storage.find_purchase(platform, key).await.unwrap();
        let found = match by_id {
            Some(found) => Some(found),
            None => self
                .storage
                .find_purchase_by_token(platform, key)
                .await
                .unwrap(),
        };
        found.expect("the purchase is recorded").order_id
    }

    async fn rejected_rows(&self) -> i64 {
        self.count("notifications", "rejected_reason IS NOT NULL")
            .await
    }
}

fn google_token(request: &pb::VerifyPurchaseRequest) -> String {
    match &request.purchase {
        Some(pb::verify_purchase_request::Purchase::Google(g)) => g.purchase_token.clone(),
        _ => unreachable!("a Google purchase"),
    }
}

/// Every state-changing Google notification, forged for real purchases: a granted consumable, a
/// granted subscription, and a purchase not redeemed yet. None is confirmed by Google, so nothing
/// is revoked, nothing is marked refunded, and each is kept as rejected with its reason; replaying
/// them changes nothing either; the unredeemed purchase is still granted when its player claims it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_google_voids_revocations_and_cancellations_take_nothing_back() {
    let w = World::start().await;
    // Bought while no push reaches us: its player has not claimed it yet.
    let unclaimed = w.purchase("later", "gems_100").await;
    w.notify_here("google", 0).await;

    let gems = w.purchase("victim", "gems_100").await;
    let sub = w.google_subscribe("victim", "vip_monthly").await;
    w.pushed(2).await;
    w.settle().await;
    let ledger = w.game.ledger();
    assert_eq!(ledger.balance(APP, "victim", "gems_100"), 1);
    assert_eq!(
        ledger.stats().grant_effects,
        2,
        "the consumable and the first period"
    );
    let gems_token = google_token(&gems);
    let sub_token = sub["purchase_token"].as_str().unwrap();
    let gems_order = w.recorded_order(Platform::Google, &gems_token).await;
    let sub_order = w
        .recorded_order(Platform::Google, sub["order_id"].as_str().unwrap())
        .await;

    let forged = [
        // A refund of the granted consumable.
        google_push(
            "forged-1",
            "voidedPurchaseNotification",
            &json!({ "purchaseToken": gems_token, "orderId": "GPA.0000-0000-0000-00001",
                "productType": 2, "refundType": 1 }),
        ),
        // A refund of the subscription's paid period, by its real order id.
        google_push(
            "forged-2",
            "voidedPurchaseNotification",
            &json!({ "purchaseToken": sub_token, "orderId": sub["order_id"],
                "productType": 1, "refundType": 1 }),
        ),
        // SUBSCRIPTION_REVOKED.
        google_push(
            "forged-3",
            "subscriptionNotification",
            &json!({ "version": "1.0", "notificationType": 12, "purchaseToken": sub_token }),
        ),
        // ONE_TIME_PRODUCT_CANCELED of the granted consumable.
        google_push(
            "forged-4",
            "oneTimeProductNotification",
            &json!({ "version": "1.0", "notificationType": 2, "purchaseToken": gems_token,
                "sku": "gems_100" }),
        ),
        // A refund of the purchase not redeemed yet (it would be marked refunded).
        google_push(
            "forged-5",
            "voidedPurchaseNotification",
            &json!({ "purchaseToken": google_token(&unclaimed), "productType": 2,
                "refundType": 1 }),
        ),
        // A purchase Google never made.
        google_push(
            "forged-6",
            "oneTimeProductNotification",
            &json!({ "version": "1.0", "notificationType": 1, "purchaseToken": "forged-token-1",
                "sku": "gems_100" }),
        ),
        // A renewal of a subscription Google never sold.
        google_push(
            "forged-7",
            "subscriptionNotification",
            &json!({ "version": "1.0", "notificationType": 2, "purchaseToken": "forged-token-2" }),
        ),
    ];
    for body in &forged {
        assert_eq!(
            w.post_notification("google", body).await,
            (200, "stored".into())
        );
    }
    w.settle().await;

    let check = |when: &str| {
        let ledger = w.game.ledger();
        assert_eq!(ledger.balance(APP, "victim", "gems_100"), 1, "{when}");
        assert_eq!(ledger.stats().revoke_calls, 0, "{when}: nothing revoked");
        assert_eq!(ledger.stats().grant_effects, 2, "{when}: nothing granted");
    };
    check("after the forgeries");
    assert_eq!(w.order(gems_order).await.state, OrderState::Confirmed);
    assert_eq!(w.order(sub_order).await.state, OrderState::Confirmed);
    assert_eq!(
        w.count("refund_marks", "1 = 1").await,
        0,
        "no refund marked"
    );
    assert_eq!(w.rejected_rows().await, 7, "each forgery kept as rejected");
    for reason in ["not_voided_at_store", "still_paid_at_store"] {
        assert!(
            w.count("notifications", &format!("rejected_reason = '{reason}'"))
                .await
                > 0,
            "{reason}"
        );
    }

    // Replayed, they are duplicates of rejected rows: still nothing.
    for body in &forged {
        assert_eq!(
            w.post_notification("google", body).await,
            (200, "duplicate".into())
        );
    }
    w.settle().await;
    check("after the replays");
    assert_eq!(w.rejected_rows().await, 7);

    // The player of the unredeemed purchase claims it: granted, once.
    w.verify(unclaimed)
        .await
        .expect("not refunded at the store");
    w.sweep_until_quiet(3).await;
    assert_eq!(w.game.ledger().balance(APP, "later", "gems_100"), 1);
}

/// A forged push takes the message id Google will give its next notification. Google's own
/// notification (a refund) still arrives, is stored under its own key, and is acted on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forged_push_on_a_future_message_id_does_not_shadow_googles_notification() {
    let w = World::start().await;
    w.notify_here("google", 0).await;
    let request = w.purchase("victim", "gems_100").await;
    w.pushed(1).await;
    w.settle().await;
    assert_eq!(w.game.ledger().balance(APP, "victim", "gems_100"), 1);
    let token = google_token(&request);
    let order = w.recorded_order(Platform::Google, &token).await;

    // The purchase's push was the emulator's latest; Google's next one gets the next id. The
    // attacker takes it first with a harmless-looking test notification.
    let purchased = w.count("notifications", "1 = 1").await;
    assert_eq!(purchased, 1);
    let last: String = {
        use sea_orm::{ConnectionTrait, Statement};
        let row = w
            .storage
            .connection()
            .query_one(Statement::from_string(
                w.storage.backend(),
                "SELECT notification_id FROM notifications".to_owned(),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get("", "notification_id").unwrap()
    };
    let next = last.split(':').next().unwrap().parse::<u64>().unwrap() + 1;
    let forged = google_push(
        &next.to_string(),
        "testNotification",
        &json!({ "version": "1.0" }),
    );
    assert_eq!(
        w.post_notification("google", &forged).await,
        (200, "stored".into())
    );
    w.settle().await;

    // Google refunds the purchase: its notification carries that very message id.
    let refunded = w
        .store
        .post_json(
            &format!("/emulator/google/purchases/{token}/refund"),
            json!({}),
        )
        .await;
    assert_eq!(message_id(&refunded["notification"]), next);
    w.pushed(2).await;
    w.settle().await;
    assert_eq!(
        w.game.ledger().balance(APP, "victim", "gems_100"),
        0,
        "revoked"
    );
    assert_eq!(w.game.ledger().stats().revoke_calls, 1);
    assert_eq!(w.order(order).await.state, OrderState::Refunded);
}

/// Google delivers at least once: every real notification three times, and an attacker replays
/// the real refund later. Each real refund or revocation is acted on once, and replays are
/// duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replayed_google_refunds_and_revocations_are_acted_on_once() {
    let w = World::start().await;
    w.notify_here("google", 2).await;
    let request = w.purchase("player", "gems_100").await;
    let sub = w.google_subscribe("player", "vip_monthly").await;
    w.pushed(6).await;
    w.settle().await;
    assert_eq!(w.game.ledger().stats().grant_effects, 2);
    let token = google_token(&request);
    let sub_token = sub["purchase_token"].as_str().unwrap();
    let gems_order = w.recorded_order(Platform::Google, &token).await;
    let sub_order = w
        .recorded_order(Platform::Google, sub["order_id"].as_str().unwrap())
        .await;

    let refunded = w
        .store
        .post_json(
            &format!("/emulator/google/purchases/{token}/refund"),
            json!({}),
        )
        .await;
    // Google revokes the subscription (refund and revoke): SUBSCRIPTION_REVOKED.
    let revoked = w
        .store
        .post_json(
            &format!("/emulator/google/subscriptions/{sub_token}/revoke"),
            json!({}),
        )
        .await;
    w.pushed(12).await;
    w.settle().await;
    for push in [&refunded["notification"], &revoked["notification"]] {
        assert_eq!(
            w.post_notification("google", &push.to_string()).await,
            (200, "duplicate".into())
        );
    }
    w.settle().await;

    let ledger = w.game.ledger();
    assert_eq!(ledger.balance(APP, "player", "gems_100"), 0);
    assert_eq!(ledger.stats().revoke_calls, 2, "each taken back once");
    assert_eq!(w.order(gems_order).await.state, OrderState::Refunded);
    assert_eq!(w.order(sub_order).await.state, OrderState::Revoked);
    assert_eq!(w.rejected_rows().await, 0, "Google confirmed both");
}

/// Out of order: Google's refund is delivered before the purchase it refunds. Nothing is granted,
/// by the notification or by the player's kept proof.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_google_refund_delivered_before_its_purchase_grants_nothing() {
    let w = World::start().await;
    w.notify_here("google", 0).await;
    w.notification_mode(json!({ "reverse_batches": 2 })).await;
    let request = w.purchase("refund-first", "gems_100").await;
    let token = google_token(&request);
    w.store
        .post_json(
            &format!("/emulator/google/purchases/{token}/refund"),
            json!({}),
        )
        .await;
    w.pushed(2).await;
    w.settle().await;
    assert!(
        w.verify(request).await.is_err(),
        "the kept proof is refused"
    );
    w.sweep_until_quiet(3).await;
    let ledger = w.game.ledger();
    assert_eq!(ledger.stats().grant_effects, 0);
    assert_eq!(ledger.balance(APP, "refund-first", "gems_100"), 0);
    assert_eq!(
        w.rejected_rows().await,
        1,
        "the purchase's own notification"
    );
}

/// Unsigned Huawei ORDER events, forged: a refund of a granted purchase, a refund of one not
/// redeemed yet, a payment Huawei never took. Huawei's cancelled list shows none of the refunds,
/// so nothing is revoked or marked; a forged payment is refused at the door. Then Huawei's own
/// refund of the granted purchase arrives and is acted on, once, however often it is resent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_huawei_order_refunds_take_nothing_back_and_the_real_one_still_does() {
    let w = World::start().await;
    // Bought while no event reaches us: its player has not claimed it yet.
    let (_, unclaimed) = w.huawei_buy("later").await;
    w.notify_here("huawei", 0).await;
    let (order, bought) = w.huawei_buy("victim").await;
    w.pushed(1).await;
    w.settle().await;
    assert_eq!(w.game.ledger().balance(APP, "victim", "gems_100"), 1);
    let token = bought["purchase_token"].as_str().unwrap();

    let forged = [
        huawei_order_event(2, token, "gems_100"),
        huawei_order_event(2, unclaimed["purchase_token"].as_str().unwrap(), "gems_100"),
    ];
    for body in &forged {
        assert_eq!(
            w.post_notification("huawei", body).await,
            (200, "stored".into())
        );
    }
    // A payment Huawei does not know is refused when Huawei is asked, before it is stored.
    let (status, _) = w
        .post_notification("huawei", &huawei_order_event(1, "forged-token", "gems_100"))
        .await;
    assert_eq!(status, 400);
    // A subscription CANCEL is signed by Huawei: one signed by anyone else is refused at the door.
    let status_update = json!({ "notificationType": 1, "subscriptionId": "sub-1",
        "purchaseToken": token, "orderId": "order-1", "productId": "vip_monthly" })
    .to_string();
    let forged_cancel = json!({ "version": "v2", "eventType": "SUBSCRIPTION",
        "notifyTime": chrono::Utc::now().timestamp_millis(), "applicationId": HUAWEI_APP,
        "subNotification": { "version": "v2", "statusUpdateNotification": status_update,
            "notificationSignature": base64::engine::general_purpose::STANDARD.encode([7u8; 384]),
            "signatureAlgorithm": "SHA256WithRSA" } });
    let (status, _) = w
        .post_notification("huawei", &forged_cancel.to_string())
        .await;
    assert_eq!(status, 400);
    w.settle().await;

    let ledger = w.game.ledger();
    assert_eq!(
        ledger.balance(APP, "victim", "gems_100"),
        1,
        "nothing revoked"
    );
    assert_eq!(ledger.stats().revoke_calls, 0);
    assert_eq!(ledger.stats().grant_effects, 1);
    assert_eq!(w.order(order).await.state, OrderState::Confirmed);
    assert_eq!(
        w.count("refund_marks", "1 = 1").await,
        0,
        "no refund marked"
    );
    assert_eq!(
        w.count(
            "notifications",
            "rejected_reason = 'not_cancelled_at_store'"
        )
        .await,
        2
    );
    for body in &forged {
        assert_eq!(
            w.post_notification("huawei", body).await,
            (200, "duplicate".into())
        );
    }

    // The unredeemed purchase is claimed by its player: granted.
    let verified = w
        .verify(pb::VerifyPurchaseRequest {
            app_id: APP.into(),
            user_id: "later".into(),
            order_id: String::new(),
            purchase: Some(pb::verify_purchase_request::Purchase::Huawei(
                pb::HuaweiPurchase {
                    purchase_token: unclaimed["purchase_token"].as_str().unwrap().into(),
                    product_id: "gems_100".into(),
                    in_app_purchase_data: unclaimed["in_app_purchase_data"]
                        .as_str()
                        .unwrap()
                        .into(),
                    signature: unclaimed["data_signature"].as_str().unwrap().into(),
                    signature_algorithm: unclaimed["signature_algorithm"]
                        .as_str()
                        .unwrap_or_default()
                        .into(),
                },
            )),
        })
        .await;
    verified.expect("not refunded at the store");
    w.sweep_until_quiet(3).await;
    assert_eq!(w.game.ledger().balance(APP, "later", "gems_100"), 1);

    // Huawei refunds the victim's purchase and resends the event twice.
    w.notification_mode(json!({ "duplicate": 2 })).await;
    let refunded = w
        .store
        .post_json(
            &format!("/emulator/huawei/purchases/{token}/refund"),
            json!({}),
        )
        .await;
    w.pushed(4).await;
    w.settle().await;
    assert_eq!(
        w.post_notification("huawei", &refunded["notification"].to_string())
            .await,
        (200, "duplicate".into())
    );
    w.settle().await;
    let ledger = w.game.ledger();
    assert_eq!(
        ledger.balance(APP, "victim", "gems_100"),
        0,
        "the real refund revokes"
    );
    assert_eq!(ledger.stats().revoke_calls, 1, "once");
    assert_eq!(w.order(order).await.state, OrderState::Refunded);
}

/// Out of order: Huawei's refund event is processed before the payment event. The refund is
/// confirmed by the cancelled list and marked; the payment grants nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_huawei_refund_delivered_before_its_payment_grants_nothing() {
    let w = World::start().await;
    w.notify_here("huawei", 0).await;
    w.notification_mode(json!({ "reverse_batches": 2 })).await;
    let (order, bought) = w.huawei_buy("refund-first").await;
    let token = bought["purchase_token"].as_str().unwrap();
    w.store
        .post_json(
            &format!("/emulator/huawei/purchases/{token}/refund"),
            json!({}),
        )
        .await;
    w.pushed(2).await;
    w.settle().await;
    w.sweep_until_quiet(3).await;
    let ledger = w.game.ledger();
    assert_eq!(ledger.stats().grant_effects, 0);
    assert_eq!(ledger.balance(APP, "refund-first", "gems_100"), 0);
    assert_ne!(w.order(order).await.state, OrderState::Confirmed);
}

/// Out of order: Google renews a subscription and then revokes it, and the two notifications
/// arrive newest first (SUBSCRIPTION_REVOKED before SUBSCRIPTION_RENEWED). The revocation is
/// confirmed and applied; the late renewal finds the subscription revoked and grants nothing:
/// the player keeps no period of a subscription the store took back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_google_revocation_delivered_before_the_renewal_leaves_no_period_granted() {
    let w = World::start().await;
    w.notify_here("google", 0).await;
    let sub = w.google_subscribe("reordered", "vip_monthly").await;
    w.pushed(1).await;
    w.settle().await;
    assert_eq!(w.game.ledger().stats().grant_effects, 1);
    let token = sub["purchase_token"].as_str().unwrap();
    let first = w
        .recorded_order(Platform::Google, sub["order_id"].as_str().unwrap())
        .await;

    w.notification_mode(json!({ "reverse_batches": 2 })).await;
    w.store
        .post_json(
            &format!("/emulator/google/subscriptions/{token}/renew"),
            json!({}),
        )
        .await;
    w.store
        .post_json(
            &format!("/emulator/google/subscriptions/{token}/revoke"),
            json!({}),
        )
        .await;
    w.pushed(3).await;
    w.settle().await;
    w.sweep_until_quiet(3).await;

    let ledger = w.game.ledger();
    assert_eq!(
        ledger.stats().grant_effects - ledger.stats().revoke_calls,
        0,
        "every period granted was taken back"
    );
    assert_eq!(w.order(first).await.state, OrderState::Revoked);
    assert_eq!(w.rejected_rows().await, 0, "both are Google's own");
}
