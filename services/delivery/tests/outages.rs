//! Redis killed and PostgreSQL restarted in the middle of a delivery run, on servers this test
//! starts for itself: while the database is down, calls answer UNAVAILABLE and nothing is
//! half-written; without Redis, delivery continues on the database fence; when the database is
//! back every paid order ends CONFIRMED with exactly one grant effect.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use iap_domain::OrderState;
use iap_domain::usecases::deliver::DeliverError;
use iap_runtime::Shutdown;
use iap_test_support::private::{PrivatePostgres, PrivateRedis};

use common::World;

const ORDERS: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_and_postgres_restarted_mid_run_lose_and_double_nothing() {
    let postgres = PrivatePostgres::start();
    let mut redis = PrivateRedis::start();
    let w = World::start_on(postgres.url(), None, Some(&redis.url())).await;
    let mut orders = Vec::new();
    for i in 0..ORDERS {
        orders.push(w.paid_order(&format!("outage-{i}"), "gems_100").await);
    }
    // Grants take a while, so some are in flight when the servers go away.
    w.game.faults().set_reply_delay(Duration::from_millis(200));

    // Workers: a sweeper loop, plus clients retrying Deliver for every order.
    let shutdown = Shutdown::new();
    let sweeper = tokio::spawn(iap_runtime::jobs::run(
        w.delivery.sweeper(&w.settings),
        Duration::from_millis(50),
        shutdown.clone(),
    ));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for worker in 0..4 {
        let (deliveries, orders) = (w.deliveries(), orders.clone());
        let (unavailable, stop) = (unavailable.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                for order in orders.iter().skip(worker).step_by(4) {
                    if let Err(DeliverError::Storage(_)) = deliveries.deliver(*order).await {
                        unavailable.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(150)).await;
    redis.stop_server();
    let granted_before_redis_died = w.game.ledger().stats().grant_effects;
    tokio::time::sleep(Duration::from_millis(150)).await;
    postgres.stop_server();
    let granted_before_postgres_died = w.game.ledger().stats().grant_effects;
    assert!(
        granted_before_postgres_died < ORDERS as u64,
        "the outages must hit a run in progress"
    );
    // Longer than the pool's 5 s acquire timeout, so waiting callers get their answer.
    tokio::time::sleep(Duration::from_secs(7)).await;
    postgres.start_server();

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut settled = 0;
        for order in &orders {
            use iap_domain::ports::OrderRepository;
            if let Ok(Some(o)) = w.storage.get_order(*order).await
                && o.state == OrderState::Confirmed
            {
                settled += 1;
            }
        }
        if settled == ORDERS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {settled}/{ORDERS} confirmed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    shutdown.trigger();
    for client in clients {
        client.await.unwrap();
    }
    sweeper.await.unwrap();

    for order in &orders {
        assert_eq!(
            w.game.ledger().effects_for_order(&order.to_string()),
            1,
            "order {order}"
        );
    }
    let stats = w.game.ledger().stats();
    assert_eq!(stats.grant_effects, ORDERS as u64);
    assert!(
        unavailable.load(Ordering::Relaxed) > 0,
        "the database outage was seen as unavailability"
    );
    assert_eq!(
        w.count("deliveries", "state <> 'CONFIRMED'").await,
        0,
        "no half-written delivery"
    );
    println!(
        "outages: {ORDERS} orders ({granted_before_redis_died} granted when Redis died, {granted_before_postgres_died} when PostgreSQL stopped), {} GrantItems calls, {} duplicate calls, {} calls refused while PostgreSQL was down",
        stats.grant_calls,
        stats.duplicate_grant_calls,
        unavailable.load(Ordering::Relaxed)
    );
}
