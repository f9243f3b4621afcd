//! The bookkeeping of orders taken back in parts (partial refunds), on PostgreSQL and SQLite: a
//! step is written under the revocation claim before RevokeItems and finished after it; two
//! steps never start from the same point; a stale claim writes nothing; the order keeps its
//! state; finished units are what later steps count from.

use std::collections::BTreeMap;
use std::time::Duration;

use iap_domain::delivery::{DeliveryStore, GameAck, RevocationClaim, RevokeReason};
use iap_domain::ports::{CreateOutcome, OrderRepository};
use iap_domain::refunds::{PartialStep, RefundCause, partial_revoke_id};
use iap_domain::{AppId, NewOrder, OrderId, OrderState, Platform, ProductId, ProductKind, UserId};
use iap_storage::{PoolOptions, Storage};
use iap_test_support::{TestDatabase, TestSqlite};
use sea_orm::{ConnectionTrait, Statement};

async fn sql(storage: &Storage, text: String) {
    storage
        .connection()
        .execute(Statement::from_string(storage.backend(), text))
        .await
        .unwrap();
}

async fn count(storage: &Storage, condition: &str) -> i64 {
    let row = storage
        .connection()
        .query_one(Statement::from_string(
            storage.backend(),
            format!("SELECT COUNT(*) AS n FROM outbox WHERE {condition}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

/// A delivered order of 5 units.
async fn delivered(storage: &Storage) -> OrderId {
    let new = NewOrder {
        id: OrderId::new(),
        app_id: AppId::parse("com.example.game").unwrap(),
        user_id: UserId::parse("u1").unwrap(),
        product_id: ProductId::parse("gems_100").unwrap(),
        platform: Platform::Google,
        quantity: 5,
        product_kind: ProductKind::Consumable,
        expected_price: None,
        metadata: BTreeMap::new(),
        idempotency_key: None,
        manual: false,
    };
    let CreateOutcome::Created(order) = storage.create_order(new).await.unwrap() else {
        panic!("a new order");
    };
    sql(
        storage,
        format!(
            "UPDATE orders SET state = 'DELIVERED' WHERE id = '{}'",
            order.id
        ),
    )
    .await;
    order.id
}

fn step(order: OrderId, from: u32, to: u32) -> PartialStep {
    PartialStep {
        revoke_id: partial_revoke_id(order, from, to),
        from_units: from,
        to_units: to,
        reason: RevokeReason::Refunded,
        cause: RefundCause {
            source: Some("user".into()),
            reason: Some("remorse".into()),
        },
    }
}

async fn claim(storage: &Storage, order: OrderId) -> iap_domain::delivery::ClaimedOrder {
    match storage
        .claim_revocation(order, Duration::from_secs(30))
        .await
        .unwrap()
    {
        RevocationClaim::Claimed { claim, granted } => {
            assert!(granted);
            claim
        }
        other => panic!("not claimed: {other:?}"),
    }
}

async fn exercise(storage: &Storage) {
    storage.migrate().await.unwrap();
    let order = delivered(storage).await;
    assert_eq!(
        storage
            .partial_revocations(order)
            .await
            .unwrap()
            .revoked_units,
        0
    );

    // 2 of 5 refunded: the step is written under the claim, and pending until the game answers.
    let first = claim(storage, order).await;
    let two = step(order, 0, 2);
    assert!(
        storage
            .begin_partial_revocation(&first, &two)
            .await
            .unwrap()
    );
    // Another step from the same point (a second worker, a retry that counted 3) is refused.
    assert!(
        !storage
            .begin_partial_revocation(&first, &step(order, 0, 3))
            .await
            .unwrap()
    );
    let state = storage.partial_revocations(order).await.unwrap();
    assert_eq!(state.revoked_units, 0);
    assert_eq!(
        state.pending.as_ref(),
        Some(&two),
        "the cut-short step is found again"
    );

    let after = storage
        .record_partial_revoked(&first, Some(&two), Some(&GameAck::new("ledger-1")))
        .await
        .unwrap()
        .expect("our claim");
    assert_eq!(
        after.state,
        OrderState::Delivered,
        "the order stays delivered"
    );
    assert!(after.lease_until.is_none(), "the claim is released");
    let state = storage.partial_revocations(order).await.unwrap();
    assert_eq!((state.revoked_units, state.pending), (2, None));
    assert_eq!(count(storage, "kind = 'order.partially_revoked'").await, 1);
    // The same step recorded again (a retry after a lost reply) writes no second event.
    storage
        .record_partial_revoked(&first, Some(&two), None)
        .await
        .unwrap();
    assert_eq!(count(storage, "kind = 'order.partially_revoked'").await, 1);

    // A later refund of 1 more: a new claim, a new step from 2; the stale claim writes nothing.
    let second = claim(storage, order).await;
    assert!(
        !storage
            .begin_partial_revocation(&first, &step(order, 2, 3))
            .await
            .unwrap(),
        "a stale claim writes no step"
    );
    let three = step(order, 2, 3);
    assert!(
        storage
            .begin_partial_revocation(&second, &three)
            .await
            .unwrap()
    );
    storage
        .record_partial_revoked(&second, Some(&three), Some(&GameAck::new("ledger-2")))
        .await
        .unwrap()
        .expect("our claim");
    assert_eq!(
        storage
            .partial_revocations(order)
            .await
            .unwrap()
            .revoked_units,
        3
    );
    assert_eq!(count(storage, "kind = 'order.partially_revoked'").await, 2);

    // A claim that finds nothing new only releases the order.
    let third = claim(storage, order).await;
    let released = storage
        .record_partial_revoked(&third, None, None)
        .await
        .unwrap()
        .expect("our claim");
    assert_eq!(released.state, OrderState::Delivered);
    assert_eq!(count(storage, "kind = 'order.partially_revoked'").await, 2);
}

#[tokio::test]
async fn partial_revocations_on_postgres() {
    let db = TestDatabase::create().await;
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    exercise(&storage).await;
    storage.close().await;
}

#[tokio::test]
async fn partial_revocations_on_sqlite() {
    let db = TestSqlite::create("storage");
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    exercise(&storage).await;
    storage.close().await;
}
