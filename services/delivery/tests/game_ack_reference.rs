//! The game server's reference is its own text, of any length: iap-delivery keeps at most 255
//! bytes of it (the first bytes and the SHA-256 of the whole when it is longer) and counts the
//! shortening, so an overlong reference never makes the acknowledged grant fail to record.

mod common;

use std::time::Duration;

use iap_domain::OrderState;
use iap_proto::v1 as pb;
use iap_proto::v1::game_server_service_server::{GameServerService, GameServerServiceServer};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use common::World;

/// A game server whose ledger references are 10,000 bytes long.
#[derive(Debug, Default, Clone)]
struct VerboseGame {
    grants: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn long_reference(grant_id: &str) -> String {
    format!("{grant_id}:{}", "é".repeat(5_000))
}

#[tonic::async_trait]
impl GameServerService for VerboseGame {
    async fn grant_items(
        &self,
        request: Request<pb::GrantItemsRequest>,
    ) -> Result<Response<pb::GrantItemsResponse>, Status> {
        let grant_id = request.into_inner().grant_id;
        let mut grants = self.grants.lock().unwrap();
        let duplicate = grants.contains(&grant_id);
        if !duplicate {
            grants.push(grant_id.clone());
        }
        Ok(Response::new(pb::GrantItemsResponse {
            reference: long_reference(&grant_id),
            duplicate,
        }))
    }

    async fn revoke_items(
        &self,
        _request: Request<pb::RevokeItemsRequest>,
    ) -> Result<Response<pb::RevokeItemsResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn update_subscription(
        &self,
        _request: Request<pb::UpdateSubscriptionRequest>,
    ) -> Result<Response<pb::UpdateSubscriptionResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

fn shortened_count() -> u64 {
    let page = iap_runtime::telemetry::metrics_handle().render();
    page.lines()
        .find_map(|line| {
            line.strip_prefix("iap_game_ack_reference_shortened_total{call=\"GrantItems\"} ")
        })
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_overlong_game_reference_is_kept_shortened_and_the_grant_recorded_once() {
    let w = World::start().await;
    let game = VerboseGame::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(GameServerServiceServer::new(game.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let mut settings = w.settings.clone();
    settings.delivery.game_server_url = Some(url);
    let delivery = iap_app::delivery::Delivery::new(
        w.storage.clone(),
        iap_runtime::lock::LockBackend::from_settings(&settings).unwrap(),
        iap_app::delivery::game_server(&settings).unwrap(),
        iap_app::delivery::store_confirmers(&settings).unwrap(),
        settings.delivery.policy(),
    );

    let before = shortened_count();
    let order = w.paid_order("verbose-player", "gems_100").await;
    let outcome = delivery.deliveries().deliver(order).await.unwrap();
    assert!(
        matches!(
            outcome.order.state,
            OrderState::Delivered | OrderState::Confirmed
        ),
        "{:?}",
        outcome.order.state
    );
    // Delivering again finds it delivered: the game heard the grant once.
    delivery.deliveries().deliver(order).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(game.grants.lock().unwrap().len(), 1);
    assert_eq!(shortened_count(), before + 1);

    let grant_id = format!("grant-{order}");
    let kept = outcome
        .delivery
        .and_then(|d| d.game_ack_reference)
        .expect("the reference is kept");
    assert!(kept.len() <= 255, "{} bytes", kept.len());
    assert!(kept.starts_with(&format!("{grant_id}:é")), "{kept}");
    let digest = hex::encode(Sha256::digest(long_reference(&grant_id).as_bytes()));
    assert!(kept.ends_with(&format!("~sha256:{digest}")), "{kept}");
}
