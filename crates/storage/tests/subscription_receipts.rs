//! The receipt kept with a subscription (Apple `latest_receipt`), on PostgreSQL and SQLite: the
//! first period stores it, a change with a newer one replaces it, a change without one (a
//! refresh through the App Store Server API) keeps it.

use std::collections::BTreeMap;

use iap_domain::ports::{PaymentLedger, PaymentTarget, PaymentToRecord, RecordOutcome};
use iap_domain::purchase::{PurchaseStatus, StoreReceipt, VerifiedPurchase};
use iap_domain::subscriptions::{
    NewSubscription, SubscriptionChange, SubscriptionState, SubscriptionStore,
};
use iap_domain::{
    AppId, BindingReason, Environment, NewOrder, OrderId, Platform, ProductId, ProductKind, UserId,
};
use iap_storage::{PoolOptions, Storage};
use iap_test_support::TestDatabase;

fn first_period(receipt: &str) -> PaymentToRecord {
    let product = ProductId::parse("vip_monthly").unwrap();
    let expires = chrono::Utc::now() + chrono::Duration::days(30);
    PaymentToRecord {
        target: PaymentTarget::NewOrder(NewOrder {
            id: OrderId::new(),
            app_id: AppId::parse("com.example.game").unwrap(),
            user_id: UserId::parse("hana").unwrap(),
            product_id: product.clone(),
            platform: Platform::Apple,
            quantity: 1,
            product_kind: ProductKind::AutoRenewable,
            expected_price: None,
            metadata: BTreeMap::new(),
            idempotency_key: None,
            manual: false,
        }),
        purchase: VerifiedPurchase {
            platform: Platform::Apple,
            environment: Environment::Production,
            store_transaction_id: "2000000001".into(),
            original_transaction_id: Some("2000000001".into()),
            purchase_token: None,
            store_order_id: Some("2000000101".into()),
            product_id: product,
            quantity: 1,
            status: PurchaseStatus::Purchased,
            purchased_at: Some(chrono::Utc::now()),
            expires_at: Some(expires),
            carried_order_id: None,
            store_account_id: None,
            is_trial: false,
            price: None,
            kind: None,
            linked_purchase_token: None,
            acknowledged: None,
            consumed: None,
            subscription_status: None,
            subscription_group: Some("vip".into()),
            raw: serde_json::json!({}),
            finish_withheld: false,
            latest_receipt: Some(StoreReceipt::new(receipt)),
        },
        app_id: AppId::parse("com.example.game").unwrap(),
        user_id: UserId::parse("hana").unwrap(),
        binding_reason: BindingReason::CallerOrderId,
        trial_group: None,
        subscription: Some(NewSubscription {
            key: "2000000001".into(),
            state: SubscriptionState::Active,
            next_check_at: Some(expires),
        }),
    }
}

fn change(receipt: Option<&str>) -> SubscriptionChange {
    SubscriptionChange {
        state: SubscriptionState::Active,
        product_id: ProductId::parse("vip_monthly").unwrap(),
        expires_at: Some(chrono::Utc::now() + chrono::Duration::days(30)),
        grace_until: None,
        auto_renew: true,
        auto_renew_product_id: None,
        price_change_state: None,
        latest_period: None,
        replaced_by: None,
        latest_receipt: receipt.map(StoreReceipt::new),
        next_check_at: None,
        bump_version: false,
    }
}

async fn exercise(storage: &Storage) {
    storage.migrate().await.unwrap();
    let recorded = storage.record_payment(first_period("cmVjZWlwdC0x")).await;
    assert!(
        matches!(recorded, Ok(RecordOutcome::Recorded { .. })),
        "{recorded:?}"
    );
    let kept = || async {
        storage
            .find_subscription(Platform::Apple, "2000000001")
            .await
            .unwrap()
            .unwrap()
    };
    let first = kept().await;
    assert_eq!(
        first.latest_receipt,
        Some(StoreReceipt::new("cmVjZWlwdC0x"))
    );

    let unchanged = storage
        .apply_subscription_change(&first.id, first.version, &change(None))
        .await
        .unwrap()
        .expect("the version read is current");
    assert_eq!(
        unchanged.latest_receipt, first.latest_receipt,
        "kept without a newer one"
    );

    let newer = storage
        .apply_subscription_change(
            &unchanged.id,
            unchanged.version,
            &change(Some("cmVjZWlwdC0y")),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        newer.latest_receipt,
        Some(StoreReceipt::new("cmVjZWlwdC0y"))
    );
    assert_eq!(kept().await.latest_receipt, newer.latest_receipt);
}

#[tokio::test]
async fn subscription_receipts_on_postgres() {
    let db = TestDatabase::create().await;
    let storage = Storage::connect(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    exercise(&storage).await;
}

#[tokio::test]
async fn subscription_receipts_on_sqlite() {
    let storage = Storage::connect("sqlite::memory:", &PoolOptions::default())
        .await
        .unwrap();
    exercise(&storage).await;
}
