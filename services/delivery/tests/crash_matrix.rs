//! The crash matrix (built only with `--features failpoints`): a fault at every step boundary —
//! after the verification commit, after the claim, after the grant call, after the DELIVERED
//! commit, after the store confirmation — as an error return, a panic, and (for the delivery
//! steps) the process killed on the spot; then recovery by the sweeper. Every paid order must end
//! CONFIRMED with exactly one grant effect in the game's ledger. The duplicate grant *calls* the
//! faults cause (answered `duplicate = true` by the game) are counted and printed.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use iap_domain::fail;
use iap_domain::{OrderId, OrderState};
use iap_proto::v1 as pb;
use iap_proto::v1::delivery_service_client::DeliveryServiceClient;
use iap_test_support::process::{RunningBinary, json_field};

use common::World;

/// Step boundaries inside delivery.
const DELIVERY_POINTS: [&str; 4] = [
    "deliver::after_claim",
    "deliver::after_grant",
    "deliver::after_delivered",
    "deliver::after_confirm",
];

/// Waits until the sweeper has brought `order` to CONFIRMED (leases and lock TTLs of the
/// crashed attempt must run out first).
async fn recovered(w: &World, order: OrderId) {
    let sweeper = w.delivery.sweeper(&w.settings);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = w.order(order).await.state;
        if state == OrderState::Confirmed {
            return;
        }
        assert!(Instant::now() < deadline, "order {order} stuck in {state}");
        sweeper.run_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_granted_once(w: &World, order: OrderId, case: &str) {
    assert_eq!(
        w.game.ledger().effects_for_order(&order.to_string()),
        1,
        "{case}: exactly one grant effect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_and_panics_at_every_step_boundary_then_recovery() {
    let w = World::start().await;
    let mut cases = 0;
    for point in DELIVERY_POINTS {
        for action in ["return(error)", "panic"] {
            let case = format!("{point} {action}");
            let order = w.paid_order(&format!("crash-{cases}"), "gems_100").await;
            fail::cfg(point, &format!("1*{action}")).unwrap();
            let deliveries = w.deliveries();
            let first = tokio::spawn(async move { deliveries.deliver(order).await }).await;
            fail::remove(point);
            match action {
                "panic" => assert!(first.unwrap_err().is_panic(), "{case}"),
                _ => assert!(first.unwrap().is_err(), "{case}: the step failed"),
            }
            recovered(&w, order).await;
            assert_granted_once(&w, order, &case);
            cases += 1;
        }
    }

    // After the verification commit: the client sees an error, the payment is committed; its
    // retry gets the recorded order, and the sweeper delivers it (no fast path in this world).
    for action in ["return(error)", "panic"] {
        let case = format!("verify::after_commit {action}");
        let request = w.purchase(&format!("crash-{cases}"), "gems_100").await;
        fail::cfg("verify::after_commit", &format!("1*{action}")).unwrap();
        let first = w.verify(request.clone()).await;
        fail::remove("verify::after_commit");
        assert!(first.is_err(), "{case}: the call failed after its commit");
        let retry = w.verify(request).await.unwrap();
        assert!(retry.already_recorded, "{case}: the commit had happened");
        let order = OrderId::parse(&retry.order.unwrap().order_id).unwrap();
        recovered(&w, order).await;
        assert_granted_once(&w, order, &case);
        cases += 1;
    }

    let stats = w.game.ledger().stats();
    assert_eq!(stats.grant_effects, cases);
    println!(
        "crash matrix (error, panic): {cases} cases, {} GrantItems calls, {} effects, {} duplicate calls",
        stats.grant_calls, stats.grant_effects, stats.duplicate_grant_calls
    );
}

/// Starts the real `iap-delivery` binary on this world's database, game server and emulator,
/// with `FAILPOINTS` when given; returns it and its gRPC address.
fn start_delivery(w: &World, failpoint: Option<&str>, sweep_ms: u64) -> (RunningBinary, String) {
    let dir = std::env::temp_dir().join(format!("iap-crash-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("iap.toml");
    std::fs::write(&config, &w.toml).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_iap-delivery"));
    command
        .arg("--config")
        .arg(&config)
        .env("IAP_DATABASE_URL", &w.db_url)
        .env("IAP_DELIVERY_GRPC_LISTEN", "127.0.0.1:0")
        .env("IAP_DELIVERY_HTTP_LISTEN", "127.0.0.1:0")
        .env("IAP_DELIVERY_SWEEP_INTERVAL_MS", sweep_ms.to_string())
        .env("IAP_TELEMETRY_LOG_FORMAT", "json")
        .current_dir(&dir);
    match failpoint {
        Some(point) => command.env("FAILPOINTS", format!("{point}=return(abort)")),
        None => command.env_remove("FAILPOINTS"),
    };
    let mut process = RunningBinary::spawn(command);
    let line = process.wait_for_line("iap-delivery listening", Duration::from_secs(30));
    // The settings were read at start; nothing of the run stays behind in the temp directory.
    let _ = std::fs::remove_dir_all(&dir);
    let grpc = json_field(&line, "grpc").expect("grpc address logged");
    (process, grpc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_process_killed_at_every_step_boundary_then_restarted() {
    let w = World::start().await;
    for (i, point) in DELIVERY_POINTS.into_iter().enumerate() {
        let order = w.paid_order(&format!("kill-{i}"), "gems_100").await;
        let (mut doomed, grpc) = start_delivery(&w, Some(point), 0);
        let channel = common::connect(grpc.parse().unwrap()).await;
        let reply = DeliveryServiceClient::new(channel)
            .deliver(pb::DeliverRequest {
                order_id: order.to_string(),
            })
            .await;
        assert!(reply.is_err(), "{point}: the process died mid-call");
        let status = doomed.wait_exit(Duration::from_secs(10));
        assert!(!status.success(), "{point}: killed, not exited: {status:?}");

        // A fresh process with its sweeper on finishes the work.
        let (survivor, _) = start_delivery(&w, None, 100);
        let deadline = Instant::now() + Duration::from_secs(30);
        while w.order(order).await.state != OrderState::Confirmed {
            assert!(
                Instant::now() < deadline,
                "{point}: not recovered: {:?}",
                w.order(order).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (exit, _) = survivor.terminate();
        assert!(exit.success());
        assert_granted_once(&w, order, point);
    }
    let stats = w.game.ledger().stats();
    assert_eq!(stats.grant_effects, DELIVERY_POINTS.len() as u64);
    println!(
        "crash matrix (process killed): {} cases, {} GrantItems calls, {} effects, {} duplicate calls",
        DELIVERY_POINTS.len(),
        stats.grant_calls,
        stats.grant_effects,
        stats.duplicate_grant_calls
    );
}
