//! Free trials farmed with many game accounts and one store account (seed 003 rule 8). A trial
//! is still granted — the store charges for the period after it, and refusing would lose a paid
//! order — but the second trial one Apple Account takes in a subscription group is flagged, in
//! the reply and in `iap_repeat_trials_total`, however many game accounts it is spread over.
//! The store account is the one Apple signs (`appTransactionId`), never our own order id.

mod common;

use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use serde_json::json;

use common::{APP, World};

/// A free trial of `vip_monthly` bought by `apple_account` for `user`'s new order, verified.
async fn trial(w: &World, user: &str, apple_account: &str) -> pb::VerifyPurchaseResponse {
    let created = OrderServiceClient::new(w.verifier_channel())
        .create_order(pb::CreateOrderRequest {
            app_id: APP.into(),
            user_id: user.into(),
            product_id: "vip_monthly".into(),
            platform: pb::Platform::Apple.into(),
            quantity: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let order = created.order.unwrap().order_id;
    let bought = w
        .store
        .post_json(
            "/emulator/apple/purchases",
            json!({ "bundle_id": APP, "product_id": "vip_monthly",
                "product_type": "Auto-Renewable Subscription", "environment": "Production",
                "subscription_group": "vip", "free_trial": true, "customer": apple_account,
                "app_account_token": order }),
        )
        .await;
    w.verify(pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: user.into(),
        order_id: String::new(),
        purchase: Some(pb::verify_purchase_request::Purchase::Apple(
            pb::ApplePurchase {
                proof: Some(pb::apple_purchase::Proof::SignedTransaction(
                    bought["signed_transaction"].as_str().unwrap().into(),
                )),
                ..Default::default()
            },
        )),
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_apple_account_farming_trials_over_game_accounts_is_flagged_and_still_granted() {
    let w = World::start().await;
    let first = trial(&w, "farmer-1", "apple-account-farmer").await;
    assert!(!first.repeat_trial, "the account's first trial");
    for user in ["farmer-2", "farmer-3"] {
        let again = trial(&w, user, "apple-account-farmer").await;
        assert!(
            again.repeat_trial,
            "{user}: the same Apple Account's trial again"
        );
        assert_eq!(again.order.unwrap().state(), pb::OrderState::Paid);
    }
    let honest = trial(&w, "someone-else", "apple-account-honest").await;
    assert!(!honest.repeat_trial, "another Apple Account's first trial");

    // Granted all the same, each once.
    w.sweep_until_quiet(5).await;
    let ledger = w.game.ledger();
    for user in ["farmer-1", "farmer-2", "farmer-3", "someone-else"] {
        assert_eq!(ledger.balance(APP, user, "vip_monthly"), 1, "{user}");
    }
    assert_eq!(ledger.stats().grant_effects, 4);
}
