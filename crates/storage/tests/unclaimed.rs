//! Unclaimed purchases on PostgreSQL (fresh database per test) and SQLite: kept once per store
//! purchase, claimed once in one commit with the payment and its audit entry, resolved by a
//! normal redemption, never claimable after a refund.

use std::collections::BTreeMap;
use std::sync::Arc;

use iap_domain::admin::AuditEntry;
use iap_domain::ports::{
    MarkOutcome, PaymentLedger, PaymentTarget, PaymentToRecord, RecordOutcome, RefundMark,
};
use iap_domain::purchase::{PurchaseProof, PurchaseStatus, VerifiedPurchase};
use iap_domain::unclaimed::{
    ClaimOutcome, ClaimToRecord, KeepOutcome, UnclaimedFilter, UnclaimedState, UnclaimedStore,
    UnclaimedToKeep,
};
use iap_domain::{
    AppId, BindingReason, Environment, NewOrder, OrderId, OrderState, Platform, ProductId,
    ProductKind, UserId,
};
use iap_storage::{PoolOptions, Storage};
use iap_test_support::{TestDatabase, TestSqlite};
use sea_orm::{ConnectionTrait, Statement};

fn app() -> AppId {
    AppId::parse("com.example.game").unwrap()
}

fn purchase(token: &str) -> VerifiedPurchase {
    VerifiedPurchase {
        platform: Platform::Google,
        environment: Environment::Production,
        store_transaction_id: token.to_owned(),
        original_transaction_id: None,
        purchase_token: Some(token.to_owned()),
        store_order_id: Some(format!("GPA.{token}")),
        product_id: ProductId::parse("gems_100").unwrap(),
        quantity: 3,
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
        raw: serde_json::json!({}),
        finish_withheld: false,
        latest_receipt: None,
    }
}

fn keep(token: &str) -> UnclaimedToKeep {
    UnclaimedToKeep {
        app_id: app(),
        purchase: purchase(token),
        proof: PurchaseProof::Google {
            purchase_token: token.to_owned(),
            product_id: ProductId::parse("gems_100").unwrap(),
            signed_data: None,
        },
        source: "ONE_TIME_PRODUCT_PURCHASED".into(),
    }
}

fn payment(token: &str, user: &str, binding: BindingReason) -> PaymentToRecord {
    let new = NewOrder {
        id: OrderId::new(),
        app_id: app(),
        user_id: UserId::parse(user).unwrap(),
        product_id: ProductId::parse("gems_100").unwrap(),
        platform: Platform::Google,
        quantity: 3,
        product_kind: ProductKind::Consumable,
        expected_price: None,
        metadata: BTreeMap::new(),
        idempotency_key: None,
        manual: false,
    };
    PaymentToRecord {
        target: PaymentTarget::NewOrder(new),
        purchase: purchase(token),
        app_id: app(),
        user_id: UserId::parse(user).unwrap(),
        binding_reason: binding,
        trial_group: None,
        subscription: None,
    }
}

fn claim(id: uuid::Uuid, token: &str, user: &str, operator: &str) -> ClaimToRecord {
    let payment = payment(token, user, BindingReason::ClaimedByOperator);
    let PaymentTarget::NewOrder(new) = &payment.target else {
        unreachable!()
    };
    let audit = AuditEntry {
        operator: operator.into(),
        action: "claim_unclaimed",
        order_id: Some(new.id),
        reason: "ticket 1".into(),
        detail: serde_json::json!({ "unclaimed_id": id.to_string() }),
        idempotency_key: None,
    };
    ClaimToRecord { id, payment, audit }
}

async fn kept_id(storage: &Storage, token: &str) -> (uuid::Uuid, bool) {
    match storage.keep_unclaimed(keep(token)).await.unwrap() {
        KeepOutcome::Kept { purchase, new } => (purchase.id, new),
        other => panic!("not kept: {other:?}"),
    }
}

async fn count(storage: &Storage, table: &str, condition: &str) -> i64 {
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

async fn exercise(storage: &Storage) {
    storage.migrate().await.unwrap();

    // Kept once, however often it is reported; its proof comes back intact.
    let (id, new) = kept_id(storage, "tok-a").await;
    assert!(new);
    let (again, new) = kept_id(storage, "tok-a").await;
    assert_eq!((again, new), (id, false));
    assert_eq!(count(storage, "unclaimed_purchases", "1 = 1").await, 1);
    let kept = storage.kept_purchase(id).await.unwrap().unwrap();
    assert_eq!(kept.proof, keep("tok-a").proof);
    assert_eq!(kept.purchase.quantity, 3);
    assert_eq!(kept.purchase.state(), UnclaimedState::Open);
    assert!(kept.purchase.last_seen_at >= kept.purchase.first_seen_at);

    // Listed, found by any store id, counted.
    let (other, _) = kept_id(storage, "tok-b").await;
    let open = storage
        .list_unclaimed(&UnclaimedFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(
        open.iter().map(|p| p.id).collect::<Vec<_>>(),
        [id, other],
        "oldest first"
    );
    let page = storage
        .list_unclaimed(&UnclaimedFilter::default(), None, 1)
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(
        storage.find_unclaimed("GPA.tok-b").await.unwrap()[0].id,
        other
    );
    let gauges = storage.open_unclaimed().await.unwrap();
    assert_eq!(gauges.len(), 1);
    assert_eq!((gauges[0].platform, gauges[0].count), (Platform::Google, 2));

    // Claimed once, in one commit with its order, outbox event and audit entry.
    let claimed = storage
        .claim_unclaimed(claim(id, "tok-a", "alice", "op-1"))
        .await
        .unwrap();
    let ClaimOutcome::Claimed(order) = claimed else {
        panic!("not claimed: {claimed:?}")
    };
    assert_eq!(order.state, OrderState::Paid);
    assert_eq!(order.quantity, 3);
    assert_eq!(order.binding_reason, Some(BindingReason::ClaimedByOperator));
    let row = storage.kept_purchase(id).await.unwrap().unwrap().purchase;
    let done = row.claim.clone().unwrap();
    assert_eq!(
        (
            done.user_id.as_str(),
            done.order_id,
            done.operator.as_deref()
        ),
        ("alice", order.id, Some("op-1"))
    );
    assert_eq!(
        count(
            storage,
            "audit_log",
            "action = 'claim_unclaimed' AND actor = 'op-1'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            storage,
            "outbox",
            &format!("order_id = '{}' AND kind = 'order.paid'", order.id)
        )
        .await,
        1
    );
    // A second claim, by anyone, writes nothing.
    let second = storage
        .claim_unclaimed(claim(id, "tok-a", "bob", "op-2"))
        .await
        .unwrap();
    assert!(matches!(second, ClaimOutcome::AlreadyClaimed(c) if c.user_id.as_str() == "alice"));
    assert_eq!(count(storage, "orders", "1 = 1").await, 1);
    assert_eq!(count(storage, "audit_log", "1 = 1").await, 1);
    // Kept again after its claim: it is redeemed, nothing is kept.
    assert!(matches!(
        storage.keep_unclaimed(keep("tok-a")).await.unwrap(),
        KeepOutcome::Redeemed(r) if r.order_id == order.id
    ));

    // A normal redemption resolves the open row in its own commit.
    let recorded = storage
        .record_payment(payment(
            "tok-b",
            "carol",
            BindingReason::CreatedAtVerification,
        ))
        .await
        .unwrap();
    let RecordOutcome::Recorded { order: paid, .. } = recorded else {
        panic!("not recorded: {recorded:?}")
    };
    let row = storage
        .kept_purchase(other)
        .await
        .unwrap()
        .unwrap()
        .purchase;
    assert_eq!(row.state(), UnclaimedState::Claimed);
    let done = row.claim.unwrap();
    assert_eq!((done.user_id.as_str(), done.order_id), ("carol", paid.id));
    assert_eq!(done.operator, None);
    assert!(
        storage
            .list_unclaimed(&UnclaimedFilter::default(), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let all = UnclaimedFilter {
        include_settled: true,
        ..Default::default()
    };
    assert_eq!(
        storage.list_unclaimed(&all, None, 10).await.unwrap().len(),
        2
    );

    // Refunded while unclaimed (by token or store order id): not claimable, not counted.
    let (refunded, _) = kept_id(storage, "tok-c").await;
    let mark = RefundMark {
        platform: Platform::Google,
        store_keys: vec!["GPA.tok-c".into()],
        revoked: false,
        source: "test".into(),
    };
    assert_eq!(
        storage.mark_refund(mark).await.unwrap(),
        MarkOutcome::Marked
    );
    let row = storage
        .kept_purchase(refunded)
        .await
        .unwrap()
        .unwrap()
        .purchase;
    assert_eq!(row.state(), UnclaimedState::Refunded);
    assert_eq!(
        storage
            .claim_unclaimed(claim(refunded, "tok-c", "dave", "op-3"))
            .await
            .unwrap(),
        ClaimOutcome::Refunded
    );
    assert!(storage.open_unclaimed().await.unwrap().is_empty());
    // A purchase refunded before it is first kept is kept as refunded.
    let mark = RefundMark {
        platform: Platform::Google,
        store_keys: vec!["tok-d".into()],
        revoked: true,
        source: "test".into(),
    };
    storage.mark_refund(mark).await.unwrap();
    let (early, _) = kept_id(storage, "tok-d").await;
    let row = storage
        .kept_purchase(early)
        .await
        .unwrap()
        .unwrap()
        .purchase;
    assert_eq!(row.state(), UnclaimedState::Refunded);
    assert_eq!(count(storage, "orders", "1 = 1").await, 2);
    assert_eq!(
        storage
            .claim_unclaimed(claim(uuid::Uuid::now_v7(), "tok-x", "erin", "op-4"))
            .await
            .unwrap(),
        ClaimOutcome::NotFound
    );
}

#[tokio::test]
async fn unclaimed_purchases_on_postgres() {
    let db = TestDatabase::create().await;
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    exercise(&storage).await;
}

#[tokio::test]
async fn unclaimed_purchases_on_sqlite() {
    let db = TestSqlite::create("unclaimed");
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    exercise(&storage).await;
    storage.close().await;
}

/// Sixteen operators claiming one kept purchase at once, for different users: one claim commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_commit_once_on_postgres() {
    let db = TestDatabase::create().await;
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    storage.migrate().await.unwrap();
    let (id, _) = kept_id(&storage, "tok-race").await;
    let storage = Arc::new(storage);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let storage = storage.clone();
            tokio::spawn(async move {
                storage
                    .claim_unclaimed(claim(id, "tok-race", &format!("user-{i}"), "op"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut claimed = 0;
    for task in tasks {
        match task.await.unwrap() {
            ClaimOutcome::Claimed(_) => claimed += 1,
            ClaimOutcome::AlreadyClaimed(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(claimed, 1);
    assert_eq!(count(&storage, "orders", "1 = 1").await, 1);
    assert_eq!(count(&storage, "store_transactions", "1 = 1").await, 1);
    assert_eq!(count(&storage, "audit_log", "1 = 1").await, 1);
}
