//! Delivery against real PostgreSQL, Redis, the emulator and the reference game server: one grant
//! effect per paid order whatever the number of callers, store confirmation after the grant,
//! backoff then DEAD when the game server keeps failing, lost acknowledgements retried under the
//! same grant id, revocations applied once, and Redis being optional for correctness.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use iap_domain::delivery::{RevokeReason, grant_id};
use iap_domain::{DeliveryState, OrderState};
use iap_proto::v1 as pb;
use iap_proto::v1::delivery_service_client::DeliveryServiceClient;
use tonic::Code;

use common::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paid_order_is_granted_once_then_confirmed_at_the_store() {
    let w = World::start().await;
    let order_id = w.paid_order("player-1", "gems_100").await;
    let mut client = DeliveryServiceClient::new(w.delivery_channel.clone());

    let reply = client
        .deliver(pb::DeliverRequest {
            order_id: order_id.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.order.unwrap().state(), pb::OrderState::Confirmed);
    let delivery = reply.delivery.unwrap();
    assert_eq!(delivery.state(), pb::DeliveryState::Confirmed);
    assert_eq!(delivery.grant_id, grant_id(order_id));
    assert_eq!((delivery.grant_calls, delivery.confirm_calls), (1, 1));
    assert!(!delivery.game_ack_reference.is_empty());
    assert_eq!(w.game.ledger().effects_for_order(&order_id.to_string()), 1);
    assert_eq!(
        w.game.ledger().balance(common::APP, "player-1", "gems_100"),
        1
    );

    // Again: nothing is called twice.
    let again = client
        .deliver(pb::DeliverRequest {
            order_id: order_id.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.order.unwrap().state(), pb::OrderState::Confirmed);
    assert_eq!(w.game.ledger().stats().grant_calls, 1);
    let fetched = client
        .get_delivery(pb::GetDeliveryRequest {
            order_id: order_id.to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(fetched.confirm_calls, 1, "the store was confirmed once");
    assert_eq!(
        w.count("outbox", "kind = 'order.paid' AND published_at IS NULL")
            .await,
        0,
        "the paid event is consumed by the grant"
    );
    assert_eq!(w.count("outbox", "kind = 'order.confirmed'").await, 1);

    // Bad input is refused with a reason, and nothing changes.
    let status = client
        .deliver(pb::DeliverRequest {
            order_id: "not-an-id".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = client
        .deliver(pb::DeliverRequest {
            order_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

/// 60 concurrent deliveries of each order — client retries over gRPC, sweeper passes and
/// in-process fast-path calls — give one grant effect per order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_duplicate_storm_grants_each_order_once() {
    let w = World::start().await;
    let mut orders = Vec::new();
    for i in 0..5 {
        orders.push(w.paid_order(&format!("storm-{i}"), "gems_100").await);
    }
    let sweeper = w.delivery.sweeper(&w.settings);
    let mut tasks = tokio::task::JoinSet::new();
    for order in &orders {
        for caller in 0..60 {
            let order = *order;
            match caller % 3 {
                0 => {
                    let mut client = DeliveryServiceClient::new(w.delivery_channel.clone());
                    tasks.spawn(async move {
                        client
                            .deliver(pb::DeliverRequest {
                                order_id: order.to_string(),
                            })
                            .await
                            .map(|_| ())
                            .map_err(|s| s.to_string())
                    });
                }
                1 => {
                    let sweeper = sweeper.clone();
                    tasks.spawn(async move {
                        sweeper
                            .run_once()
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    });
                }
                _ => {
                    let deliveries = w.deliveries();
                    tasks.spawn(async move {
                        deliveries
                            .deliver(order)
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    });
                }
            }
        }
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().expect("no caller fails");
    }
    w.sweep_until_quiet(10).await;
    for order in &orders {
        assert_eq!(
            w.game.ledger().effects_for_order(&order.to_string()),
            1,
            "one grant effect for {order}"
        );
        assert_eq!(w.order(*order).await.state, OrderState::Confirmed);
    }
    let stats = w.game.ledger().stats();
    assert_eq!(stats.grant_effects, 5);
    println!(
        "duplicate storm: 300 deliveries of 5 orders → {} GrantItems calls, {} effects, {} duplicate calls",
        stats.grant_calls, stats.grant_effects, stats.duplicate_grant_calls
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_game_server_gets_backoff_then_the_order_is_dead() {
    let w = World::start().await;
    let order = w.paid_order("player-1", "gems_100").await;
    w.game.faults().fail_next_grants(1_000, Code::Unavailable);

    let outcome = w.deliveries().deliver(order).await.unwrap();
    assert_eq!(outcome.order.state, OrderState::Delivering);
    assert!(outcome.order.last_error.is_some());
    assert!(
        outcome.order.next_attempt_at.unwrap() > chrono::Utc::now() - chrono::Duration::seconds(1)
    );
    let record = outcome.delivery.unwrap();
    assert_eq!(record.state, DeliveryState::Granting);
    assert_eq!(record.grant_calls, 2, "two calls per attempt");

    // The sweeper retries after each backoff until max_attempts (3), then gives up: DEAD.
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.order(order).await.state != OrderState::Dead {
        assert!(Instant::now() < deadline, "never became DEAD");
        w.delivery.sweeper(&w.settings).run_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(w.game.ledger().effects_for_order(&order.to_string()), 0);
    assert_eq!(w.order(order).await.attempt, 3);
    assert_eq!(w.count("outbox", "kind = 'order.dead'").await, 1);
    let record = w.deliveries().delivery(order).await.unwrap().unwrap();
    assert_eq!(record.state, DeliveryState::Dead);
    assert_eq!(record.grant_calls, 6);
    // A dead order is not swept again; Deliver leaves it alone until an operator acts.
    w.game.faults().clear();
    let outcome = w.deliveries().deliver(order).await.unwrap();
    assert_eq!(outcome.order.state, OrderState::Dead);
    assert_eq!(w.game.ledger().stats().grant_effects, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_acknowledgement_is_retried_with_the_same_grant_id() {
    let w = World::start().await;
    let order = w.paid_order("player-1", "gems_100").await;
    w.game.faults().lose_next_grant_acks(1, Code::Unavailable);
    let outcome = w.deliveries().deliver(order).await.unwrap();
    assert_eq!(outcome.order.state, OrderState::Confirmed);
    let stats = w.game.ledger().stats();
    assert_eq!(
        (
            stats.grant_calls,
            stats.grant_effects,
            stats.duplicate_grant_calls
        ),
        (2, 1, 1),
        "the retry found the first grant"
    );
    assert_eq!(outcome.delivery.unwrap().grant_calls, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocations_take_items_back_once() {
    let w = World::start().await;
    let granted = w.paid_order("player-1", "gems_100").await;
    w.deliveries().deliver(granted).await.unwrap();
    assert_eq!(
        w.game.ledger().balance(common::APP, "player-1", "gems_100"),
        1
    );

    let revoked = w
        .deliveries()
        .revoke(granted, RevokeReason::Refunded)
        .await
        .unwrap();
    assert_eq!(revoked.state, OrderState::Refunded);
    assert_eq!(
        w.game.ledger().balance(common::APP, "player-1", "gems_100"),
        0
    );
    let record = w.deliveries().delivery(granted).await.unwrap().unwrap();
    assert_eq!(record.state, DeliveryState::Revoked);
    // Again: settled, no second RevokeItems.
    let again = w
        .deliveries()
        .revoke(granted, RevokeReason::Refunded)
        .await
        .unwrap();
    assert_eq!(again.state, OrderState::Refunded);
    assert_eq!(w.game.ledger().stats().revoke_calls, 1);

    // Refunded before any grant: marked only, and never granted afterwards.
    let never = w.paid_order("player-2", "gems_100").await;
    let revoked = w
        .deliveries()
        .revoke(never, RevokeReason::Revoked)
        .await
        .unwrap();
    assert_eq!(revoked.state, OrderState::Revoked);
    let outcome = w.deliveries().deliver(never).await.unwrap();
    assert_eq!(outcome.order.state, OrderState::Revoked);
    assert_eq!(w.game.ledger().effects_for_order(&never.to_string()), 0);
    assert_eq!(w.game.ledger().stats().revoke_calls, 1);
}

/// Redis unreachable from the start: every delivery goes on the database fence alone, and a
/// storm still grants once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_redis_the_database_fence_alone_keeps_grants_single() {
    let w = World::start_with_redis(Some("redis://127.0.0.1:1")).await;
    let order = w.paid_order("player-1", "gems_100").await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let deliveries = w.deliveries();
        tasks.spawn(async move { deliveries.deliver(order).await.map(|o| o.order.state) });
    }
    let mut states = HashMap::new();
    while let Some(result) = tasks.join_next().await {
        *states.entry(result.unwrap().unwrap()).or_insert(0) += 1;
    }
    w.sweep_until_quiet(10).await;
    assert_eq!(
        w.order(order).await.state,
        OrderState::Confirmed,
        "{states:?}"
    );
    assert_eq!(w.game.ledger().effects_for_order(&order.to_string()), 1);
}

/// End-to-end grants per second on this machine: paid orders delivered and confirmed by the
/// sweeper (16 at a time), through PostgreSQL, Redis, the game server and the emulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grant_throughput_is_measured_end_to_end() {
    let w = World::start().await;
    const ORDERS: usize = 200;
    for i in 0..ORDERS {
        w.paid_order(&format!("load-{}", i % 40), "gems_100").await;
    }
    let sweeper = iap_app::OrderSweep::new(
        w.storage.clone(),
        w.deliveries(),
        ORDERS as u32,
        16,
        Duration::from_secs(60),
    );
    let started = Instant::now();
    let report = sweeper.run_once().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(report.reserved, ORDERS, "{report:?}");
    assert_eq!(report.delivered, ORDERS, "{report:?}");
    assert_eq!(
        w.count("orders", "state = 'CONFIRMED'").await,
        ORDERS as i64,
        "every order granted and confirmed in the one pass"
    );
    assert_eq!(w.game.ledger().stats().grant_effects, ORDERS as u64);
    println!(
        "grant throughput: {ORDERS} orders granted and confirmed in {:.2} s = {:.0} orders/s",
        elapsed.as_secs_f64(),
        ORDERS as f64 / elapsed.as_secs_f64()
    );
}
