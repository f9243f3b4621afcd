//! Subscription life cycles end to end, driven by the emulator's store notifications (each one
//! delivered three times) against real PostgreSQL and Redis: every paid period is granted once as
//! its own order, grace keeps access without a grant, hold, pause, billing retry and expiry end
//! it, an upgrade retires the subscription it replaces, a refund takes the period back, and the
//! game server hears each change of entitlement (UpdateSubscription, by version).

mod common;

use std::time::Duration;

use chrono::Utc;
use iap_domain::subscriptions::{Subscription, SubscriptionState, SubscriptionStore};
use iap_domain::{BindingReason, OrderId, OrderState, Platform};
use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use serde_json::{Value, json};

use common::{APP, World};

impl World {
    /// CreateOrder for `product` on `platform`; returns the order and its store binding.
    async fn open_order(
        &self,
        user: &str,
        product: &str,
        platform: pb::Platform,
    ) -> (OrderId, pb::PurchaseBinding) {
        let created = OrderServiceClient::new(self.verifier_channel())
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
            .into_inner();
        (
            OrderId::parse(&created.order.unwrap().order_id).unwrap(),
            created.binding.unwrap(),
        )
    }

    /// A Google Play subscription bought at the emulator, carrying `binding`'s ids when given.
    async fn google_subscribe(
        &self,
        product: &str,
        binding: Option<&pb::PurchaseBinding>,
        linked: Option<&str>,
    ) -> Value {
        let mut body = json!({ "package_name": APP, "product_id": product, "kind": "subs" });
        if let Some(b) = binding {
            body["obfuscated_account_id"] = json!(b.google_obfuscated_account_id);
            body["obfuscated_profile_id"] = json!(b.google_obfuscated_profile_id);
        }
        if let Some(token) = linked {
            body["linked_purchase_token"] = json!(token);
        }
        self.store
            .post_json("/emulator/google/purchases", body)
            .await
    }

    /// The client's VerifyPurchase for a Google Play subscription bought at the emulator.
    async fn verify_google_subscription(
        &self,
        user: &str,
        order: OrderId,
        product: &str,
        bought: &Value,
    ) -> pb::VerifyPurchaseResponse {
        self.verify(pb::VerifyPurchaseRequest {
            app_id: APP.into(),
            user_id: user.into(),
            order_id: order.to_string(),
            purchase: Some(pb::verify_purchase_request::Purchase::Google(
                pb::GooglePurchase {
                    purchase_token: bought["purchase_token"].as_str().unwrap().into(),
                    product_id: product.into(),
                    original_json: bought["original_json"].as_str().unwrap().into(),
                    signature: bought["signature"].as_str().unwrap().into(),
                },
            )),
        })
        .await
        .unwrap()
    }

    async fn subscription_action(&self, store: &str, key: &str, action: &str) -> Value {
        self.subscription_action_with(store, key, action, json!({}))
            .await
    }

    async fn subscription_action_with(
        &self,
        store: &str,
        key: &str,
        action: &str,
        body: Value,
    ) -> Value {
        let path = format!("/emulator/{store}/subscriptions/{key}/{action}");
        self.store.post_json(&path, body).await
    }

    async fn subscription(&self, platform: Platform, key: &str) -> Subscription {
        self.storage
            .find_subscription(platform, key)
            .await
            .unwrap()
            .expect("subscription recorded")
    }

    /// Tells the game server about every subscription change, as the delivery sweeper does.
    async fn sync_entitlements(&self) {
        let sync = self.delivery.entitlement_sync(Duration::from_secs(2));
        for _ in 0..3 {
            sync.run_once(100).await.unwrap();
        }
    }

    /// Grants the game applied for `user`'s `product` (one per paid period).
    fn periods_granted(&self, user: &str, product: &str) -> i64 {
        self.game.ledger().balance(APP, user, product)
    }

    /// Waits for `more` notifications beyond `seen` (each delivered three times), then works
    /// the inbox and delivers what it paid.
    async fn after_notifications(&self, seen: &mut usize, more: usize) {
        *seen += 3 * more;
        self.pushed(*seen).await;
        self.settle().await;
        self.sweep_until_quiet(10).await;
    }

    async fn renewal_orders(&self, key: &str) -> i64 {
        self.count(
            "orders",
            &format!(
                "binding_reason = '{}' AND id IN (SELECT order_id FROM store_transactions WHERE \
                 purchase_token = '{key}' OR original_transaction_id = '{key}')",
                BindingReason::SubscriptionRenewal.as_str()
            ),
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn google_subscription_renews_once_and_follows_grace_recovery_pause_resume_grace_hold_expiry()
{
    let w = World::start().await;
    w.notify_here("google", 2).await;
    let mut seen = 0;

    // Bought and verified by the client; SUBSCRIPTION_PURCHASED arrives too and changes nothing.
    let (order, binding) = w
        .open_order("player-g", "vip_monthly", pb::Platform::Google)
        .await;
    let bought = w
        .google_subscribe("vip_monthly", Some(&binding), None)
        .await;
    let token = bought["purchase_token"].as_str().unwrap().to_owned();
    let verified = w
        .verify_google_subscription("player-g", order, "vip_monthly", &bought)
        .await;
    assert_eq!(verified.order.unwrap().order_id, order.to_string());
    w.after_notifications(&mut seen, 1).await;
    assert_eq!(w.order(order).await.state, OrderState::Confirmed);
    assert_eq!(w.periods_granted("player-g", "vip_monthly"), 1);
    let first = w.subscription(Platform::Google, &token).await;
    assert_eq!(first.state, SubscriptionState::Active);
    assert_eq!(first.original_order_id, order);
    w.sync_entitlements().await;
    let held = w.game.ledger().entitlement(&first.id).unwrap();
    assert_eq!(held.state, "active");
    assert_eq!(held.version, first.version);
    assert!(held.access_until_ms > Utc::now().timestamp_millis());

    // Renewed: one new period, granted once as a renewal, whatever the duplicates.
    w.subscription_action("google", &token, "renew").await;
    w.after_notifications(&mut seen, 1).await;
    assert_eq!(w.periods_granted("player-g", "vip_monthly"), 2);
    assert_eq!(w.renewal_orders(&token).await, 1);
    let renewed = w.subscription(Platform::Google, &token).await;
    assert_ne!(renewed.latest_order_id, order);
    assert!(renewed.expires_at > first.expires_at);
    assert_eq!(
        w.order(renewed.latest_order_id).await.binding_reason,
        Some(BindingReason::SubscriptionRenewal)
    );

    // Grace: access continues to the grace period's end, nothing is granted.
    w.subscription_action("google", &token, "enter_grace").await;
    w.after_notifications(&mut seen, 1).await;
    let grace = w.subscription(Platform::Google, &token).await;
    assert_eq!(grace.state, SubscriptionState::InGrace);
    assert!(grace.access_until().unwrap() > Utc::now());
    assert_eq!(w.periods_granted("player-g", "vip_monthly"), 2);
    w.sync_entitlements().await;
    assert_eq!(
        w.game.ledger().entitlement(&grace.id).unwrap().state,
        "in_grace"
    );

    // Recovered: the period paid now is granted.
    w.subscription_action("google", &token, "recover").await;
    w.after_notifications(&mut seen, 1).await;
    assert_eq!(
        w.subscription(Platform::Google, &token).await.state,
        SubscriptionState::Active
    );
    assert_eq!(w.periods_granted("player-g", "vip_monthly"), 3);

    // Paused and resumed: suspended, then a new period granted.
    w.subscription_action("google", &token, "pause").await;
    w.after_notifications(&mut seen, 1).await;
    let paused = w.subscription(Platform::Google, &token).await;
    assert_eq!(paused.state, SubscriptionState::Paused);
    assert_eq!(paused.access_until(), None);
    let granted = w.periods_granted("player-g", "vip_monthly");
    w.subscription_action("google", &token, "resume").await;
    w.after_notifications(&mut seen, 1).await;
    assert_eq!(
        w.subscription(Platform::Google, &token).await.state,
        SubscriptionState::Active
    );
    assert_eq!(w.periods_granted("player-g", "vip_monthly"), granted + 1);

    // Grace, then account hold: access suspended, and the game hears it; then expiry.
    w.subscription_action("google", &token, "enter_grace").await;
    w.after_notifications(&mut seen, 1).await;
    assert_eq!(
        w.subscription(Platform::Google, &token).await.state,
        SubscriptionState::InGrace
    );
    w.subscription_action("google", &token, "hold").await;
    w.after_notifications(&mut seen, 1).await;
    let hold = w.subscription(Platform::Google, &token).await;
    assert_eq!(hold.state, SubscriptionState::OnHold);
    assert_eq!(hold.access_until(), None);
    w.sync_entitlements().await;
    let held = w.game.ledger().entitlement(&hold.id).unwrap();
    assert_eq!((held.state.as_str(), held.access_until_ms), ("on_hold", 0));
    assert_eq!(w.periods_granted("player-g", "vip_monthly"), granted + 1);

    // Expired: no access, no further checks.
    w.subscription_action("google", &token, "expire").await;
    w.after_notifications(&mut seen, 1).await;
    let expired = w.subscription(Platform::Google, &token).await;
    assert_eq!(expired.state, SubscriptionState::Expired);
    assert_eq!(expired.next_check_at, None);
    w.sync_entitlements().await;
    let held = w.game.ledger().entitlement(&expired.id).unwrap();
    assert_eq!(
        (held.state.as_str(), held.version),
        ("expired", expired.version)
    );

    // Every period paid was granted exactly once: one grant effect per order.
    for row in w.game.ledger().grants() {
        assert_eq!(w.game.ledger().effects_for_order(&row.order_id), 1);
    }
    assert_eq!(
        w.count(
            "orders",
            "product_id = 'vip_monthly' AND state NOT IN ('CONFIRMED')"
        )
        .await,
        0,
        "every period granted and acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn google_upgrade_with_a_linked_token_replaces_the_old_subscription_and_a_revoke_takes_it_back()
 {
    let w = World::start().await;
    w.notify_here("google", 2).await;
    let mut seen = 0;

    // The monthly plan, bought with an order; the client dies before verifying: the
    // notification alone records and grants it for the order's player.
    let (monthly_order, binding) = w
        .open_order("player-u", "vip_monthly", pb::Platform::Google)
        .await;
    let monthly = w
        .google_subscribe("vip_monthly", Some(&binding), None)
        .await;
    let monthly_token = monthly["purchase_token"].as_str().unwrap().to_owned();
    w.after_notifications(&mut seen, 1).await;
    assert_eq!(w.order(monthly_order).await.state, OrderState::Confirmed);
    let old = w.subscription(Platform::Google, &monthly_token).await;

    // Upgraded to yearly from the Play subscriptions centre: the new purchase carries no ids
    // of ours, only the token it replaces. The player is the old subscription's owner.
    let yearly = w
        .google_subscribe("vip_yearly", None, Some(&monthly_token))
        .await;
    let yearly_token = yearly["purchase_token"].as_str().unwrap().to_owned();
    w.after_notifications(&mut seen, 1).await;
    let new = w.subscription(Platform::Google, &yearly_token).await;
    assert_eq!(new.user_id.as_str(), "player-u");
    assert_eq!(new.state, SubscriptionState::Active);
    let old_now = w.subscription(Platform::Google, &monthly_token).await;
    assert_eq!(old_now.state, SubscriptionState::Replaced);
    assert_eq!(old_now.replaced_by.as_deref(), Some(new.id.as_str()));
    assert!(old_now.version > old.version);
    assert_eq!(w.periods_granted("player-u", "vip_yearly"), 1);
    assert_eq!(w.periods_granted("player-u", "vip_monthly"), 1);
    w.sync_entitlements().await;
    let ledger = w.game.ledger();
    assert_eq!(ledger.entitlement(&old.id).unwrap().state, "replaced");
    assert_eq!(ledger.entitlement(&old.id).unwrap().access_until_ms, 0);
    assert_eq!(ledger.entitlement(&new.id).unwrap().state, "active");
    // Later news of the replaced token (it expires at Google) leaves it replaced.
    w.subscription_action("google", &monthly_token, "expire")
        .await;
    w.after_notifications(&mut seen, 1).await;
    assert_eq!(
        w.subscription(Platform::Google, &monthly_token).await.state,
        SubscriptionState::Replaced
    );

    // Revoked (refund or chargeback): the period is taken back once, access ends.
    w.subscription_action("google", &yearly_token, "revoke")
        .await;
    w.after_notifications(&mut seen, 1).await;
    assert_eq!(
        w.order(new.latest_order_id).await.state,
        OrderState::Revoked
    );
    assert_eq!(w.periods_granted("player-u", "vip_yearly"), 0);
    assert_eq!(w.game.ledger().stats().revoke_calls, 1);
    let revoked = w.subscription(Platform::Google, &yearly_token).await;
    assert_eq!(revoked.state, SubscriptionState::Revoked);
    w.sync_entitlements().await;
    assert_eq!(
        w.game.ledger().entitlement(&revoked.id).unwrap().state,
        "revoked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apple_subscription_life_cycle_from_notifications_alone() {
    let w = World::start().await;
    w.notify_here("apple", 2).await;
    let mut seen = 0;

    // SUBSCRIBED for an order whose client died: recorded for the order's player, granted.
    let (order, _) = w
        .open_order("player-a", "vip_monthly", pb::Platform::Apple)
        .await;
    let bought = w
        .store
        .post_json(
            "/emulator/apple/purchases",
            json!({ "bundle_id": APP, "product_id": "vip_monthly",
                "product_type": "Auto-Renewable Subscription", "environment": "Production",
                "subscription_group": "vip", "app_account_token": order.to_string() }),
        )
        .await;
    let original = bought["original_transaction_id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.after_notifications(&mut seen, 1).await;
    assert_eq!(w.order(order).await.state, OrderState::Confirmed);
    let first = w.subscription(Platform::Apple, &original).await;
    assert_eq!(first.state, SubscriptionState::Active);
    assert_eq!(w.periods_granted("player-a", "vip_monthly"), 1);

    // DID_RENEW: one more period, once.
    w.subscription_action("apple", &original, "renew").await;
    w.after_notifications(&mut seen, 1).await;
    assert_eq!(w.periods_granted("player-a", "vip_monthly"), 2);
    assert_eq!(w.renewal_orders(&original).await, 1);

    // DID_FAIL_TO_RENEW/GRACE_PERIOD → grace; GRACE_PERIOD_EXPIRED → billing retry (no access);
    // DID_RENEW/BILLING_RECOVERY → a new period granted.
    w.subscription_action("apple", &original, "enter_grace")
        .await;
    w.after_notifications(&mut seen, 1).await;
    let grace = w.subscription(Platform::Apple, &original).await;
    assert_eq!(grace.state, SubscriptionState::InGrace);
    assert!(grace.grace_until.is_some_and(|g| g > Utc::now()));
    w.subscription_action("apple", &original, "grace_expired")
        .await;
    w.after_notifications(&mut seen, 1).await;
    let retry = w.subscription(Platform::Apple, &original).await;
    assert_eq!(retry.state, SubscriptionState::BillingRetry);
    assert_eq!(retry.access_until(), None);
    w.subscription_action("apple", &original, "recover").await;
    w.after_notifications(&mut seen, 1).await;
    assert_eq!(
        w.subscription(Platform::Apple, &original).await.state,
        SubscriptionState::Active
    );
    assert_eq!(w.periods_granted("player-a", "vip_monthly"), 3);

    // Out of order: auto-renew turned off then on, delivered newest first. The store's
    // current state wins, not the order of arrival.
    w.notification_mode(json!({ "duplicate": 2, "reverse_batches": 2 }))
        .await;
    w.subscription_action("apple", &original, "disable_auto_renew")
        .await;
    w.subscription_action("apple", &original, "enable_auto_renew")
        .await;
    w.after_notifications(&mut seen, 2).await;
    assert!(w.subscription(Platform::Apple, &original).await.auto_renew);
    w.notification_mode(json!({ "duplicate": 2 })).await;

    // Upgrade (DID_CHANGE_RENEWAL_PREF/UPGRADE): the yearly period is granted at once and the
    // subscription's product follows.
    w.subscription_action_with(
        "apple",
        &original,
        "upgrade",
        json!({ "product_id": "vip_yearly" }),
    )
    .await;
    w.after_notifications(&mut seen, 1).await;
    let upgraded = w.subscription(Platform::Apple, &original).await;
    assert_eq!(upgraded.product_id.as_str(), "vip_yearly");
    assert_eq!(w.periods_granted("player-a", "vip_yearly"), 1);

    // Refunded: the latest period is taken back and access ends.
    let latest_transaction = upgraded.latest_store_transaction_id.clone();
    w.store
        .post_json(
            &format!("/emulator/apple/transactions/{latest_transaction}/refund"),
            json!({}),
        )
        .await;
    w.after_notifications(&mut seen, 1).await;
    assert_eq!(
        w.order(upgraded.latest_order_id).await.state,
        OrderState::Refunded
    );
    assert_eq!(w.periods_granted("player-a", "vip_yearly"), 0);
    assert_eq!(
        w.subscription(Platform::Apple, &original).await.state,
        SubscriptionState::Revoked
    );
    w.sync_entitlements().await;
    let held = w.game.ledger().entitlement(&upgraded.id).unwrap();
    assert_eq!((held.state.as_str(), held.access_until_ms), ("revoked", 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apple_consumption_request_is_answered_from_configuration_and_our_delivery_record() {
    let w = World::start().await;
    w.notify_here("apple", 0).await;
    let (order, _) = w
        .open_order("player-c", "gems_100", pb::Platform::Apple)
        .await;
    let bought = w
        .store
        .post_json(
            "/emulator/apple/purchases",
            json!({ "bundle_id": APP, "product_id": "gems_100", "product_type": "Consumable",
                "environment": "Production", "app_account_token": order.to_string() }),
        )
        .await;
    let mut seen = 0;
    w.pushed(1).await;
    w.settle().await;
    seen += 1;
    assert_eq!(w.order(order).await.state, OrderState::Confirmed);
    let transaction = bought["transaction_id"].as_str().unwrap();
    w.store
        .post_json(
            &format!("/emulator/apple/transactions/{transaction}/consumption_request"),
            json!({}),
        )
        .await;
    w.pushed(seen + 1).await;
    w.settle().await;
    assert_eq!(
        w.count(
            "notifications",
            "notification_type = 'CONSUMPTION_REQUEST' \
             AND outcome LIKE 'consumption information sent (delivered: true%'"
        )
        .await,
        1
    );
    let stats = w.store.get_json("/emulator/stats").await;
    assert_eq!(stats["apple.consumption.put"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn huawei_subscription_from_notifications_renews_enters_grace_holds_and_is_refunded() {
    use iap_test_support::emulator::HUAWEI_APP;
    let w = World::start().await;
    w.notify_here("huawei", 2).await;
    let mut seen = 0;

    // INITIAL_BUY for an order whose client died: the Subscription service's signed answer
    // names the order (developerPayload); recorded and granted for its player.
    let (order, binding) = w
        .open_order("player-h", "vip_monthly", pb::Platform::Huawei)
        .await;
    let bought = w
        .store
        .post_json(
            "/emulator/huawei/purchases",
            json!({ "app_id": HUAWEI_APP, "product_id": "vip_monthly", "kind": 2,
                "developer_payload": binding.huawei_developer_payload }),
        )
        .await;
    w.after_notifications(&mut seen, 1).await;
    assert_eq!(w.order(order).await.state, OrderState::Confirmed);
    let token = bought["purchase_token"].as_str().unwrap().to_owned();
    let first = w
        .storage
        .find_subscription_by_token(Platform::Huawei, &token)
        .await
        .unwrap()
        .expect("recorded from the notification");
    assert_eq!(first.state, SubscriptionState::Active);
    let key = first.key.clone();

    // RENEWAL_RECURRING: one more period, once.
    w.subscription_action("huawei", &key, "renew").await;
    w.after_notifications(&mut seen, 1).await;
    assert_eq!(w.periods_granted("player-h", "vip_monthly"), 2);

    // Grace keeps access without a grant; hold ends it.
    w.subscription_action("huawei", &key, "enter_grace").await;
    w.after_notifications(&mut seen, 1).await;
    let grace = w.subscription(Platform::Huawei, &key).await;
    assert_eq!(grace.state, SubscriptionState::InGrace);
    assert!(grace.access_until().is_some_and(|t| t > Utc::now()));
    assert_eq!(w.periods_granted("player-h", "vip_monthly"), 2);
    w.subscription_action("huawei", &key, "hold").await;
    w.after_notifications(&mut seen, 1).await;
    assert_eq!(
        w.subscription(Platform::Huawei, &key).await.state,
        SubscriptionState::OnHold
    );

    // Recovered, then refunded by customer service (CANCEL): the period is taken back.
    w.subscription_action("huawei", &key, "recover").await;
    w.after_notifications(&mut seen, 1).await;
    assert_eq!(w.periods_granted("player-h", "vip_monthly"), 3);
    let recovered = w.subscription(Platform::Huawei, &key).await;
    w.store
        .post_json(
            &format!("/emulator/huawei/purchases/{token}/refund"),
            json!({}),
        )
        .await;
    w.after_notifications(&mut seen, 1).await;
    assert_eq!(
        w.order(recovered.latest_order_id).await.state,
        OrderState::Refunded
    );
    assert_eq!(w.periods_granted("player-h", "vip_monthly"), 2);
    assert_eq!(
        w.subscription(Platform::Huawei, &key).await.state,
        SubscriptionState::Revoked
    );
}

/// The scheduler's subscription job finds a renewal whose notification never came: when the
/// period is about to end it asks the store, grants the new period once, and replicas running
/// the job at the same time share the due subscriptions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_subscription_job_grants_a_renewal_whose_notification_was_lost() {
    use iap_domain::usecases::refresh_subscription::SubscriptionRefresh;
    use iap_domain::usecases::verify_purchase::PurchaseVerification;
    let w = World::start().await;
    // Bought and verified by the client; no notification target: the store's news is lost.
    let (order, binding) = w
        .open_order("player-j", "vip_monthly", pb::Platform::Google)
        .await;
    let bought = w
        .google_subscribe("vip_monthly", Some(&binding), None)
        .await;
    let token = bought["purchase_token"].as_str().unwrap().to_owned();
    w.verify_google_subscription("player-j", order, "vip_monthly", &bought)
        .await;
    w.sweep_until_quiet(10).await;
    let first = w.subscription(Platform::Google, &token).await;
    // The first check is planned shortly before the period ends.
    let planned = first.next_check_at.unwrap();
    let ends = first.expires_at.unwrap();
    assert!(planned < ends && planned > ends - chrono::Duration::hours(1));

    let purchases = std::sync::Arc::new(PurchaseVerification::new(
        std::sync::Arc::new(w.settings.catalog().unwrap()),
        w.settings.purchase_verifiers().unwrap(),
        w.storage.clone(),
    ));
    let job = SubscriptionRefresh::new(purchases, w.deliveries(), w.storage.clone());
    let hold = Duration::from_secs(30);
    // Not due yet: nothing is asked.
    assert_eq!(job.run_once(10, hold).await.unwrap().checked, 0);

    // The store renews; the notification is lost. Time passes to the planned check.
    w.subscription_action("google", &token, "renew").await;
    {
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
    // Two replicas at once: the subscription is checked by one of them.
    let (a, b) = tokio::join!(job.run_once(10, hold), job.run_once(10, hold));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.checked + b.checked, 1, "{a:?} {b:?}");
    assert_eq!(a.granted + b.granted, 1);
    w.sweep_until_quiet(10).await;
    assert_eq!(w.periods_granted("player-j", "vip_monthly"), 2);
    let renewed = w.subscription(Platform::Google, &token).await;
    assert!(renewed.expires_at.unwrap() > ends);
    assert!(
        renewed.next_check_at.unwrap() > renewed.expires_at.unwrap() - chrono::Duration::hours(1)
    );
    // Once checked, it is not due again until the new period nears its end.
    assert_eq!(job.run_once(10, hold).await.unwrap().checked, 0);
}
