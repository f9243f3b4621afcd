//! AdminService end to end, as operators use it: grpcurl-style calls with the admin token to a
//! verifier whose deliveries go over gRPC (with the service token) to a real delivery service,
//! the reference game server and its ledger, the Google Play emulator, a fresh PostgreSQL
//! database and Redis. Each test checks what really happened: ledger entries, order states,
//! audit rows, inbox rows.

mod common;

use std::sync::Arc;

use iap_domain::OrderId;
use iap_domain::usecases::handle_notifications::NotificationHandler;
use iap_game_server::GameServerHandle;
use iap_proto::v1 as pb;
use iap_proto::v1::admin_service_client::AdminServiceClient;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_proto::v1::verification_service_client::VerificationServiceClient;
use iap_runtime::auth::GrpcAuth;
use iap_runtime::lock::LockBackend;
use iap_runtime::{Settings, Shutdown};
use iap_storage::{PoolOptions, Storage};
use iap_test_support::TestDatabase;
use serde_json::json;
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

use common::{APP, Emulator};

const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";
const SERVICE_TOKEN: &str = "service-token-for-tests-9876543210";

type Bearer = Box<dyn FnMut(Request<()>) -> Result<Request<()>, Status> + Send>;

fn bearer(token: &'static str) -> Bearer {
    Box::new(move |mut request: Request<()>| {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        Ok(request)
    })
}

struct World {
    _db: TestDatabase,
    storage: Storage,
    store: Emulator,
    game: GameServerHandle,
    verifier: Channel,
    verifier_http: std::net::SocketAddr,
    notifications: Arc<NotificationHandler<Storage>>,
    shutdown: Shutdown,
}

impl Drop for World {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

impl World {
    async fn start() -> Self {
        Self::start_allowing(1).await
    }

    /// A world whose orders get `max_attempts` delivery attempts before they are DEAD.
    async fn start_allowing(max_attempts: u32) -> Self {
        iap_test_support::init_tracing();
        let db = TestDatabase::create().await;
        let storage = Storage::connect(db.url(), &PoolOptions::default())
            .await
            .unwrap();
        storage.migrate().await.unwrap();
        let store = Emulator::start().await;
        let game = iap_game_server::spawn(
            ([127, 0, 0, 1], 0).into(),
            iap_game_server::Ledger::in_memory(),
        )
        .await
        .unwrap();
        let redis = iap_test_support::TestRedis::new();
        let toml = format!(
            r#"
            [redis]
            url = "{}"
            key_prefix = "{}"
            [auth]
            admin_token = "{ADMIN_TOKEN}"
            service_token = "{SERVICE_TOKEN}"
            [delivery]
            game_server_url = "{}"
            max_attempts = {max_attempts}
            calls_per_attempt = 1
            call_deadline_ms = 1000
            backoff_base_ms = 20
            backoff_max_ms = 100
            sweep_interval_ms = 0
            [apps."{APP}".products.gems_100]
            kind = "consumable"
            max_quantity = 10
            {}
            "#,
            redis.url,
            redis.prefix,
            game.endpoint(),
            store.store_settings_for(APP).await
        );
        let settings = Settings::from_toml(&toml).unwrap();
        let shutdown = Shutdown::new();
        let auth = GrpcAuth::from_settings(&settings.auth);

        let delivery = iap_app::delivery::Delivery::new(
            storage.clone(),
            LockBackend::from_settings(&settings).unwrap(),
            iap_app::delivery::game_server(&settings).unwrap(),
            iap_app::delivery::store_confirmers(&settings).unwrap(),
            settings.delivery.policy(),
        )
        .with_auth(auth.clone());
        let delivery_grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let delivery_url = format!("http://{}", delivery_grpc.local_addr().unwrap());
        tokio::spawn(iap_app::delivery::serve(
            delivery.clone(),
            delivery_grpc,
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            shutdown.clone(),
        ));

        // As `iap-verifier` wires it: deliveries and revocations over gRPC, with the service token.
        let client = Arc::new(
            iap_runtime::delivery_client::DeliveryClient::with_auth(&delivery_url, &settings.auth)
                .unwrap(),
        );
        let verifier = iap_app::verifier::Verifier::new(
            storage.clone(),
            Arc::new(settings.catalog().unwrap()),
            iap_app::verifier::store_verifiers(&settings).unwrap(),
        )
        .with_notifications(iap_app::verifier::notification_decoders(&settings).unwrap())
        .with_fast_path(client.clone(), std::time::Duration::from_secs(5))
        .with_revoker(client)
        .with_auth(auth);
        let listeners = iap_app::verifier::Listeners {
            grpc: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            http: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let grpc = listeners.grpc.local_addr().unwrap();
        let verifier_http = listeners.http.local_addr().unwrap();
        tokio::spawn(iap_app::verifier::serve(
            verifier,
            listeners,
            shutdown.clone(),
        ));
        let notifications = iap_app::delivery::notification_handler(
            &delivery,
            &settings,
            &settings.store_clients().unwrap(),
            None,
        )
        .unwrap();
        Self {
            _db: db,
            storage,
            store,
            game,
            verifier: Channel::from_shared(format!("http://{grpc}"))
                .unwrap()
                .connect()
                .await
                .unwrap(),
            verifier_http,
            notifications,
            shutdown,
        }
    }

    fn admin(&self) -> AdminServiceClient<InterceptedService<Channel, Bearer>> {
        AdminServiceClient::with_interceptor(self.verifier.clone(), bearer(ADMIN_TOKEN))
    }

    async fn create_order(&self, user: &str) -> pb::CreateOrderResponse {
        OrderServiceClient::with_interceptor(self.verifier.clone(), bearer(SERVICE_TOKEN))
            .create_order(pb::CreateOrderRequest {
                app_id: APP.into(),
                user_id: user.into(),
                product_id: "gems_100".into(),
                platform: pb::Platform::Google.into(),
                quantity: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// A Google Play purchase of an order, verified (the fast path then delivers it). Returns the
    /// order as VerifyPurchase answered and the emulator's purchase.
    async fn buy(&self, user: &str) -> (pb::Order, serde_json::Value) {
        let created = self.create_order(user).await;
        let binding = created.binding.unwrap();
        let made = self
            .store
            .post_json(
                "/emulator/google/purchases",
                json!({ "package_name": APP, "product_id": "gems_100", "kind": "inapp",
                    "obfuscated_account_id": binding.google_obfuscated_account_id,
                    "obfuscated_profile_id": binding.google_obfuscated_profile_id }),
            )
            .await;
        let verified = VerificationServiceClient::with_interceptor(
            self.verifier.clone(),
            bearer(SERVICE_TOKEN),
        )
        .verify_purchase(pb::VerifyPurchaseRequest {
            app_id: APP.into(),
            user_id: user.into(),
            order_id: String::new(),
            purchase: Some(pb::verify_purchase_request::Purchase::Google(
                pb::GooglePurchase {
                    purchase_token: made["purchase_token"].as_str().unwrap().into(),
                    product_id: "gems_100".into(),
                    original_json: made["original_json"].as_str().unwrap().into(),
                    signature: made["signature"].as_str().unwrap().into(),
                },
            )),
        })
        .await
        .unwrap()
        .into_inner();
        (verified.order.unwrap(), made)
    }

    async fn count(&self, table: &str, condition: &str) -> i64 {
        use sea_orm::{ConnectionTrait, Statement};
        let row = self
            .storage
            .connection()
            .query_one(Statement::from_string(
                self.storage.backend(),
                format!("SELECT COUNT(*) AS n FROM {table} WHERE {condition}"),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get("", "n").unwrap()
    }

    async fn execute(&self, sql: &str) {
        use sea_orm::{ConnectionTrait, Statement};
        self.storage
            .connection()
            .execute(Statement::from_string(
                self.storage.backend(),
                sql.to_owned(),
            ))
            .await
            .unwrap();
    }

    fn grants_for(&self, order_id: &str) -> u32 {
        self.game.ledger().effects_for_order(order_id)
    }
}

fn reason(status: &Status) -> String {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

fn field(status: &Status) -> String {
    status
        .get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

async fn order_state(
    admin: &mut AdminServiceClient<InterceptedService<Channel, Bearer>>,
    order_id: &str,
) -> (pb::OrderState, i32) {
    let order = admin
        .lookup_order(pb::LookupOrderRequest {
            id: order_id.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .matches
        .remove(0)
        .order
        .unwrap();
    (order.state(), order.attempt)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redelivering_a_dead_order_starts_a_fresh_series_of_attempts() {
    let w = World::start_allowing(2).await;
    w.game
        .faults()
        .fail_next_grants(1_000, tonic::Code::Unavailable);
    let (order, _) = w.buy("series-player").await;
    let mut admin = w.admin();
    let redeliver = |reason: &str| pb::RedeliverOrderRequest {
        order_id: order.order_id.clone(),
        operator: "alice".into(),
        reason: reason.into(),
    };
    // The fast path's attempt failed (the order waits in DELIVERING for its next attempt); an
    // operator's push is the second.
    assert_eq!(
        order_state(&mut admin, &order.order_id).await,
        (pb::OrderState::Delivering, 1)
    );
    admin.redeliver_order(redeliver("retry now")).await.unwrap();
    assert_eq!(
        order_state(&mut admin, &order.order_id).await,
        (pb::OrderState::Dead, 2),
        "two attempts allowed, two used"
    );

    // Redelivered from DEAD while the game still fails: a fresh series of two attempts, so one
    // failure leaves it waiting for its next attempt, not DEAD again.
    admin
        .redeliver_order(redeliver("ticket 18: first try after the outage"))
        .await
        .unwrap();
    assert_eq!(
        order_state(&mut admin, &order.order_id).await,
        (pb::OrderState::Delivering, 3),
        "the attempt counter (the fence) goes on, the series starts again"
    );
    admin.redeliver_order(redeliver("retry now")).await.unwrap();
    assert_eq!(
        order_state(&mut admin, &order.order_id).await,
        (pb::OrderState::Dead, 4),
        "the second attempt of the new series exhausts it"
    );
    assert_eq!(w.grants_for(&order.order_id), 0);

    // The game recovers: one more redelivery grants it, once.
    w.game.faults().clear();
    admin
        .redeliver_order(redeliver("ticket 18: game fixed"))
        .await
        .unwrap();
    assert!(matches!(
        order_state(&mut admin, &order.order_id).await.0,
        pb::OrderState::Delivered | pb::OrderState::Confirmed
    ));
    assert_eq!(w.grants_for(&order.order_id), 1);

    // The audit log says which redeliveries started a fresh series.
    let fresh = format!(
        "action = 'redeliver' AND order_id = '{}' AND detail->>'fresh_series' = 'true'",
        order.order_id
    );
    assert_eq!(w.count("audit_log", &fresh).await, 2);
    let all = format!("action = 'redeliver' AND order_id = '{}'", order.order_id);
    assert_eq!(w.count("audit_log", &all).await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_order_is_redelivered_with_its_grant_id_and_granted_once() {
    let w = World::start().await;
    w.game
        .faults()
        .fail_next_grants(1_000, tonic::Code::Unavailable);
    let (order, _) = w.buy("dead-player").await;
    // One attempt allowed: the fast path's failure leaves the order DEAD.
    let mut admin = w.admin();
    let dead = admin
        .lookup_order(pb::LookupOrderRequest {
            id: order.order_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .matches
        .remove(0)
        .order
        .unwrap();
    assert_eq!(dead.state(), pb::OrderState::Dead);
    assert_eq!(w.grants_for(&order.order_id), 0);

    // The game server recovers; an operator redelivers.
    w.game.faults().clear();
    let redelivered = admin
        .redeliver_order(pb::RedeliverOrderRequest {
            order_id: order.order_id.clone(),
            operator: "alice".into(),
            reason: "ticket 17: game server outage is over".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let delivery = redelivered.delivery.unwrap();
    assert!(
        matches!(
            redelivered.order.unwrap().state(),
            pb::OrderState::Delivered | pb::OrderState::Confirmed
        ),
        "the order is granted"
    );
    assert_eq!(delivery.grant_id, format!("grant-{}", order.order_id));
    assert_eq!(w.grants_for(&order.order_id), 1);

    // Redelivering a delivered order is refused, and grants nothing more.
    let refused = admin
        .redeliver_order(pb::RedeliverOrderRequest {
            order_id: order.order_id.clone(),
            operator: "alice".into(),
            reason: "again".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "ORDER_NOT_REDELIVERABLE");
    assert_eq!(w.grants_for(&order.order_id), 1);

    let audit = format!(
        "action = 'redeliver' AND order_id = '{}' AND actor = 'alice'",
        order.order_id
    );
    assert_eq!(w.count("audit_log", &audit).await, 1);

    // The history tells the story in order, and shows no purchase token.
    let history = admin
        .get_order_history(pb::GetOrderHistoryRequest {
            order_id: order.order_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let kinds: Vec<&str> = history.events.iter().map(|e| e.kind.as_str()).collect();
    let position = |kind: &str| {
        kinds
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_else(|| panic!("{kind} missing from {kinds:?}"))
    };
    assert!(position("order.created") < position("order.paid"));
    assert!(position("order.paid") < position("order.dead"));
    assert!(position("order.dead") < position("admin.redeliver"));
    assert!(position("admin.redeliver") < position("order.delivered"));
    let purchase = history.store_transaction.unwrap();
    assert_eq!(purchase.user_id, "dead-player");
    assert!(history.delivery.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_compensation_grants_once_per_key_and_is_audited() {
    let w = World::start().await;
    let mut admin = w.admin();
    let request = pb::CompensateOrderRequest {
        operator: "bob".into(),
        reason: "ticket 99: paid, got nothing".into(),
        idempotency_key: "ticket-99".into(),
        app_id: APP.into(),
        user_id: "unlucky".into(),
        product_id: "gems_100".into(),
        platform: pb::Platform::Google.into(),
        quantity: 2,
        ..Default::default()
    };
    let first = admin
        .compensate_order(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(!first.duplicate);
    let order = first.order.unwrap();
    assert!(order.manual);
    assert_eq!(
        order.binding_reason(),
        pb::BindingReason::ManualCompensation
    );
    assert_eq!(order.quantity, 2);
    assert!(matches!(
        order.state(),
        pb::OrderState::Delivered | pb::OrderState::Confirmed
    ));

    // The same key again: the first outcome, nothing granted twice.
    let second = admin
        .compensate_order(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(second.duplicate);
    assert_eq!(second.order.unwrap().order_id, order.order_id);
    assert_eq!(w.grants_for(&order.order_id), 1);
    assert_eq!(
        w.game.ledger().balance(APP, "unlucky", "gems_100"),
        2,
        "two units, granted once"
    );
    assert_eq!(
        w.count(
            "audit_log",
            "action = 'compensate' AND idempotency_key = 'ticket-99' AND actor = 'bob'"
        )
        .await,
        1
    );

    // The same key for another grant is refused, not silently answered.
    let mut other = request.clone();
    other.user_id = "someone-else".into();
    let refused = admin.compensate_order(other).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "IDEMPOTENCY_KEY_REUSED");

    // Operator, reason and key are required.
    for (mutate, missing) in [
        (
            Box::new(|r: &mut pb::CompensateOrderRequest| r.operator.clear())
                as Box<dyn Fn(&mut pb::CompensateOrderRequest)>,
            "operator",
        ),
        (Box::new(|r| r.reason = "  ".into()), "reason"),
        (Box::new(|r| r.idempotency_key.clear()), "idempotency_key"),
    ] {
        let mut bad = request.clone();
        bad.idempotency_key = format!("other-{missing}");
        mutate(&mut bad);
        let status = admin.compensate_order(bad).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{missing}");
        assert_eq!(field(&status), missing);
    }

    // Force-granting an existing unpaid order: it becomes a manual grant of that order.
    let created = w.create_order("never-verified").await.order.unwrap();
    let forced = admin
        .compensate_order(pb::CompensateOrderRequest {
            operator: "bob".into(),
            reason: "ticket 100: store lost the purchase".into(),
            idempotency_key: "ticket-100".into(),
            order_id: created.order_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let forced_order = forced.order.unwrap();
    assert_eq!(forced_order.order_id, created.order_id);
    assert!(forced_order.manual);
    assert_eq!(w.grants_for(&created.order_id), 1);

    // An unknown product is NOT_FOUND, a missing order too.
    let mut unknown = request.clone();
    unknown.idempotency_key = "ticket-101".into();
    unknown.product_id = "no_such_thing".into();
    let status = admin.compensate_order(unknown).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason(&status), "UNKNOWN_PRODUCT");
    let status = admin
        .compensate_order(pb::CompensateOrderRequest {
            operator: "bob".into(),
            reason: "r".into(),
            idempotency_key: "ticket-102".into(),
            order_id: OrderId::new().to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason(&status), "ORDER_NOT_FOUND");
    // Refused compensations leave no audit row behind.
    assert_eq!(w.count("audit_log", "action = 'compensate'").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_revokes_a_delivered_order_once() {
    let w = World::start().await;
    let (order, _) = w.buy("cheater").await;
    assert_eq!(w.grants_for(&order.order_id), 1);
    let mut admin = w.admin();

    let missing_reason = admin
        .revoke_order(pb::RevokeOrderRequest {
            order_id: order.order_id.clone(),
            operator: "carol".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing_reason.code(), Code::InvalidArgument);
    assert_eq!(field(&missing_reason), "reason");

    let request = pb::RevokeOrderRequest {
        order_id: order.order_id.clone(),
        operator: "carol".into(),
        reason: "chargeback outside the store".into(),
    };
    let revoked = admin
        .revoke_order(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.order.unwrap().state(), pb::OrderState::Revoked);
    assert_eq!(
        revoked.delivery.unwrap().state(),
        pb::DeliveryState::Revoked
    );
    assert_eq!(w.game.ledger().revokes().len(), 1);
    assert_eq!(w.game.ledger().balance(APP, "cheater", "gems_100"), 0);

    // Again: the order is already revoked; the game is not called a second time.
    let again = admin.revoke_order(request).await.unwrap().into_inner();
    assert_eq!(again.order.unwrap().state(), pb::OrderState::Revoked);
    assert_eq!(w.game.ledger().revokes().len(), 1);
    assert_eq!(
        w.count(
            "audit_log",
            &format!("action = 'revoke' AND order_id = '{}'", order.order_id)
        )
        .await,
        1
    );

    // Unknown and malformed ids.
    let status = admin
        .revoke_order(pb::RevokeOrderRequest {
            order_id: OrderId::new().to_string(),
            operator: "carol".into(),
            reason: "r".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = admin
        .revoke_order(pb::RevokeOrderRequest {
            order_id: "not-a-uuid".into(),
            operator: "carol".into(),
            reason: "r".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(field(&status), "order_id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lookup_finds_an_order_by_each_of_its_ids() {
    let w = World::start().await;
    let (order, purchase) = w.buy("lookup-player").await;
    let token = purchase["purchase_token"].as_str().unwrap().to_owned();
    let mut admin = w.admin();
    let history = admin
        .get_order_history(pb::GetOrderHistoryRequest {
            order_id: order.order_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let stored = history.store_transaction.unwrap();
    assert!(
        !stored.store_order_id.is_empty(),
        "Google gives a GPA order id"
    );
    // Apple's original transaction id shares the lookup; a Google purchase has none, so give
    // this one a stored value to find it by.
    w.execute(&format!(
        "UPDATE store_transactions SET original_transaction_id = 'orig-1' WHERE order_id = '{}'",
        order.order_id
    ))
    .await;

    for (id, kind) in [
        (order.order_id.clone(), "order_id"),
        (token.clone(), "purchase_token"),
        (stored.store_order_id.clone(), "store_order_id"),
        ("orig-1".to_owned(), "original_transaction_id"),
    ] {
        let matches = admin
            .lookup_order(pb::LookupOrderRequest { id: id.clone() })
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e:?}"))
            .into_inner()
            .matches;
        assert_eq!(matches.len(), 1, "{kind}");
        assert_eq!(matches[0].order.as_ref().unwrap().order_id, order.order_id);
        assert_eq!(matches[0].matched_by, kind, "{id}");
        assert!(
            !format!("{matches:?}").contains(&token),
            "token in a lookup reply"
        );
    }
    // The token never comes back in a response.
    let history = admin
        .get_order_history(pb::GetOrderHistoryRequest {
            order_id: order.order_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(history.store_transaction.is_some());
    assert!(!format!("{history:?}").contains(&token));

    // A charge id that is neither token nor store order id (Apple's transactionId).
    w.execute(&format!(
        "UPDATE store_transactions SET store_transaction_id = 'tx-1' WHERE order_id = '{}'",
        order.order_id
    ))
    .await;
    let matches = admin
        .lookup_order(pb::LookupOrderRequest { id: "tx-1".into() })
        .await
        .unwrap()
        .into_inner()
        .matches;
    assert_eq!(matches[0].matched_by, "store_transaction_id");

    let status = admin
        .lookup_order(pb::LookupOrderRequest {
            id: "GPA.0000-0000-0000-00000".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason(&status), "ORDER_NOT_FOUND");
    let status = admin
        .lookup_order(pb::LookupOrderRequest { id: String::new() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listing_puts_stuck_orders_first_and_pages_through_all() {
    let w = World::start().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            w.create_order(&format!("list-{i}"))
                .await
                .order
                .unwrap()
                .order_id,
        );
    }
    // Shape the states and ages directly: two paid-but-undelivered (the older one first), one
    // DELIVERING, two DEAD, two left CREATED.
    let set = |id: &str, state: &str, minutes_ago: i64| {
        format!(
            "UPDATE orders SET state = '{state}', updated_at = NOW() - INTERVAL '{minutes_ago} minutes' \
             WHERE id = '{id}'"
        )
    };
    w.execute(&set(&ids[0], "PAID", 5)).await;
    w.execute(&set(&ids[1], "PAID", 50)).await;
    w.execute(&set(&ids[2], "DELIVERING", 20)).await;
    w.execute(&set(&ids[3], "DEAD", 10)).await;
    w.execute(&set(&ids[4], "DEAD", 30)).await;
    w.execute(&set(&ids[5], "CREATED", 40)).await;
    w.execute(&set(&ids[6], "CREATED", 1)).await;

    let mut admin = w.admin();
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = admin
            .list_orders(pb::ListOrdersRequest {
                page_size: 2,
                page_token: token.clone(),
                app_id: APP.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.orders.len() <= 2);
        seen.extend(page.orders.into_iter().map(|o| o.order_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected: Vec<&String> = [1, 2, 0, 4, 3, 6, 5].iter().map(|&i| &ids[i]).collect();
    assert_eq!(seen.iter().collect::<Vec<_>>(), expected);
    assert_eq!(pages, 4);

    // Filters: state, user, minimum age.
    let only = |states: Vec<pb::OrderState>, user: &str, min_age: i64| pb::ListOrdersRequest {
        states: states.into_iter().map(Into::into).collect(),
        user_id: user.into(),
        min_age_seconds: min_age,
        ..Default::default()
    };
    let dead = admin
        .list_orders(only(vec![pb::OrderState::Dead], "", 0))
        .await
        .unwrap()
        .into_inner()
        .orders;
    assert_eq!(
        dead.iter().map(|o| &o.order_id).collect::<Vec<_>>(),
        vec![&ids[4], &ids[3]]
    );
    let one_user = admin
        .list_orders(only(vec![], "list-5", 0))
        .await
        .unwrap()
        .into_inner()
        .orders;
    assert_eq!(one_user.len(), 1);
    assert_eq!(one_user[0].order_id, ids[5]);
    let old = admin
        .list_orders(only(vec![], "", 25 * 60))
        .await
        .unwrap()
        .into_inner()
        .orders;
    assert_eq!(
        old.iter().map(|o| &o.order_id).collect::<Vec<_>>(),
        vec![&ids[1], &ids[4], &ids[5]]
    );

    let status = admin
        .list_orders(pb::ListOrdersRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(field(&status), "page_token");

    // Stats see the same orders.
    let stats = admin
        .get_stats(pb::GetStatsRequest { app_id: APP.into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.dead_orders, 2);
    let count = |state: pb::OrderState| -> i64 {
        stats
            .orders_by_state
            .iter()
            .filter(|c| c.state() == state)
            .map(|c| c.count)
            .sum()
    };
    assert_eq!(count(pb::OrderState::Paid), 2);
    assert_eq!(count(pb::OrderState::Created), 2);
    assert_eq!(stats.active_subscriptions, 0);
    // paid_at is unset for these hand-shaped rows; a real paid order gives the age.
    w.execute(&format!(
        "UPDATE orders SET paid_at = NOW() - INTERVAL '50 minutes' WHERE id = '{}'",
        ids[1]
    ))
    .await;
    let stats = admin
        .get_stats(pb::GetStatsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        (50 * 60..52 * 60).contains(&stats.oldest_undelivered_age_seconds),
        "{}",
        stats.oldest_undelivered_age_seconds
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replayed_notification_is_processed_again_without_a_second_grant() {
    use base64::Engine;
    let w = World::start().await;
    let (order, purchase) = w.buy("notified").await;
    assert_eq!(w.grants_for(&order.order_id), 1);
    let token = purchase["purchase_token"].as_str().unwrap();
    // Google tells us about the same purchase (Play's PURCHASED one-time product notification).
    let data = json!({ "version": "1.0", "packageName": APP, "eventTimeMillis": "1790000000000",
        "oneTimeProductNotification": { "version": "1.0", "notificationType": 1,
            "purchaseToken": token, "sku": "gems_100" } });
    let body = json!({ "message": { "messageId": "rtdn-1",
            "data": base64::engine::general_purpose::STANDARD.encode(data.to_string()) },
        "subscription": "projects/p/subscriptions/s" });
    let response = reqwest::Client::new()
        .post(format!("http://{}/notifications/google", w.verifier_http))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    w.notifications.run_once(10).await.unwrap();

    let mut admin = w.admin();
    let listed = admin
        .list_notifications(pb::ListNotificationsRequest {
            platform: pb::Platform::Google.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .notifications;
    assert_eq!(listed.len(), 1);
    let stored = &listed[0];
    assert!(stored.processed_at.is_some());
    assert!(!stored.subject.contains(token), "tokens are masked");
    assert!(
        stored.notification_id.starts_with("rtdn-1:"),
        "the message id and a digest of its data"
    );
    assert_eq!(stored.rejected_reason, "", "Google confirmed the purchase");

    let status = admin
        .replay_notification(pb::ReplayNotificationRequest {
            id: stored.id.clone(),
            operator: String::new(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(field(&status), "operator");

    let replayed = admin
        .replay_notification(pb::ReplayNotificationRequest {
            id: stored.id.clone(),
            operator: "dave".into(),
            reason: "handler bug fixed".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .notification
        .unwrap();
    assert!(replayed.processed_at.is_none());
    let unprocessed = admin
        .list_notifications(pb::ListNotificationsRequest {
            only_unprocessed: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .notifications;
    assert_eq!(unprocessed.len(), 1);
    let stats = admin
        .get_stats(pb::GetStatsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.unprocessed_notifications, 1);

    // The processor takes it again and records it processed; the purchase is not granted twice.
    let report = w.notifications.run_once(10).await.unwrap();
    assert_eq!(report.processed, 1);
    assert_eq!(
        w.count(
            "notifications",
            &format!("id = '{}' AND processed_at IS NOT NULL", stored.id)
        )
        .await,
        1
    );
    assert_eq!(w.grants_for(&order.order_id), 1);
    assert_eq!(
        w.count(
            "audit_log",
            "action = 'replay_notification' AND actor = 'dave'"
        )
        .await,
        1
    );
    // The order's history shows the notification.
    let history = admin
        .get_order_history(pb::GetOrderHistoryRequest {
            order_id: order.order_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        history
            .events
            .iter()
            .any(|e| e.kind == "notification.received"),
        "{:?}",
        history.events
    );

    let status = admin
        .replay_notification(pb::ReplayNotificationRequest {
            id: uuid::Uuid::now_v7().to_string(),
            operator: "dave".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason(&status), "NOTIFICATION_NOT_FOUND");
    // Nothing was lost: the body is still stored as received.
    assert_eq!(
        w.count("notifications", "raw_body LIKE '%rtdn-1%'").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_calls_need_the_admin_token_and_no_other() {
    let w = World::start().await;
    let request = || pb::GetStatsRequest::default();

    let status = AdminServiceClient::new(w.verifier.clone())
        .get_stats(request())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(reason(&status), "BEARER_TOKEN_MISSING");

    let status =
        AdminServiceClient::with_interceptor(w.verifier.clone(), bearer("wrong-token-wrong-token"))
            .get_stats(request())
            .await
            .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(reason(&status), "BEARER_TOKEN_INVALID");

    // The service token opens the game-facing services, not AdminService, and vice versa.
    let status = AdminServiceClient::with_interceptor(w.verifier.clone(), bearer(SERVICE_TOKEN))
        .get_stats(request())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = OrderServiceClient::with_interceptor(w.verifier.clone(), bearer(ADMIN_TOKEN))
        .get_order(pb::GetOrderRequest {
            order_id: OrderId::new().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = OrderServiceClient::new(w.verifier.clone())
        .get_order(pb::GetOrderRequest {
            order_id: OrderId::new().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    // The right token: OK.
    w.admin().get_stats(request()).await.unwrap();

    // The unclaimed-purchase calls sit behind the same check: no token or the service token is
    // refused before anything is read or claimed.
    let claim = || pb::ClaimUnclaimedPurchaseRequest {
        id: uuid::Uuid::now_v7().to_string(),
        user_id: "thief".into(),
        operator: "thief".into(),
        reason: "mine".into(),
    };
    for client in [
        AdminServiceClient::with_interceptor(w.verifier.clone(), bearer(SERVICE_TOKEN)),
        AdminServiceClient::with_interceptor(w.verifier.clone(), bearer("wrong-token-wrong-token")),
    ] {
        let mut client = client;
        let listed = client
            .list_unclaimed_purchases(pb::ListUnclaimedPurchasesRequest::default())
            .await
            .unwrap_err();
        assert_eq!(listed.code(), Code::Unauthenticated);
        let claimed = client.claim_unclaimed_purchase(claim()).await.unwrap_err();
        assert_eq!(claimed.code(), Code::Unauthenticated);
    }
    let unauthenticated = AdminServiceClient::new(w.verifier.clone())
        .claim_unclaimed_purchase(claim())
        .await
        .unwrap_err();
    assert_eq!(reason(&unauthenticated), "BEARER_TOKEN_MISSING");
    let missing = w
        .admin()
        .claim_unclaimed_purchase(claim())
        .await
        .unwrap_err();
    assert_eq!(reason(&missing), "UNCLAIMED_PURCHASE_NOT_FOUND");
    assert!(
        w.admin()
            .list_unclaimed_purchases(pb::ListUnclaimedPurchasesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .purchases
            .is_empty()
    );
    // A refused call touched nothing.
    assert_eq!(w.count("audit_log", "1 = 1").await, 0);
}

/// Certificates for a mutual-TLS test: a CA, a server certificate for 127.0.0.1 and a client
/// certificate, all signed by the CA. Written to `dir` as PEM files.
fn write_certificates(dir: &std::path::Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>, stem: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.join(format!("{stem}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
    };
    leaf(vec!["localhost".into(), "127.0.0.1".into()], "server");
    leaf(vec!["operator".into()], "client");
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_clients_without_a_certificate_from_the_ca() {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("iap-mtls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    write_certificates(&dir);
    let settings = common::settings_from(&format!(
        r#"
        [auth]
        admin_token = "{ADMIN_TOKEN}"
        tls_cert_file = "{0}/server.pem"
        tls_key_file = "{0}/server.key"
        tls_client_ca_file = "{0}/ca.pem"
        "#,
        dir.display()
    ));
    let db = TestDatabase::create().await;
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    storage.migrate().await.unwrap();
    let verifier =
        iap_app::verifier::Verifier::new(storage, Arc::new(settings.catalog().unwrap()), vec![])
            .with_auth(GrpcAuth::from_settings(&settings.auth))
            .with_tls(iap_runtime::auth::server_tls(&settings.auth).unwrap());
    let listeners = iap_app::verifier::Listeners {
        grpc: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        http: TcpListener::bind("127.0.0.1:0").await.unwrap(),
    };
    let addr = listeners.grpc.local_addr().unwrap();
    let shutdown = Shutdown::new();
    tokio::spawn(iap_app::verifier::serve(
        verifier,
        listeners,
        shutdown.clone(),
    ));

    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let tls = ClientTlsConfig::new()
        .domain_name("localhost")
        .ca_certificate(Certificate::from_pem(read("ca.pem")));
    let endpoint = |tls: ClientTlsConfig| {
        Channel::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
    };

    // With the client certificate and the admin token: OK.
    let with_cert = endpoint(
        tls.clone()
            .identity(Identity::from_pem(read("client.pem"), read("client.key"))),
    )
    .connect()
    .await
    .unwrap();
    AdminServiceClient::with_interceptor(with_cert.clone(), bearer(ADMIN_TOKEN))
        .get_stats(pb::GetStatsRequest::default())
        .await
        .unwrap();
    // The certificate alone is not the admin token.
    let status = AdminServiceClient::new(with_cert)
        .get_stats(pb::GetStatsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    // Without a client certificate the handshake (or the first call) fails.
    let refused = match endpoint(tls).connect().await {
        Err(_) => true,
        Ok(channel) => AdminServiceClient::with_interceptor(channel, bearer(ADMIN_TOKEN))
            .get_stats(pb::GetStatsRequest::default())
            .await
            .is_err(),
    };
    assert!(refused, "a client without a certificate got through");
    // Plaintext is refused too.
    let plaintext = match Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
    {
        Err(_) => true,
        Ok(channel) => AdminServiceClient::with_interceptor(channel, bearer(ADMIN_TOKEN))
            .get_stats(pb::GetStatsRequest::default())
            .await
            .is_err(),
    };
    assert!(plaintext, "a plaintext client got through");
    shutdown.trigger();
    let _ = std::fs::remove_dir_all(&dir);
}
