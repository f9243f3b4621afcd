//! The operators' store (AdminStore) on both engines: PostgreSQL (the system of record) and
//! SQLite (iapd's embedded default), through the operators' use case so the same rules run.

use std::sync::Arc;

use iap_domain::admin::{AdminStore, OrderFilter};
use iap_domain::catalog::{AppPolicy, Catalog, ProductPolicy, SandboxPolicy};
use iap_domain::notifications::{InboundNotification, NotificationInbox};
use iap_domain::ports::OrderRepository;
use iap_domain::usecases::admin::{
    Accountability, AdminError, Administration, Compensate, CompensationGrant, ListOrders,
};
use iap_domain::{AppId, NewOrder, OrderId, OrderState, Platform, ProductId, ProductKind, UserId};
use iap_storage::{PoolOptions, Storage};
use iap_test_support::{TestDatabase, TestSqlite};

const APP: &str = "com.example.game";

fn catalog() -> Arc<Catalog> {
    Arc::new(Catalog::new([AppPolicy {
        app_id: AppId::parse(APP).unwrap(),
        products: [(
            ProductId::parse("gems_100").unwrap(),
            ProductPolicy {
                kind: ProductKind::Consumable,
                max_quantity: 10,
                subscription_group: None,
            },
        )]
        .into(),
        sandbox: SandboxPolicy::default(),
        flag_repeat_trials: true,
        max_open_orders_per_user: 0,
        compensation_match_window: std::time::Duration::from_secs(3 * 24 * 3600),
    }]))
}

async fn created(storage: &Storage, user: &str) -> OrderId {
    let order = NewOrder {
        id: OrderId::new(),
        app_id: AppId::parse(APP).unwrap(),
        user_id: UserId::parse(user).unwrap(),
        product_id: ProductId::parse("gems_100").unwrap(),
        platform: Platform::Huawei,
        quantity: 1,
        product_kind: ProductKind::Consumable,
        expected_price: None,
        metadata: Default::default(),
        idempotency_key: None,
        manual: false,
    };
    let id = order.id;
    storage.create_order(order).await.unwrap();
    id
}

async fn exercise(storage: &Storage) {
    storage.migrate().await.unwrap();
    // No delivery wired: actions leave orders due for the sweeper.
    let admin = Administration::new(storage.clone(), catalog(), None, None);
    let who = Accountability::parse("erin", "ticket 7").unwrap();

    let a = created(storage, "u1").await;
    let b = created(storage, "u2").await;
    use sea_orm::{ConnectionTrait, Statement};
    storage
        .connection()
        .execute(Statement::from_string(
            storage.backend(),
            format!("UPDATE orders SET state = 'DEAD', attempt = 3 WHERE id = '{b}'"),
        ))
        .await
        .unwrap();

    // DEAD first, then the rest; a filter by state.
    let page = admin
        .list_orders(ListOrders {
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![b, a]
    );
    let created_only = admin
        .list_orders(ListOrders {
            filter: OrderFilter {
                states: vec![OrderState::Created],
                ..Default::default()
            },
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(created_only.items.len(), 1);

    // Redelivery: DEAD → PAID, due now, attempt kept, audited.
    let requeued = admin.redeliver(b, &who).await.unwrap();
    assert_eq!(requeued.order.state, OrderState::Paid);
    assert_eq!(requeued.order.attempt, 3);
    assert!(requeued.order.next_attempt_at.is_some());

    // Compensation of a product, twice with one key: one order.
    let compensate = || {
        Compensate::parse(
            who.clone(),
            "key-1",
            CompensationGrant::Product {
                app_id: AppId::parse(APP).unwrap(),
                user_id: UserId::parse("u3").unwrap(),
                product_id: ProductId::parse("gems_100").unwrap(),
                platform: Platform::Huawei,
                quantity: 1,
            },
        )
        .unwrap()
    };
    let first = admin.compensate(compensate()).await.unwrap();
    let second = admin.compensate(compensate()).await.unwrap();
    assert!(!first.duplicate && second.duplicate);
    assert_eq!(first.result.order.id, second.result.order.id);
    assert_eq!(first.result.order.state, OrderState::Paid);
    assert!(first.result.order.manual);

    // A CREATED order force-granted; the same order again under another key is still PAID and
    // due (nothing to move), never a second order.
    let forced = Compensate::parse(who.clone(), "key-2", CompensationGrant::Order(a)).unwrap();
    let forced = admin.compensate(forced).await.unwrap();
    assert_eq!(forced.result.order.state, OrderState::Paid);
    assert!(forced.result.order.manual);

    // Lookup by order id; an unknown id is NOT_FOUND.
    assert_eq!(admin.lookup(&a.to_string()).await.unwrap().len(), 1);
    assert!(matches!(
        admin.lookup("nothing-here").await,
        Err(AdminError::OrderNotFound(_))
    ));

    // Notifications: stored, marked processed, replayed.
    storage
        .receive(InboundNotification {
            platform: Platform::Huawei,
            notification_id: "evt-1".into(),
            app_id: Some(AppId::parse(APP).unwrap()),
            notification_type: "ORDER/1".into(),
            subject: Some("token-xyz-0123456789".into()),
            raw_body: "{}".into(),
            event_at: None,
        })
        .await
        .unwrap();
    let listed = admin.list_notifications(None, false, 10, "").await.unwrap();
    let id = listed.items[0].id.clone();
    storage.mark_processed(&id, "done").await.unwrap();
    let replayed = admin.replay_notification(&id, "erin", "").await.unwrap();
    assert!(replayed.processed_at.is_none());
    let unprocessed = admin.list_notifications(None, true, 10, "").await.unwrap();
    assert_eq!(unprocessed.items.len(), 1);

    // A notification the store did not confirm: kept, processed, with its reason; the same key
    // again is a duplicate.
    let forged = InboundNotification {
        platform: Platform::Google,
        notification_id: "77:digest".into(),
        app_id: Some(AppId::parse(APP).unwrap()),
        notification_type: "VOIDED_PURCHASE".into(),
        subject: Some("token-forged-0123456789".into()),
        raw_body: "{}".into(),
        event_at: None,
    };
    assert!(storage.receive(forged.clone()).await.unwrap());
    let claimed = storage
        .claim_due(10, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let row = claimed
        .iter()
        .find(|n| n.notification_type == "VOIDED_PURCHASE")
        .expect("claimed");
    storage
        .mark_rejected(&row.id, "not_voided_at_store", "rejected: not voided")
        .await
        .unwrap();
    let listed = admin
        .list_notifications(Some(Platform::Google), false, 10, "")
        .await
        .unwrap();
    assert_eq!(
        listed.items[0].rejected_reason.as_deref(),
        Some("not_voided_at_store")
    );
    assert!(listed.items[0].processed_at.is_some());
    assert!(
        !storage.receive(forged).await.unwrap(),
        "a replay is a duplicate"
    );
    // The claim above took the Huawei row too: give it back for the checks below.
    storage
        .retry_later(
            &id,
            "test",
            chrono::Utc::now() - chrono::Duration::seconds(1),
        )
        .await
        .unwrap();

    // Stats: two PAID (the requeued and the force-granted), one manual PAID, one unprocessed
    // notification, no subscriptions.
    let stats = admin.stats(None).await.unwrap();
    let paid: u64 = stats
        .counts
        .by_state
        .iter()
        .filter(|(s, _, _)| *s == OrderState::Paid)
        .map(|(_, _, n)| n)
        .sum();
    assert_eq!(paid, 3);
    assert_eq!(stats.dead_orders, 0);
    assert_eq!(stats.counts.unprocessed_notifications, 1);
    assert_eq!(stats.counts.active_subscriptions, 0);
    assert!(stats.counts.oldest_undelivered_since.is_some());

    // Every action is in the audit log, with its operator.
    let row = storage
        .connection()
        .query_one(Statement::from_string(
            storage.backend(),
            "SELECT COUNT(*) AS n FROM audit_log WHERE actor = 'erin'".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap();
    let audited: i64 = row.try_get("", "n").unwrap();
    assert_eq!(audited, 4, "redeliver, two compensations, replay");
    let events = storage.order_events(b).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "admin.redeliver"));
}

#[tokio::test]
async fn admin_store_works_on_postgres() {
    let db = TestDatabase::create().await;
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    exercise(&storage).await;
    storage.close().await;
}

#[tokio::test]
async fn admin_store_works_on_sqlite() {
    let db = TestSqlite::create("admin");
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    exercise(&storage).await;
    storage.close().await;
}
