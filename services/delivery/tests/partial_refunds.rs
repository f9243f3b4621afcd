//! Typed and partial refunds from the store's side, against PostgreSQL, the emulator and the
//! reference game server's ledger: a Google quantity-based partial refund takes back only its
//! units and leaves the order delivered for the rest, however often the store repeats it or
//! reconciliation reads it again; a later refund takes back only its own units; Google's
//! `voidedSource` and `voidedReason` are read as Google documents them.

mod common;

use std::sync::Arc;
use std::time::Duration;

use iap_domain::usecases::reconcile::{ReconcilePolicy, Reconciliation};
use iap_domain::{OrderId, OrderState};
use iap_proto::v1 as pb;
use iap_proto::v1::admin_service_client::AdminServiceClient;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_storage::Storage;
use serde_json::{Value, json};

use common::{APP, World};

impl World {
    fn reconciliation(&self) -> Reconciliation<Storage> {
        let stores = self.settings.store_clients().unwrap();
        Reconciliation::new(
            stores.histories(),
            stores.decoders(),
            Arc::new(self.storage.clone()),
            self.deliveries(),
            self.storage.clone(),
            ReconcilePolicy {
                first_lookback: Duration::from_secs(3600),
                overlap: Duration::from_secs(600),
                hold: Duration::from_secs(60),
            },
        )
    }

    /// A Google purchase of `quantity` gems for `user`, verified and delivered. Returns the
    /// order and the purchase token.
    async fn delivered_gems(&self, user: &str, quantity: u32) -> (OrderId, String) {
        let created = OrderServiceClient::new(self.verifier_channel())
            .create_order(pb::CreateOrderRequest {
                app_id: APP.into(),
                user_id: user.into(),
                product_id: "gems_100".into(),
                platform: pb::Platform::Google.into(),
                quantity: i32::try_from(quantity).unwrap(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let binding = created.binding.unwrap();
        let made = self
            .store
            .post_json(
                "/emulator/google/purchases",
                json!({ "package_name": APP, "product_id": "gems_100", "kind": "inapp",
                    "quantity": quantity,
                    "obfuscated_account_id": binding.google_obfuscated_account_id,
                    "obfuscated_profile_id": binding.google_obfuscated_profile_id }),
            )
            .await;
        let token = made["purchase_token"].as_str().unwrap().to_owned();
        let verified = self
            .verify(pb::VerifyPurchaseRequest {
                app_id: APP.into(),
                user_id: user.into(),
                order_id: String::new(),
                purchase: Some(pb::verify_purchase_request::Purchase::Google(
                    pb::GooglePurchase {
                        purchase_token: token.clone(),
                        product_id: "gems_100".into(),
                        original_json: made["original_json"].as_str().unwrap().into(),
                        signature: made["signature"].as_str().unwrap().into(),
                    },
                )),
            })
            .await
            .unwrap();
        let order = OrderId::parse(&verified.order.unwrap().order_id).unwrap();
        self.sweep_until_quiet(10).await;
        assert_eq!(self.order(order).await.state, OrderState::Confirmed);
        (order, token)
    }

    /// Refunds at the emulator's Google Play as `refund` says (quantity, source, reason).
    async fn google_refund(&self, token: &str, refund: Value) {
        self.store
            .post_json(
                &format!("/emulator/google/purchases/{token}/refund"),
                refund,
            )
            .await;
    }

    /// The order's history events of `kind`, with their detail.
    async fn events(&self, order: OrderId, kind: &str) -> Vec<Value> {
        AdminServiceClient::new(self.verifier_channel())
            .get_order_history(pb::GetOrderHistoryRequest {
                order_id: order.to_string(),
            })
            .await
            .unwrap()
            .into_inner()
            .events
            .into_iter()
            .filter(|e| e.kind == kind)
            .map(|e| serde_json::from_str(&e.detail).unwrap_or(Value::String(e.detail)))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_google_partial_refund_takes_back_only_its_units_once() {
    let w = World::start().await;
    // Every notification arrives twice, as Pub/Sub may deliver it.
    w.notify_here("google", 1).await;
    let (order, token) = w.delivered_gems("player-5", 5).await;
    w.settle().await;
    let ledger = w.game.ledger();
    assert_eq!(ledger.balance(APP, "player-5", "gems_100"), 5);

    // Google refunds 2 of the 5 units (RTDN refundType 2).
    let pushed = w
        .store
        .get_json("/emulator/notifications/deliveries")
        .await
        .as_array()
        .map_or(0, Vec::len);
    w.google_refund(&token, json!({ "quantity": 2 })).await;
    w.pushed(pushed + 2).await;
    w.settle().await;
    assert_eq!(
        ledger.balance(APP, "player-5", "gems_100"),
        3,
        "only the 2 refunded units are taken back"
    );
    assert_eq!(
        w.order(order).await.state,
        OrderState::Confirmed,
        "the order stays delivered for the rest"
    );
    assert_eq!(ledger.stats().revoke_effects, 1);

    // Reconciliation reads the same partial refund from the voided purchases list: nothing more.
    let job = w.reconciliation();
    let report = job.run_once().await.unwrap();
    assert_eq!(report.revoked, 0, "{report:?}");
    assert_eq!(ledger.balance(APP, "player-5", "gems_100"), 3);

    // A later refund of 1 more unit (Google now counts 3 refunded): 1 is taken back.
    w.google_refund(&token, json!({ "quantity": 1 })).await;
    w.pushed(pushed + 4).await;
    w.settle().await;
    job.run_once().await.unwrap();
    assert_eq!(ledger.balance(APP, "player-5", "gems_100"), 2);
    assert_eq!(w.order(order).await.state, OrderState::Confirmed);
    assert_eq!(ledger.stats().revoke_effects, 2);
    let revoked: Vec<u32> = ledger
        .revokes()
        .iter()
        .map(|r| r.revoked_quantity)
        .collect();
    assert_eq!(revoked, [2, 1]);

    // The history shows both steps with the units and the store's words.
    let steps = w.events(order, "order.partially_revoked").await;
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(steps[0]["units"], 2);
    assert_eq!(steps[1]["units"], 1);
    assert_eq!(steps[1]["remaining_units"], 2);
    assert_eq!(steps[0]["store_source"], "user");
    assert_eq!(steps[0]["store_reason"], "remorse");

    // The rest refunded: the 2 units left are taken back and the order ends REFUNDED.
    w.google_refund(&token, json!({})).await;
    w.pushed(pushed + 6).await;
    w.settle().await;
    assert_eq!(ledger.balance(APP, "player-5", "gems_100"), 0);
    assert_eq!(w.order(order).await.state, OrderState::Refunded);
    let last = w.events(order, "order.refunded").await;
    assert_eq!(last.len(), 1);
    assert_eq!(last[0]["units"], 2);
    assert_eq!(last[0]["partially_revoked_before"], 3);
    assert_eq!(ledger.stats().revoke_effects, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn google_voided_source_and_reason_are_read_as_google_defines_them() {
    let w = World::start().await;
    // No RTDN target: reconciliation finds both refunds in the voided purchases list.
    let (remorse, remorse_token) = w.delivered_gems("player-r", 1).await;
    let (chargeback, chargeback_token) = w.delivered_gems("player-c", 1).await;
    // Google itself (voidedSource 2) refunds for remorse (voidedReason 1): a refund.
    w.google_refund(&remorse_token, json!({ "source": 2, "reason": 1 }))
        .await;
    // A chargeback (voidedReason 7): revoked.
    w.google_refund(&chargeback_token, json!({ "source": 2, "reason": 7 }))
        .await;
    let report = w.reconciliation().run_once().await.unwrap();
    assert_eq!(report.revoked, 2, "{report:?}");
    assert_eq!(w.order(remorse).await.state, OrderState::Refunded);
    assert_eq!(w.order(chargeback).await.state, OrderState::Revoked);
    let ledger = w.game.ledger();
    assert_eq!(ledger.balance(APP, "player-r", "gems_100"), 0);
    assert_eq!(ledger.balance(APP, "player-c", "gems_100"), 0);

    let refunded = w.events(remorse, "order.refunded").await;
    assert_eq!(refunded[0]["store_source"], "google");
    assert_eq!(refunded[0]["store_reason"], "remorse");
    let revoked = w.events(chargeback, "order.revoked").await;
    assert_eq!(revoked[0]["store_source"], "google");
    assert_eq!(revoked[0]["store_reason"], "chargeback");
}

/// App Store REFUND_PRORATED: `revocationPercentage` (milliunits) of the transaction's quantity,
/// rounded to the nearest unit by default: 1 unit of 3 refunded arrives as 33.333 % and takes
/// back 1 unit (rounding down would leave it granted).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_apple_prorated_refund_takes_back_its_share_of_the_units() {
    let w = World::start().await;
    w.notify_here("apple", 1).await;
    let created = OrderServiceClient::new(w.verifier_channel())
        .create_order(pb::CreateOrderRequest {
            app_id: APP.into(),
            user_id: "player-a".into(),
            product_id: "gems_100".into(),
            platform: pb::Platform::Apple.into(),
            quantity: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let order = OrderId::parse(&created.order.unwrap().order_id).unwrap();
    let bought = w
        .store
        .post_json(
            "/emulator/apple/purchases",
            json!({ "bundle_id": APP, "product_id": "gems_100", "product_type": "Consumable",
                "environment": "Production", "quantity": 3,
                "app_account_token": order.to_string() }),
        )
        .await;
    w.pushed(2).await;
    w.settle().await;
    let ledger = w.game.ledger();
    assert_eq!(ledger.balance(APP, "player-a", "gems_100"), 3);

    let transaction = bought["transaction_id"].as_str().unwrap();
    w.store
        .post_json(
            &format!("/emulator/apple/transactions/{transaction}/refund"),
            json!({ "percentage": 33_333 }),
        )
        .await;
    w.pushed(4).await;
    w.settle().await;
    assert_eq!(ledger.balance(APP, "player-a", "gems_100"), 2);
    assert_eq!(w.order(order).await.state, OrderState::Confirmed);
    assert_eq!(ledger.stats().revoke_effects, 1);
    let steps = w.events(order, "order.partially_revoked").await;
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(steps[0]["units"], 1);
    assert_eq!(steps[0]["store_source"], "REFUND_PRORATED");
}

/// App Store REFUND_REVERSED of a one-time purchase after its REFUND: granted again once, through
/// a new order with its own grant id; the notification delivered twice, posted again by an
/// attacker and replayed by an operator restores nothing more. A reversal of a refund that
/// arrived before its purchase lifts the refund mark, so the purchase is then granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_apple_refund_reversal_grants_again_once() {
    use sea_orm::{ConnectionTrait, Statement};
    let w = World::start().await;
    w.notify_here("apple", 1).await;
    let created = OrderServiceClient::new(w.verifier_channel())
        .create_order(pb::CreateOrderRequest {
            app_id: APP.into(),
            user_id: "player-rr".into(),
            product_id: "gems_100".into(),
            platform: pb::Platform::Apple.into(),
            quantity: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let order = OrderId::parse(&created.order.unwrap().order_id).unwrap();
    let bought = w
        .store
        .post_json(
            "/emulator/apple/purchases",
            json!({ "bundle_id": APP, "product_id": "gems_100", "product_type": "Consumable",
                "environment": "Production", "app_account_token": order.to_string() }),
        )
        .await;
    let transaction = bought["transaction_id"].as_str().unwrap().to_owned();
    w.pushed(2).await;
    w.settle().await;
    let ledger = w.game.ledger();
    assert_eq!(ledger.balance(APP, "player-rr", "gems_100"), 1);

    let control = |action: &str| format!("/emulator/apple/transactions/{transaction}/{action}");
    w.store.post_json(&control("refund"), json!({})).await;
    w.pushed(4).await;
    w.settle().await;
    assert_eq!(ledger.balance(APP, "player-rr", "gems_100"), 0);
    assert_eq!(w.order(order).await.state, OrderState::Refunded);

    let reversed = w
        .store
        .post_json(&control("reverse_refund"), json!({}))
        .await;
    w.pushed(6).await;
    w.settle().await;
    assert_eq!(
        ledger.balance(APP, "player-rr", "gems_100"),
        1,
        "granted again"
    );
    assert_eq!(
        w.order(order).await.state,
        OrderState::Refunded,
        "the old order stays refunded"
    );
    let grants: Vec<String> = ledger.grants().iter().map(|g| g.grant_id.clone()).collect();
    assert_eq!(grants.len(), 2, "{grants:?}");
    assert_ne!(grants[0], grants[1], "a new grant id");
    assert_eq!(
        w.count("orders", "binding_reason = 'refund_reversed'")
            .await,
        1
    );

    // The attacker posts Apple's signed notification again; an operator replays the stored one.
    let target = format!("http://{}/notifications/apple", w.verifier_http);
    let again = reqwest::Client::new()
        .post(&target)
        .body(reversed["notification"].to_string())
        .send()
        .await
        .unwrap();
    assert!(again.status().is_success());
    let stored: String = {
        let row = w
            .storage
            .connection()
            .query_one(Statement::from_string(
                w.storage.backend(),
                "SELECT id FROM notifications WHERE notification_type = 'REFUND_REVERSED'"
                    .to_owned(),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get("", "id").unwrap()
    };
    AdminServiceClient::new(w.verifier_channel())
        .replay_notification(pb::ReplayNotificationRequest {
            id: stored,
            operator: "ops-1".into(),
            reason: "check a reversal twice".into(),
        })
        .await
        .unwrap();
    w.settle().await;
    assert_eq!(
        ledger.balance(APP, "player-rr", "gems_100"),
        1,
        "restored once"
    );
    assert_eq!(ledger.stats().grant_effects, 2);
    assert_eq!(
        w.count("orders", "binding_reason = 'refund_reversed'")
            .await,
        1
    );

    // A later refund of the purchase takes back the restored grant.
    w.store.post_json(&control("refund"), json!({})).await;
    w.pushed(8).await;
    w.settle().await;
    assert_eq!(ledger.balance(APP, "player-rr", "gems_100"), 0);
}

/// A refund processed before its purchase left a refund mark (security.md section 4); Apple
/// then reversed the refund. The reversal lifts the mark, and the client's kept transaction is
/// granted, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reversed_refund_of_a_purchase_not_redeemed_yet_lifts_its_mark() {
    let w = World::start().await;
    w.notify_here("apple", 0).await;
    // Apple releases ONE_TIME_CHARGE and REFUND newest first: the refund is processed first.
    w.notification_mode(json!({ "reverse_batches": 2 })).await;
    let created = OrderServiceClient::new(w.verifier_channel())
        .create_order(pb::CreateOrderRequest {
            app_id: APP.into(),
            user_id: "player-mark".into(),
            product_id: "gems_100".into(),
            platform: pb::Platform::Apple.into(),
            quantity: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let order = OrderId::parse(&created.order.unwrap().order_id).unwrap();
    let bought = w
        .store
        .post_json(
            "/emulator/apple/purchases",
            json!({ "bundle_id": APP, "product_id": "gems_100", "product_type": "Consumable",
                "environment": "Production", "app_account_token": order.to_string() }),
        )
        .await;
    let transaction = bought["transaction_id"].as_str().unwrap().to_owned();
    w.store
        .post_json(
            &format!("/emulator/apple/transactions/{transaction}/refund"),
            json!({}),
        )
        .await;
    w.pushed(2).await;
    w.settle().await;
    assert!(
        w.count("refund_marks", "1 = 1").await >= 1,
        "the refund left a mark"
    );
    let ledger = w.game.ledger();
    assert_eq!(ledger.stats().grant_effects, 0);

    w.notification_mode(json!({ "reverse_batches": 0 })).await;
    w.store
        .post_json(
            &format!("/emulator/apple/transactions/{transaction}/reverse_refund"),
            json!({}),
        )
        .await;
    w.pushed(3).await;
    w.settle().await;
    assert_eq!(
        w.count("refund_marks", "1 = 1").await,
        0,
        "the mark is lifted"
    );

    // The client's kept signed transaction is now granted, once.
    let request = || pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: "player-mark".into(),
        order_id: order.to_string(),
        purchase: Some(pb::verify_purchase_request::Purchase::Apple(
            pb::ApplePurchase {
                proof: Some(pb::apple_purchase::Proof::SignedTransaction(
                    bought["signed_transaction"].as_str().unwrap().into(),
                )),
                ..Default::default()
            },
        )),
    };
    w.verify(request()).await.unwrap();
    w.verify(request()).await.unwrap();
    w.sweep_until_quiet(10).await;
    assert_eq!(ledger.balance(APP, "player-mark", "gems_100"), 1);
    assert_eq!(ledger.stats().grant_effects, 1);
}
