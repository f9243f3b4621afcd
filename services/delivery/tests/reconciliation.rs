//! Reconciliation with the stores' histories (the server-side 补单), against PostgreSQL, Redis,
//! the emulator and the reference game server, with the stores' notifications never reaching
//! us: a paid App Store purchase whose client died is found in Apple's notification history and
//! granted once; refunds found in Google's voided purchases and Huawei's cancelled list are taken
//! back once. A second pass over the same window changes nothing, and of two replicas only one
//! works a window at a time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use iap_domain::reconciliation::JobCursors;
use iap_domain::usecases::reconcile::{ReconcilePolicy, Reconciliation};
use iap_domain::{OrderId, OrderState};
use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_storage::Storage;
use serde_json::json;

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

    async fn new_order(
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purchase_whose_client_died_and_whose_notification_was_lost_is_found_and_granted_once() {
    let w = World::start().await;
    let created = w
        .new_order("player-lost", "gems_100", pb::Platform::Apple)
        .await;
    let order = OrderId::parse(&created.order.unwrap().order_id).unwrap();
    // Paid at the App Store; the app died, and the notification never reached us (no target).
    w.store
        .post_json(
            "/emulator/apple/purchases",
            json!({ "bundle_id": APP, "product_id": "gems_100", "product_type": "Consumable",
                "environment": "Production", "app_account_token": order.to_string() }),
        )
        .await;
    assert_eq!(w.order(order).await.state, OrderState::Created);

    let job = w.reconciliation();
    let report = job.run_once().await.unwrap();
    assert_eq!(report.recovered_notifications, 1, "{report:?}");
    w.settle().await;
    assert_eq!(w.order(order).await.state, OrderState::Confirmed);
    assert_eq!(w.game.ledger().effects_for_order(&order.to_string()), 1);
    assert_eq!(
        w.count("orders", "binding_reason = 'purchase_carried_order_id'")
            .await,
        1
    );

    // The next pass re-reads the overlap: the inbox already has it, nothing is granted again.
    let again = job.run_once().await.unwrap();
    assert_eq!(again.windows, 3, "one window per store: {again:?}");
    assert_eq!(again.recovered_notifications, 0);
    w.settle().await;
    assert_eq!(w.game.ledger().stats().grant_effects, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refunds_found_in_google_and_huawei_histories_are_taken_back_once() {
    use iap_test_support::emulator::HUAWEI_APP;
    let w = World::start().await;

    // Google: verified and delivered by the client path, then refunded with no RTDN configured.
    let google_order = w.paid_order("player-refund", "gems_100").await;
    w.sweep_until_quiet(10).await;
    assert_eq!(w.order(google_order).await.state, OrderState::Confirmed);
    let token: String = {
        use sea_orm::{ConnectionTrait, Statement};
        let row = w
            .storage
            .connection()
            .query_one(Statement::from_string(
                w.storage.backend(),
                format!(
                    "SELECT purchase_token FROM store_transactions WHERE order_id = '{google_order}'"
                ),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get("", "purchase_token").unwrap()
    };
    w.store
        .post_json(
            &format!("/emulator/google/purchases/{token}/refund"),
            json!({}),
        )
        .await;

    // Huawei: granted through its ORDER notification, then refunded after the target is gone.
    w.notify_here("huawei", 0).await;
    let created = w
        .new_order("player-refund", "no_ads", pb::Platform::Huawei)
        .await;
    let huawei_order = OrderId::parse(&created.order.unwrap().order_id).unwrap();
    let bought = w
        .store
        .post_json(
            "/emulator/huawei/purchases",
            json!({ "app_id": HUAWEI_APP, "product_id": "no_ads", "kind": 1,
                "developer_payload": created.binding.unwrap().huawei_developer_payload }),
        )
        .await;
    w.pushed(1).await;
    w.settle().await;
    assert_eq!(w.order(huawei_order).await.state, OrderState::Confirmed);
    reqwest::Client::new()
        .delete(format!(
            "{}/emulator/notifications/targets/huawei",
            w.store.base
        ))
        .send()
        .await
        .unwrap();
    let huawei_token = bought["purchase_token"].as_str().unwrap();
    w.store
        .post_json(
            &format!("/emulator/huawei/purchases/{huawei_token}/refund"),
            json!({}),
        )
        .await;
    assert_eq!(w.order(huawei_order).await.state, OrderState::Confirmed);

    let job = w.reconciliation();
    let report = job.run_once().await.unwrap();
    assert_eq!(report.revoked, 2, "{report:?}");
    assert_eq!(w.order(google_order).await.state, OrderState::Refunded);
    assert_eq!(w.order(huawei_order).await.state, OrderState::Refunded);
    assert_eq!(w.game.ledger().balance(APP, "player-refund", "gems_100"), 0);
    assert_eq!(w.game.ledger().balance(APP, "player-refund", "no_ads"), 0);

    let again = job.run_once().await.unwrap();
    assert_eq!(again.revoked, 0, "already refunded: {again:?}");
    assert_eq!(w.game.ledger().stats().revoke_calls, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_replicas_one_takes_a_window_and_the_cursor_moves_only_forward() {
    let w = World::start_with_redis(None).await;
    let hold = Duration::from_secs(60);
    let first = w.storage.take_job("reconcile:test", hold).await.unwrap();
    assert_eq!(first, Some(None), "the first run has no cursor");
    assert_eq!(
        w.storage.take_job("reconcile:test", hold).await.unwrap(),
        None,
        "held by the first replica"
    );
    let end = chrono::Utc::now();
    w.storage.advance_job("reconcile:test", end).await.unwrap();
    let next = w.storage.take_job("reconcile:test", hold).await.unwrap();
    let cursor = next.flatten().unwrap();
    assert!((cursor - end).num_milliseconds().abs() <= 1);
    // Two replicas racing for a released job: exactly one wins.
    w.storage.advance_job("reconcile:test", end).await.unwrap();
    let (a, b) = tokio::join!(
        w.storage.take_job("reconcile:test", hold),
        w.storage.take_job("reconcile:test", hold)
    );
    let winners = [a.unwrap(), b.unwrap()]
        .iter()
        .filter(|taken| taken.is_some())
        .count();
    assert_eq!(winners, 1);
}
