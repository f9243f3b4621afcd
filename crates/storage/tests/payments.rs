//! The payment ledger on PostgreSQL (fresh database per test) and SQLite: one commit per store
//! purchase, nothing half-written, races decided by the database.

use std::collections::BTreeMap;
use std::sync::Arc;

use iap_domain::ports::{
    CreateOutcome, MarkOutcome, OrderRepository, PaymentLedger, PaymentTarget, PaymentToRecord,
    RecordOutcome, RefundMark,
};
use iap_domain::purchase::{PurchaseStatus, VerifiedPurchase};
use iap_domain::{
    AppId, BindingReason, Environment, NewOrder, OrderId, OrderState, Platform, ProductId,
    ProductKind, UserId,
};
use iap_storage::{PoolOptions, Storage};
use iap_test_support::{TestDatabase, TestSqlite};
use sea_orm::{ConnectionTrait, Statement};

fn new_order(user: &str) -> NewOrder {
    NewOrder {
        id: OrderId::new(),
        app_id: AppId::parse("com.example.game").unwrap(),
        user_id: UserId::parse(user).unwrap(),
        product_id: ProductId::parse("gems_100").unwrap(),
        platform: Platform::Google,
        quantity: 1,
        product_kind: ProductKind::Consumable,
        expected_price: None,
        metadata: BTreeMap::new(),
        idempotency_key: None,
        manual: false,
    }
}

fn purchase(token: &str) -> VerifiedPurchase {
    VerifiedPurchase {
        platform: Platform::Google,
        environment: Environment::Production,
        store_transaction_id: token.to_owned(),
        original_transaction_id: None,
        purchase_token: Some(token.to_owned()),
        store_order_id: Some("GPA.1234-5678-9012-34567".into()),
        product_id: ProductId::parse("gems_100").unwrap(),
        quantity: 1,
        status: PurchaseStatus::Purchased,
        purchased_at: None,
        expires_at: None,
        carried_order_id: None,
        store_account_id: None,
        is_trial: false,
        price: None,
        kind: None,
        linked_purchase_token: None,
        acknowledged: Some(false),
        consumed: Some(false),
        subscription_status: None,
        subscription_group: None,
        raw: serde_json::json!({ "purchaseStateContext": { "purchaseState": "PURCHASED" } }),
        finish_withheld: false,
        latest_receipt: None,
    }
}

fn payment(target: PaymentTarget, token: &str, user: &str) -> PaymentToRecord {
    PaymentToRecord {
        target,
        purchase: purchase(token),
        app_id: AppId::parse("com.example.game").unwrap(),
        user_id: UserId::parse(user).unwrap(),
        binding_reason: BindingReason::CallerOrderId,
        trial_group: None,
        subscription: None,
    }
}

fn trial(token: &str, user: &str, account: &str) -> PaymentToRecord {
    let mut p = payment(PaymentTarget::NewOrder(new_order(user)), token, user);
    p.purchase.is_trial = true;
    p.purchase.store_account_id = Some(account.to_owned());
    p.trial_group = Some("vip".to_owned());
    p
}

async fn record_trial(storage: &Storage, token: &str, user: &str, account: &str) -> bool {
    match storage
        .record_payment(trial(token, user, account))
        .await
        .unwrap()
    {
        RecordOutcome::Recorded { repeat_trial, .. } => repeat_trial,
        other => panic!("trial {token} not recorded: {other:?}"),
    }
}

async fn count(storage: &Storage, table: &str) -> i64 {
    let row = storage
        .connection()
        .query_one(Statement::from_string(
            storage.backend(),
            format!("SELECT COUNT(*) AS n FROM {table}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

async fn exercise(storage: &Storage) {
    storage.migrate().await.unwrap();
    let CreateOutcome::Created(order) = storage.create_order(new_order("alice")).await.unwrap()
    else {
        panic!()
    };
    let app = AppId::parse("com.example.game").unwrap();
    let alice = UserId::parse("alice").unwrap();
    let gems = ProductId::parse("gems_100").unwrap();
    assert_eq!(
        storage
            .oldest_unpaid_order(&app, &alice, &gems, Platform::Google)
            .await
            .unwrap()
            .map(|o| o.id),
        Some(order.id)
    );

    let RecordOutcome::Recorded { order: paid, .. } = storage
        .record_payment(payment(
            PaymentTarget::ExistingOrder(order.id),
            "tok-1",
            "alice",
        ))
        .await
        .unwrap()
    else {
        panic!("first payment is recorded");
    };
    assert_eq!(paid.state, OrderState::Paid);
    assert_eq!(paid.store_transaction_id.as_deref(), Some("tok-1"));
    assert!(paid.paid_at.is_some());
    assert_eq!(storage.get_order(order.id).await.unwrap().unwrap(), *paid);
    assert!(
        storage
            .oldest_unpaid_order(&app, &alice, &gems, Platform::Google)
            .await
            .unwrap()
            .is_none()
    );
    let recorded = storage
        .find_purchase(Platform::Google, "tok-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (recorded.order_id, recorded.user_id.as_str()),
        (order.id, "alice")
    );

    // The same store purchase again, even for a new order: refused, and the new order rolled back.
    let again = storage
        .record_payment(payment(
            PaymentTarget::NewOrder(new_order("bob")),
            "tok-1",
            "bob",
        ))
        .await
        .unwrap();
    assert!(matches!(again, RecordOutcome::AlreadyRecorded(ref r) if r.order_id == order.id));
    // Another purchase for the already-paid order: nothing written.
    let late = storage
        .record_payment(payment(
            PaymentTarget::ExistingOrder(order.id),
            "tok-2",
            "alice",
        ))
        .await
        .unwrap();
    assert_eq!(late, RecordOutcome::OrderNoLongerUnpaid);
    assert!(
        storage
            .find_purchase(Platform::Google, "tok-2")
            .await
            .unwrap()
            .is_none()
    );

    assert_eq!(
        count(storage, "orders").await,
        1,
        "the refused new order left no row"
    );
    assert_eq!(count(storage, "store_transactions").await, 1);
    assert_eq!(count(storage, "outbox").await, 1, "one order.paid event");

    // Free trials: remembered per user and per store account, in the same commit.
    assert!(!record_trial(storage, "trial-1", "dave", "acct-1").await);
    assert!(
        record_trial(storage, "trial-2", "dave", "acct-2").await,
        "same user"
    );
    assert!(
        record_trial(storage, "trial-3", "erin", "acct-1").await,
        "same account"
    );
    assert!(!record_trial(storage, "trial-4", "frank", "acct-9").await);
    let replayed = storage
        .find_purchase(Platform::Google, "trial-3")
        .await
        .unwrap()
        .unwrap();
    assert!(replayed.repeat_trial, "a retry keeps the first answer");
    assert!(
        !storage
            .find_purchase(Platform::Google, "trial-1")
            .await
            .unwrap()
            .unwrap()
            .repeat_trial
    );
    assert_eq!(count(storage, "trial_usage").await, 4);
}

#[tokio::test]
async fn payments_on_postgres() {
    let db = TestDatabase::create().await;
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    exercise(&storage).await;
}

#[tokio::test]
async fn payments_on_sqlite() {
    let db = TestSqlite::create("payments");
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    exercise(&storage).await;
    storage.close().await;
}

/// 32 concurrent redemptions of one store purchase, half on one order and half creating orders:
/// exactly one commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_redemptions_commit_once_on_postgres() {
    let db = TestDatabase::create().await;
    let storage = Arc::new(
        Storage::connect(db.url(), &PoolOptions::default())
            .await
            .unwrap(),
    );
    storage.migrate().await.unwrap();
    let CreateOutcome::Created(order) = storage.create_order(new_order("carol")).await.unwrap()
    else {
        panic!()
    };
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let storage = storage.clone();
            tokio::spawn(async move {
                let target = if i % 2 == 0 {
                    PaymentTarget::ExistingOrder(order.id)
                } else {
                    PaymentTarget::NewOrder(new_order("carol"))
                };
                storage
                    .record_payment(payment(target, "tok-race", "carol"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut recorded = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), RecordOutcome::Recorded { .. }) {
            recorded += 1;
        }
    }
    assert_eq!(recorded, 1);
    assert_eq!(count(&storage, "store_transactions").await, 1);
    assert_eq!(count(&storage, "outbox").await, 1);
    let paid: i64 = count_where(&storage, "orders", "state = 'PAID'").await;
    assert_eq!(paid, 1, "exactly one order is paid");
}

async fn count_where(storage: &Storage, table: &str, condition: &str) -> i64 {
    let row = storage
        .connection()
        .query_one(Statement::from_string(
            storage.backend(),
            format!("SELECT COUNT(*) AS n FROM {table} WHERE {condition}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

/// A one-time purchase whose store ids are all its own: token `tok`, order `GPA.{tok}`.
fn own_payment(tok: &str, user: &str) -> PaymentToRecord {
    let mut p = payment(PaymentTarget::NewOrder(new_order(user)), tok, user);
    p.purchase.store_order_id = Some(format!("GPA.{tok}"));
    p
}

fn refund_of(key: &str) -> RefundMark {
    RefundMark {
        platform: Platform::Google,
        store_keys: vec![key.to_owned()],
        revoked: false,
        source: "test".into(),
    }
}

async fn refund_marks_hold(storage: &Storage) {
    storage.migrate().await.unwrap();
    // Refunded first, under its order id: the redemption is refused and writes nothing.
    assert_eq!(
        storage.mark_refund(refund_of("GPA.tok-m1")).await.unwrap(),
        MarkOutcome::Marked
    );
    assert_eq!(
        storage.mark_refund(refund_of("GPA.tok-m1")).await.unwrap(),
        MarkOutcome::Marked,
        "a repeated refund is harmless"
    );
    let refused = storage
        .record_payment(own_payment("tok-m1", "alice"))
        .await
        .unwrap();
    assert_eq!(
        refused,
        RecordOutcome::RefundedBeforeRedemption { revoked: false }
    );
    assert_eq!(count_where(storage, "orders", "user_id = 'alice'").await, 0);
    assert_eq!(
        count_where(storage, "store_transactions", "purchase_token = 'tok-m1'").await,
        0
    );

    // Redeemed first: the refund, named by the token, finds it and marks nothing.
    let RecordOutcome::Recorded { order, .. } = storage
        .record_payment(own_payment("tok-m2", "bob"))
        .await
        .unwrap()
    else {
        panic!("not recorded")
    };
    match storage.mark_refund(refund_of("tok-m2")).await.unwrap() {
        MarkOutcome::Redeemed(r) => assert_eq!(r.order_id, order.id),
        other => panic!("expected the redemption, got {other:?}"),
    }
    assert_eq!(
        count_where(storage, "refund_marks", "store_key = 'tok-m2'").await,
        0
    );
}

#[tokio::test]
async fn refund_marks_refuse_later_redemptions_on_postgres() {
    let db = TestDatabase::create().await;
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    refund_marks_hold(&storage).await;
}

#[tokio::test]
async fn refund_marks_refuse_later_redemptions_on_sqlite() {
    let storage = Storage::connect("sqlite::memory:", &PoolOptions::default())
        .await
        .unwrap();
    refund_marks_hold(&storage).await;
}

/// A refund and a redemption of one purchase racing, many times: the refund is never lost —
/// either it finds the redemption (and the caller revokes it) or the redemption is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_racing_a_redemption_is_never_lost_on_postgres() {
    let db = TestDatabase::create().await;
    let storage = Arc::new(
        Storage::connect(db.url(), &PoolOptions::default())
            .await
            .unwrap(),
    );
    storage.migrate().await.unwrap();
    for round in 0..40 {
        let tok = format!("tok-race-{round}");
        // The refund names the order id on even rounds and the token on odd ones.
        let key = if round % 2 == 0 {
            format!("GPA.{tok}")
        } else {
            tok.clone()
        };
        let (s1, s2) = (storage.clone(), storage.clone());
        let payment = own_payment(&tok, "carol");
        let redeem = tokio::spawn(async move { s1.record_payment(payment).await.unwrap() });
        let refund = tokio::spawn(async move { s2.mark_refund(refund_of(&key)).await.unwrap() });
        let (redeemed, refunded) = (redeem.await.unwrap(), refund.await.unwrap());
        match (&redeemed, &refunded) {
            (RecordOutcome::Recorded { order, .. }, MarkOutcome::Redeemed(r)) => {
                assert_eq!(r.order_id, order.id);
            }
            (RecordOutcome::RefundedBeforeRedemption { .. }, MarkOutcome::Marked) => {}
            other => panic!("round {round}: the refund was lost: {other:?}"),
        }
    }
}
