//! The notification inbox's claim: short (`delivery.notification_lease_ms`), so a killed
//! worker's notifications are taken again soon, and renewed every third of it while the worker
//! is busy, so a slow store call does not hand the notification to a second worker meanwhile.

mod common;

use std::time::Duration;

use serde_json::json;

use common::{APP, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_busy_worker_keeps_its_claim_past_the_lease() {
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
    // A purchase the client never reports: only the notification can grant it.
    w.purchase("lease-player", "gems_100").await;
    w.pushed(1).await;

    let mut settings = w.settings.clone();
    settings.delivery.notification_lease_ms = 1_000;
    let handler = || {
        iap_app::delivery::notification_handler(
            &w.delivery,
            &settings,
            &settings.store_clients().unwrap(),
            None,
        )
        .unwrap()
    };
    let (first, second) = (handler(), handler());

    // Google answers the first worker's purchase lookup after three leases.
    w.store
        .post_json(
            "/emulator/faults",
            json!({ "path_prefix": "/google/androidpublisher", "kind": "latency",
                    "latency_ms": 3_000, "count": 1 }),
        )
        .await;
    let busy = tokio::spawn(async move { first.run_once(10).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let meanwhile = second.run_once(10).await.unwrap();
    assert_eq!(
        (meanwhile.processed, meanwhile.retried, meanwhile.rejected),
        (0, 0, 0),
        "the busy worker's claim was renewed: nobody else takes the notification"
    );
    let report = busy.await.unwrap();
    assert_eq!(report.processed, 1);
    assert_eq!(w.game.ledger().balance(APP, "lease-player", "gems_100"), 1);
    assert_eq!(w.game.ledger().stats().grant_effects, 1);
}

#[test]
fn the_default_lease_is_short() {
    let settings = iap_runtime::Settings::from_toml("").unwrap();
    assert_eq!(settings.delivery.notification_lease_ms, 15_000);
    assert_eq!(
        settings.delivery.inbox_policy().lease,
        Duration::from_secs(15)
    );
}
