//! The composition root against a real PostgreSQL database and Redis: each set of roles gets the
//! gRPC services, ports and jobs it should, the order sweep runs once per process whatever the
//! roles, and the one shutdown stops servers and jobs together.

use std::time::Duration;

use iap_app::{App, BoundListeners, Roles};
use iap_runtime::{Settings, Shutdown};
use iap_test_support::{TestDatabase, TestRedis};
use tokio::net::TcpListener;

async fn settings(db: &TestDatabase, redis: &TestRedis, extra: &str) -> Settings {
    let toml = format!(
        r#"
        [database]
        url = "{db}"
        migrate_on_start = true
        [redis]
        url = "{redis_url}"
        key_prefix = "{prefix}"
        [delivery]
        game_server_url = "http://127.0.0.1:1"
        {extra}
        "#,
        db = db.url(),
        redis_url = redis.url,
        prefix = redis.prefix,
    );
    Settings::from_toml(&toml).expect("test settings")
}

async fn on_port_zero() -> BoundListeners {
    let bind = || TcpListener::bind("127.0.0.1:0");
    BoundListeners {
        grpc: Some(bind().await.unwrap()),
        http: Some(bind().await.unwrap()),
        metrics: Some(bind().await.unwrap()),
    }
}

#[tokio::test]
async fn each_role_gets_its_jobs_and_the_order_sweep_runs_once_per_process() {
    let (db, redis) = (TestDatabase::create().await, TestRedis::new());
    let delivery_url = r#"
        [verifier]
        delivery_url = "http://127.0.0.1:1"
        [scheduler]
        delivery_url = "http://127.0.0.1:1"
    "#;
    let settings = settings(&db, &redis, delivery_url).await;
    let cases = [
        (Roles::VERIFIER, vec![], true),
        (
            Roles::DELIVERY,
            vec!["order_sweep", "entitlement_sync", "notification_inbox"],
            true,
        ),
        (
            Roles::SCHEDULER,
            vec![
                "gauges",
                "order_sweep",
                "subscription_checks",
                "reconciliation",
            ],
            false,
        ),
        (
            Roles::ALL,
            vec![
                "order_sweep",
                "entitlement_sync",
                "notification_inbox",
                "gauges",
                "subscription_checks",
                "reconciliation",
            ],
            true,
        ),
    ];
    for (roles, jobs, serves_grpc) in cases {
        let app = App::build_on(&settings, roles, on_port_zero().await)
            .await
            .unwrap_or_else(|e| panic!("{roles:?}: {e}"));
        assert_eq!(app.job_names(), jobs, "{roles:?}");
        assert_eq!(app.addresses().grpc.is_some(), serves_grpc, "{roles:?}");
        assert_eq!(
            app.addresses().metrics.is_some(),
            roles.verifier,
            "{roles:?}: only the verifier keeps /metrics off its HTTP port"
        );
    }
}

#[tokio::test]
async fn without_a_delivery_address_the_scheduler_runs_only_the_gauges() {
    let (db, redis) = (TestDatabase::create().await, TestRedis::new());
    let settings = settings(&db, &redis, "").await;
    let app = App::build_on(&settings, Roles::SCHEDULER, on_port_zero().await)
        .await
        .unwrap();
    assert_eq!(app.job_names(), ["gauges"]);
}

#[tokio::test]
async fn every_role_in_one_process_is_ready_and_stops_on_the_one_shutdown() {
    let (db, redis) = (TestDatabase::create().await, TestRedis::new());
    let settings = settings(&db, &redis, "").await;
    let app = App::build_on(&settings, Roles::ALL, on_port_zero().await)
        .await
        .unwrap();
    let (http, app_metrics) = (app.addresses().http, app.addresses().metrics);
    let shutdown = Shutdown::new();
    let running = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let ready = async {
        loop {
            if let Ok(response) = reqwest::get(format!("http://{http}/readyz")).await {
                let status = response.status();
                break format!("{status} {}", response.text().await.unwrap());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let body = tokio::time::timeout(Duration::from_secs(10), ready)
        .await
        .expect("the HTTP port answers");
    assert!(
        body.starts_with("200") && body.contains("database ok; lock"),
        "the delivery role's lock is reported: {body}"
    );
    let on_http = reqwest::get(format!("http://{http}/metrics"))
        .await
        .unwrap();
    assert_eq!(
        on_http.status(),
        404,
        "no /metrics on the port the stores reach"
    );
    let metrics = app_metrics.expect("the verifier role's metrics port");
    let on_metrics = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap();
    assert_eq!(on_metrics.status(), 200);
    shutdown.trigger();
    let stopped = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("servers and jobs stop on the one shutdown");
    stopped.unwrap().expect("a clean stop");
}
