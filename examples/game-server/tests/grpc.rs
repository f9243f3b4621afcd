//! The game server through real gRPC on 127.0.0.1:0: idempotency, conflicts, validation,
//! concurrency, durability across restarts, revokes and the fault knobs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use iap_game_server::{GameServerHandle, Ledger, OpenError, spawn};
use iap_proto::v1::game_server_service_client::GameServerServiceClient;
use iap_proto::v1::{GrantItemsRequest, RevokeItemsRequest};
use tonic::transport::Channel;
use tonic::{Code, Request};

const APP: &str = "app-1";

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn client(server: &GameServerHandle) -> GameServerServiceClient<Channel> {
    GameServerServiceClient::connect(server.endpoint())
        .await
        .expect("connect to the game server")
}

fn grant(grant_id: &str, order_id: &str, user_id: &str, quantity: i32) -> GrantItemsRequest {
    GrantItemsRequest {
        grant_id: grant_id.to_owned(),
        order_id: order_id.to_owned(),
        app_id: APP.to_owned(),
        user_id: user_id.to_owned(),
        product_id: "gems_100".to_owned(),
        quantity,
        ..GrantItemsRequest::default()
    }
}

fn revoke(revoke_id: &str, grant_id: &str, quantity: i32) -> RevokeItemsRequest {
    RevokeItemsRequest {
        revoke_id: revoke_id.to_owned(),
        grant_id: grant_id.to_owned(),
        quantity,
        ..RevokeItemsRequest::default()
    }
}

/// A directory removed when the test ends, named uniquely per process and test.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "iap-game-server-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn spawn_on_file(path: &Path) -> GameServerHandle {
    let ledger = Ledger::open(path).expect("open ledger");
    spawn(any_port(), ledger).await.expect("spawn")
}

#[tokio::test]
async fn a_repeated_grant_returns_the_first_reference_and_applies_once() {
    let server = spawn(any_port(), Ledger::in_memory()).await.unwrap();
    let mut client = client(&server).await;

    let first = client
        .grant_items(grant("g-1", "o-1", "u-1", 3))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.duplicate);
    assert!(!first.reference.is_empty());

    let again = client
        .grant_items(grant("g-1", "o-1", "u-1", 3))
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(again.reference, first.reference);

    let ledger = server.ledger();
    assert_eq!(ledger.effects_for_order("o-1"), 1);
    assert_eq!(ledger.balance(APP, "u-1", "gems_100"), 3);
    let stats = ledger.stats();
    assert_eq!(stats.grant_calls, 2);
    assert_eq!(stats.grant_effects, 1);
    assert_eq!(stats.duplicate_grant_calls, 1);
    assert_eq!(ledger.grants().len(), 1);
    assert_eq!(ledger.grants()[0].reference, first.reference);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn reusing_a_grant_id_for_other_content_is_a_failed_precondition() {
    let server = spawn(any_port(), Ledger::in_memory()).await.unwrap();
    let mut client = client(&server).await;
    client
        .grant_items(grant("g-1", "o-1", "u-1", 1))
        .await
        .unwrap();

    let mut other_product = grant("g-1", "o-1", "u-1", 1);
    other_product.product_id = "gems_500".to_owned();
    let cases = [
        ("order_id", grant("g-1", "o-2", "u-1", 1)),
        ("user_id", grant("g-1", "o-1", "u-2", 1)),
        ("product_id", other_product),
        ("quantity", grant("g-1", "o-1", "u-1", 2)),
    ];
    for (field, request) in cases {
        let status = client.grant_items(request).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{field}");
        assert!(status.message().contains(field), "{field}: {status:?}");
    }
    assert_eq!(server.ledger().grants().len(), 1);
    assert_eq!(server.ledger().balance(APP, "u-1", "gems_100"), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn invalid_grants_are_refused_with_the_field_named() {
    let server = spawn(any_port(), Ledger::in_memory()).await.unwrap();
    let mut client = client(&server).await;

    let cases = [
        ("grant_id", grant("", "o-1", "u-1", 1)),
        ("order_id", grant("g-1", "", "u-1", 1)),
        ("user_id", grant("g-1", "o-1", " ", 1)),
        (
            "product_id",
            GrantItemsRequest {
                product_id: String::new(),
                ..grant("g-1", "o-1", "u-1", 1)
            },
        ),
        ("quantity", grant("g-1", "o-1", "u-1", 0)),
        ("quantity", grant("g-1", "o-1", "u-1", -5)),
    ];
    for (field, request) in cases {
        let status = client.grant_items(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert!(status.message().starts_with(field), "{field}: {status:?}");
    }
    let status = client.revoke_items(revoke("", "g-1", 1)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = client.revoke_items(revoke("r-1", "", 1)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = client
        .revoke_items(revoke("r-1", "g-1", -1))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // A refused request does not burn the key: the valid grant still applies.
    let ok = client
        .grant_items(grant("g-1", "o-1", "u-1", 1))
        .await
        .unwrap()
        .into_inner();
    assert!(!ok.duplicate);
    assert_eq!(server.ledger().stats().grant_effects, 1);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_identical_grants_apply_once() {
    let server = spawn(any_port(), Ledger::in_memory()).await.unwrap();
    let client = client(&server).await;

    let calls = (0..64).map(|_| {
        let mut client = client.clone();
        tokio::spawn(async move {
            client
                .grant_items(grant("g-race", "o-race", "u-1", 10))
                .await
                .map(tonic::Response::into_inner)
        })
    });
    let replies: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|joined| joined.expect("task").expect("grant"))
        .collect();

    let firsts = replies.iter().filter(|r| !r.duplicate).count();
    assert_eq!(firsts, 1);
    assert!(replies.iter().all(|r| r.reference == replies[0].reference));
    let ledger = server.ledger();
    assert_eq!(ledger.effects_for_order("o-race"), 1);
    assert_eq!(ledger.balance(APP, "u-1", "gems_100"), 10);
    let stats = ledger.stats();
    assert_eq!(stats.grant_calls, 64);
    assert_eq!(stats.grant_effects, 1);
    assert_eq!(stats.duplicate_grant_calls, 63);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_file_ledger_remembers_grants_and_balances_across_restarts() {
    let dir = TempDir::new();
    let path = dir.file("ledger.jsonl");

    let server = spawn_on_file(&path).await;
    let first = client(&server)
        .await
        .grant_items(grant("g-1", "o-1", "u-1", 7))
        .await
        .unwrap()
        .into_inner();
    client(&server)
        .await
        .revoke_items(revoke("r-1", "g-1", 2))
        .await
        .unwrap();
    server.shutdown().await.unwrap();

    let server = spawn_on_file(&path).await;
    let mut client = client(&server).await;
    let again = client
        .grant_items(grant("g-1", "o-1", "u-1", 7))
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(again.reference, first.reference);
    let revoke_again = client
        .revoke_items(revoke("r-1", "g-1", 2))
        .await
        .unwrap()
        .into_inner();
    assert!(revoke_again.duplicate);
    let ledger = server.ledger();
    assert_eq!(ledger.balance(APP, "u-1", "gems_100"), 5);
    assert_eq!(ledger.effects_for_order("o-1"), 1);
    assert_eq!(ledger.stats().grant_effects, 0);

    // New references keep counting after the replayed records.
    let next = client
        .grant_items(grant("g-2", "o-2", "u-1", 1))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(next.reference, first.reference);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_torn_last_line_is_dropped_and_truncated_on_open() {
    let dir = TempDir::new();
    let path = dir.file("ledger.jsonl");

    let server = spawn_on_file(&path).await;
    client(&server)
        .await
        .grant_items(grant("g-1", "o-1", "u-1", 4))
        .await
        .unwrap();
    server.shutdown().await.unwrap();
    let intact_len = std::fs::metadata(&path).unwrap().len();

    // A crash in the middle of writing the second record.
    let mut torn = std::fs::read(&path).unwrap();
    torn.extend_from_slice(
        br#"{"kind":"grant","seq":2,"reference":"g-00000002","grant_id":"g-2","ord"#,
    );
    std::fs::write(&path, &torn).unwrap();

    let server = spawn_on_file(&path).await;
    assert_eq!(std::fs::metadata(&path).unwrap().len(), intact_len);
    let ledger = server.ledger();
    assert_eq!(ledger.grants().len(), 1);
    assert_eq!(ledger.balance(APP, "u-1", "gems_100"), 4);

    // The torn grant was never acknowledged, so its retry applies it for the first time.
    let retried = client(&server)
        .await
        .grant_items(grant("g-2", "o-2", "u-1", 1))
        .await
        .unwrap()
        .into_inner();
    assert!(!retried.duplicate);
    server.shutdown().await.unwrap();

    let reopened = Ledger::open(&path).expect("a repaired ledger reopens cleanly");
    assert_eq!(reopened.grants().len(), 2);
    assert_eq!(reopened.balance(APP, "u-1", "gems_100"), 5);
}

#[test]
fn a_corrupt_complete_line_refuses_to_open() {
    let dir = TempDir::new();
    let path = dir.file("ledger.jsonl");
    std::fs::write(&path, b"not json\n{\"kind\":\"grant\"}\n").unwrap();
    match Ledger::open(&path) {
        Err(OpenError::Corrupt { line, .. }) => assert_eq!(line, 1),
        other => panic!("expected a corrupt ledger, got {other:?}"),
    }
}

#[tokio::test]
async fn revokes_apply_once_and_never_take_more_than_was_granted() {
    let server = spawn(any_port(), Ledger::in_memory()).await.unwrap();
    let mut client = client(&server).await;
    let ledger = server.ledger();
    client
        .grant_items(grant("g-1", "o-1", "u-1", 5))
        .await
        .unwrap();

    let first = client
        .revoke_items(revoke("r-1", "g-1", 2))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.duplicate);
    assert_eq!(ledger.balance(APP, "u-1", "gems_100"), 3);

    let again = client
        .revoke_items(revoke("r-1", "g-1", 2))
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(again.reference, first.reference);
    assert_eq!(ledger.balance(APP, "u-1", "gems_100"), 3);

    // Same key, other content.
    let status = client
        .revoke_items(revoke("r-1", "g-1", 3))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    // A revoke naming the grant but another player is a bug upstream, not a revoke to apply.
    let mismatched = RevokeItemsRequest {
        user_id: "u-2".to_owned(),
        ..revoke("r-x", "g-1", 1)
    };
    let status = client.revoke_items(mismatched).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    // 0 takes back what is left; anything after that holds nothing.
    client.revoke_items(revoke("r-2", "g-1", 0)).await.unwrap();
    assert_eq!(ledger.balance(APP, "u-1", "gems_100"), 0);
    let empty = client
        .revoke_items(revoke("r-3", "g-1", 4))
        .await
        .unwrap()
        .into_inner();
    assert!(empty.reference.contains("nothing-held"));
    assert_eq!(ledger.balance(APP, "u-1", "gems_100"), 0);

    let stats = ledger.stats();
    assert_eq!(stats.revoke_calls, 6);
    assert_eq!(stats.revoke_effects, 3);
    assert_eq!(stats.duplicate_revoke_calls, 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_revoke_of_an_unknown_grant_is_recorded_as_a_no_op() {
    let server = spawn(any_port(), Ledger::in_memory()).await.unwrap();
    let mut client = client(&server).await;

    let reply = client
        .revoke_items(revoke("r-early", "g-never-seen", 1))
        .await
        .unwrap()
        .into_inner();
    assert!(!reply.duplicate);
    assert!(reply.reference.contains("nothing-held"));
    let again = client
        .revoke_items(revoke("r-early", "g-never-seen", 1))
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(again.reference, reply.reference);

    let revokes = server.ledger().revokes();
    assert_eq!(revokes.len(), 1);
    assert_eq!(revokes[0].revoked_quantity, 0);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_grant_failed_before_applying_leaves_no_effect() {
    let server = spawn(any_port(), Ledger::in_memory()).await.unwrap();
    let mut client = client(&server).await;
    server.faults().fail_next_grants(2, Code::Unavailable);

    for _ in 0..2 {
        let status = client
            .grant_items(grant("g-1", "o-1", "u-1", 1))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(server.ledger().effects_for_order("o-1"), 0);
    }
    let reply = client
        .grant_items(grant("g-1", "o-1", "u-1", 1))
        .await
        .unwrap()
        .into_inner();
    assert!(!reply.duplicate);
    assert_eq!(server.ledger().effects_for_order("o-1"), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_lost_acknowledgement_keeps_the_effect_and_the_retry_is_a_duplicate() {
    let server = spawn(any_port(), Ledger::in_memory()).await.unwrap();
    let mut client = client(&server).await;
    server.faults().lose_next_grant_acks(1, Code::Unavailable);

    let status = client
        .grant_items(grant("g-1", "o-1", "u-1", 2))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    let ledger = server.ledger();
    assert_eq!(ledger.effects_for_order("o-1"), 1);
    let applied = ledger.grant_entry("g-1").expect("the grant was applied");

    let retry = client
        .grant_items(grant("g-1", "o-1", "u-1", 2))
        .await
        .unwrap()
        .into_inner();
    assert!(retry.duplicate);
    assert_eq!(retry.reference, applied.reference);
    assert_eq!(ledger.balance(APP, "u-1", "gems_100"), 2);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_reply_slower_than_the_deadline_still_applies_the_grant() {
    let server = spawn(any_port(), Ledger::in_memory()).await.unwrap();
    let mut client = client(&server).await;
    server.faults().set_reply_delay(Duration::from_millis(500));

    let mut request = Request::new(grant("g-1", "o-1", "u-1", 1));
    request.set_timeout(Duration::from_millis(100));
    let status = client.grant_items(request).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    assert_eq!(server.ledger().effects_for_order("o-1"), 1);

    server.faults().clear();
    let retry = client
        .grant_items(grant("g-1", "o-1", "u-1", 1))
        .await
        .unwrap()
        .into_inner();
    assert!(retry.duplicate);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn health_reports_the_game_server_service_serving() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let server = spawn(any_port(), Ledger::in_memory()).await.unwrap();
    let channel = Channel::from_shared(server.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let reply = health
        .check(HealthCheckRequest {
            service: iap_proto::service_names::GAME_SERVER.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    server.shutdown().await.unwrap();
}
