//! The longest values the edges accept fit the columns, on PostgreSQL (which enforces a column's
//! length) and SQLite (which does not) alike: a Google purchase without an order id is keyed by
//! its purchase token (up to `MAX_TOKEN_LEN`), and the game server's acknowledgement reference is
//! its own text. Either one failing its column after the store was paid, or after the game
//! granted, would leave the order stuck.

use std::collections::BTreeMap;
use std::time::Duration;

use iap_domain::delivery::{Claim, DeliveryStore, GameAck};
use iap_domain::ports::{
    CreateOutcome, OrderRepository, PaymentLedger, PaymentTarget, PaymentToRecord, RecordOutcome,
};
use iap_domain::purchase::{PurchaseStatus, VerifiedPurchase};
use iap_domain::store_ids::MAX_TOKEN_LEN;
use iap_domain::{
    AppId, BindingReason, Environment, NewOrder, OrderId, OrderState, Platform, ProductId,
    ProductKind, UserId,
};
use iap_storage::{PoolOptions, Storage};
use iap_test_support::{TestDatabase, TestSqlite};

fn new_order() -> NewOrder {
    NewOrder {
        id: OrderId::new(),
        app_id: AppId::parse("com.example.game").unwrap(),
        user_id: UserId::parse("long-ids").unwrap(),
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

/// A Google purchase without an order id: its token is its store transaction id.
fn tokened_purchase(token: &str) -> VerifiedPurchase {
    VerifiedPurchase {
        platform: Platform::Google,
        environment: Environment::Sandbox,
        store_transaction_id: token.to_owned(),
        original_transaction_id: None,
        purchase_token: Some(token.to_owned()),
        store_order_id: None,
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

async fn exercise(storage: &Storage) {
    storage.migrate().await.unwrap();
    let CreateOutcome::Created(order) = storage.create_order(new_order()).await.unwrap() else {
        panic!("created")
    };
    let token: String = "tK.-_9".chars().cycle().take(MAX_TOKEN_LEN).collect();
    let recorded = storage
        .record_payment(PaymentToRecord {
            target: PaymentTarget::ExistingOrder(order.id),
            purchase: tokened_purchase(&token),
            app_id: order.app_id.clone(),
            user_id: order.user_id.clone(),
            binding_reason: BindingReason::CallerOrderId,
            trial_group: None,
            subscription: None,
        })
        .await
        .expect("a purchase keyed by its longest token is recorded");
    let RecordOutcome::Recorded { order: paid, .. } = recorded else {
        panic!("recorded: {recorded:?}")
    };
    assert_eq!(paid.store_transaction_id.as_deref(), Some(token.as_str()));
    let found = storage
        .find_purchase_by_token(Platform::Google, &token)
        .await
        .unwrap()
        .expect("found by its token");
    assert_eq!(found.order_id, order.id);

    let Claim::Grant(claimed) = storage
        .claim(order.id, Duration::from_secs(30))
        .await
        .unwrap()
    else {
        panic!("claimed to grant")
    };
    let reference = "r".repeat(4_000);
    let delivered = storage
        .record_granted(
            &claimed,
            &GameAck {
                reference,
                duplicate: false,
            },
            1,
        )
        .await
        .expect("a long acknowledgement reference is recorded")
        .expect("not fenced");
    assert_eq!(delivered.state, OrderState::Delivered);
}

#[tokio::test]
async fn the_longest_accepted_values_fit_on_postgres() {
    let db = TestDatabase::create().await;
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    exercise(&storage).await;
}

#[tokio::test]
async fn the_longest_accepted_values_fit_on_sqlite() {
    let db = TestSqlite::create("long-ids");
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    exercise(&storage).await;
    storage.close().await;
}
