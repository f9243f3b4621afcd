//! A game server that checks `auth.game_server_token` hears it on every call iap-delivery makes
//! (GrantItems, RevokeItems, UpdateSubscription), and a refused credential is counted in
//! `iap_game_server_refused_total{call}` (alerted on), not only retried.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use iap_app::delivery::GrpcGameServer;
use iap_domain::delivery::{GameServer, GrantCommand, GrantReason};
use iap_domain::subscriptions::{Subscription, SubscriptionState, SubscriptionUpdate};
use iap_domain::{AppId, Environment, Order, OrderId, OrderState, Platform, ProductId, UserId};
use iap_game_server::{Faults, Ledger};
use iap_runtime::auth::BearerCheck;
use iap_runtime::settings::Token;
use tonic::service::interceptor::InterceptedService;

const TOKEN: &str = "the game server's own secret";
const DEADLINE: Duration = Duration::from_secs(5);

/// The reference game server behind a bearer check, as a studio deploys it.
async fn guarded_game_server(ledger: Arc<Ledger>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let service = InterceptedService::new(
        iap_game_server::GameServer::new(ledger, Arc::new(Faults::new())).into_server(),
        BearerCheck::new("game_server", Some(&Token::new(TOKEN))),
    );
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    url
}

fn order() -> Order {
    let now = Utc::now();
    Order {
        id: OrderId::new(),
        app_id: AppId::parse("com.example.game").unwrap(),
        user_id: UserId::parse("player-1").unwrap(),
        product_id: ProductId::parse("vip_monthly").unwrap(),
        platform: Platform::Google,
        quantity: 1,
        state: OrderState::Delivering,
        product_kind: iap_domain::ProductKind::AutoRenewable,
        environment: Some(Environment::Sandbox),
        expected_price: None,
        store_transaction_id: Some("GPA.1234-5678-9012-34567".into()),
        binding_reason: None,
        attempt: 1,
        attempts_before_redelivery: 0,
        reject_reason: None,
        last_error: None,
        created_at: now,
        updated_at: now,
        paid_at: Some(now),
        delivered_at: None,
        confirmed_at: None,
        next_attempt_at: None,
        lease_until: None,
        metadata: BTreeMap::new(),
        manual: false,
        idempotency_key: None,
    }
}

fn subscription_update(order: &Order) -> SubscriptionUpdate {
    let expires = Utc::now() + chrono::Duration::days(30);
    SubscriptionUpdate {
        access_until: Some(expires),
        subscription: Subscription {
            id: "sub-1".into(),
            app_id: order.app_id.clone(),
            user_id: order.user_id.clone(),
            platform: order.platform,
            product_id: order.product_id.clone(),
            key: "token-1".into(),
            purchase_token: Some("token-1".into()),
            linked_purchase_token: None,
            replaced_by: None,
            original_order_id: order.id,
            latest_order_id: order.id,
            latest_store_transaction_id: "GPA.1234-5678-9012-34567".into(),
            state: SubscriptionState::Active,
            environment: Environment::Sandbox,
            expires_at: Some(expires),
            grace_until: None,
            auto_renew: true,
            auto_renew_product_id: None,
            price_change_state: None,
            latest_receipt: None,
            version: 1,
            synced_version: 0,
            next_check_at: None,
            checked_at: None,
            updated_at: Utc::now(),
        },
    }
}

fn refused_count(call: &str) -> u64 {
    let page = iap_runtime::telemetry::metrics_handle().render();
    let prefix = format!("iap_game_server_refused_total{{call=\"{call}\"}} ");
    page.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn every_game_server_call_carries_the_game_server_token() {
    let ledger = Arc::new(Ledger::in_memory());
    let url = guarded_game_server(ledger.clone()).await;
    let game = GrpcGameServer::new(&url)
        .unwrap()
        .with_token(Some(Token::new(TOKEN)));
    let order = order();

    let ack = game
        .grant(
            &GrantCommand {
                grant_id: format!("grant-{}", order.id),
                order: order.clone(),
                sandbox: true,
                reason: GrantReason::Purchase,
                entitlement_expires_at: None,
            },
            DEADLINE,
        )
        .await
        .expect("GrantItems with the token");
    assert!(!ack.duplicate);

    let update = subscription_update(&order);
    let taken = game
        .update_subscription(&update, DEADLINE)
        .await
        .expect("UpdateSubscription with the token is accepted");
    assert!(taken, "the game took the entitlement");
    let entry = ledger.entitlement("sub-1").expect("the game recorded it");
    assert_eq!(entry.version, 1);
    assert_eq!(entry.state, "active");
}

#[tokio::test]
async fn a_refused_token_is_counted_for_every_call() {
    let ledger = Arc::new(Ledger::in_memory());
    let url = guarded_game_server(ledger.clone()).await;
    let game = GrpcGameServer::new(&url)
        .unwrap()
        .with_token(Some(Token::new("a token the game does not know")));
    let order = order();
    let before = refused_count("UpdateSubscription");
    let error = game
        .update_subscription(&subscription_update(&order), DEADLINE)
        .await
        .expect_err("the game refuses a wrong token");
    assert!(error.to_string().contains("Unauthenticated"), "{error}");
    assert_eq!(refused_count("UpdateSubscription"), before + 1);
    assert!(ledger.entitlement("sub-1").is_none());

    let before = refused_count("GrantItems");
    game.grant(
        &GrantCommand {
            grant_id: format!("grant-{}", order.id),
            order: order.clone(),
            sandbox: true,
            reason: GrantReason::Purchase,
            entitlement_expires_at: None,
        },
        DEADLINE,
    )
    .await
    .expect_err("refused");
    assert_eq!(refused_count("GrantItems"), before + 1);
    assert_eq!(ledger.effects_for_order(&order.id.to_string()), 0);
}
