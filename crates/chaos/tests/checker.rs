//! The soak's checker finds what it is there to find: a lost grant, a duplicate, a grant of an
//! unpaid purchase, a refund never revoked, an order left owing work, a purchase never
//! confirmed at the store.

use iap_chaos::checker::check;
use iap_chaos::{Fate, Purchase, Store};
use iap_domain::order::{NewOrder, Platform, ProductKind};
use iap_domain::ports::OrderRepository;
use iap_domain::{AppId, OrderId, ProductId, UserId};
use iap_game_server::{GrantRequest, Ledger};
use iap_storage::{PoolOptions, Storage};
use iap_test_support::TestDatabase;
use iap_test_support::emulator::Emulator;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

const APP: &str = "com.example.game";

struct Bench {
    _db: TestDatabase,
    storage: Storage,
    emulator: Emulator,
    ledger: Ledger,
    purchases: Vec<Purchase>,
}

impl Bench {
    async fn new() -> Self {
        let db = TestDatabase::create().await;
        let storage = Storage::connect(db.url(), &PoolOptions::default())
            .await
            .unwrap();
        storage.migrate().await.unwrap();
        Self {
            _db: db,
            storage,
            emulator: Emulator::start().await,
            ledger: Ledger::in_memory(),
            purchases: Vec::new(),
        }
    }

    /// A purchase of `fate` whose order is in `state`. A Google one is made at the emulator
    /// and left unconsumed; an Apple one has nothing to confirm at the store.
    async fn purchase(&mut self, store: Store, fate: Fate, state: &str) -> Purchase {
        let index = self.purchases.len();
        let user = format!("player-{index}");
        let id = OrderId::new();
        self.storage
            .create_order(NewOrder {
                id,
                app_id: AppId::parse(APP).unwrap(),
                user_id: UserId::parse(&user).unwrap(),
                product_id: ProductId::parse("gems_100").unwrap(),
                platform: match store {
                    Store::Apple => Platform::Apple,
                    _ => Platform::Google,
                },
                quantity: 1,
                product_kind: ProductKind::Consumable,
                expected_price: None,
                metadata: Default::default(),
                idempotency_key: None,
                manual: false,
            })
            .await
            .unwrap();
        let sql = format!("UPDATE orders SET state = '{state}' WHERE id = '{id}'");
        let db = self.storage.connection();
        db.execute(Statement::from_string(db.get_database_backend(), sql))
            .await
            .unwrap();
        let store_ref = if store == Store::Google {
            let made = self
                .emulator
                .post_json(
                    "/emulator/google/purchases",
                    json!({ "package_name": APP, "product_id": "gems_100", "kind": "inapp" }),
                )
                .await;
            made["purchase_token"].as_str().unwrap().to_owned()
        } else {
            format!("2000000{index:09}")
        };
        let paid = matches!(fate, Fate::Verifies | Fate::Refunded);
        let purchase = Purchase {
            index,
            store,
            fate,
            user_id: user,
            order_id: Some(id.to_string()),
            store_ref: Some(store_ref),
            paid,
            refunded: fate == Fate::Refunded,
            client_gave_up: false,
            transient_errors: 0,
        };
        self.purchases.push(purchase.clone());
        purchase
    }

    fn grant(&self, p: &Purchase, grant_id: &str) {
        self.ledger
            .grant(&GrantRequest {
                grant_id: grant_id.into(),
                order_id: p.order_id.clone().unwrap(),
                app_id: APP.into(),
                user_id: p.user_id.clone(),
                product_id: "gems_100".into(),
                quantity: 1,
            })
            .unwrap();
    }

    async fn violations(&self) -> Vec<String> {
        check(
            &self.purchases,
            &self.ledger,
            self.storage.connection(),
            &reqwest::Client::new(),
            &self.emulator.base,
        )
        .await
        .unwrap()
        .violations
    }
}

#[tokio::test]
async fn a_clean_history_passes_and_each_kind_of_breakage_is_reported() {
    let mut b = Bench::new().await;
    let good = b.purchase(Store::Apple, Fate::Verifies, "CONFIRMED").await;
    b.grant(&good, "g-good");
    let abandoned = b.purchase(Store::Apple, Fate::Abandons, "CREATED").await;
    assert_eq!(
        b.violations().await,
        Vec::<String>::new(),
        "a clean history"
    );

    // Paid, confirmed in our database, but the game never got it.
    let lost = b.purchase(Store::Apple, Fate::Verifies, "CONFIRMED").await;
    let found = b.violations().await;
    assert!(
        found
            .iter()
            .any(|v| v.starts_with("LOST") && v.contains(&lost.order_id.clone().unwrap())),
        "{found:?}"
    );

    // Granted twice under two grant ids.
    b.grant(&lost, "g-lost-1");
    b.grant(&lost, "g-lost-2");
    let found = b.violations().await;
    assert!(
        found.iter().any(|v| v.starts_with("DUPLICATE")),
        "{found:?}"
    );

    // Never paid, yet granted.
    b.grant(&abandoned, "g-abandoned");
    let found = b.violations().await;
    assert!(
        found.iter().any(|v| v.contains("never paid, yet granted")),
        "{found:?}"
    );

    // Refunded but still held by the player, and the order not marked refunded.
    let refunded = b.purchase(Store::Apple, Fate::Refunded, "CONFIRMED").await;
    b.grant(&refunded, "g-refunded");
    let found = b.violations().await;
    assert!(
        found
            .iter()
            .any(|v| v.contains("refunded, but the player still holds 1")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|v| v.contains("refunded, but the order is CONFIRMED")),
        "{found:?}"
    );

    // An order left owing work, and a purchase the store never saw consumed.
    let stuck = b.purchase(Store::Google, Fate::Verifies, "DELIVERED").await;
    b.grant(&stuck, "g-stuck");
    let found = b.violations().await;
    assert!(
        found.iter().any(|v| v.contains("left in DELIVERED")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|v| v.contains("never consumed at Google Play")),
        "{found:?}"
    );
}
