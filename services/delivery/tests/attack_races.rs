//! Two players racing for one purchase. A cheater who got hold of another player's purchase token
//! (a shared account, a leaked log, a man-in-the-middle on a rooted phone) sends it at the same
//! moment as its owner, many times over. One store purchase pays one order for one user: the
//! game ledger must show exactly one unit, to one player, whoever wins.

mod common;

use std::sync::Arc;

use iap_proto::v1 as pb;
use serde_json::json;
use tonic_types::StatusExt;

use common::{APP, World};

/// `rounds` concurrent VerifyPurchase calls, alternating between the two users; then delivery.
/// Returns each user's balance and the reasons the losers were given.
async fn race(
    w: &Arc<World>,
    request: pb::VerifyPurchaseRequest,
    rounds: usize,
) -> (i64, i64, Vec<String>) {
    let calls: Vec<_> = (0..rounds)
        .map(|i| {
            let w = w.clone();
            let mut request = request.clone();
            request.user_id = if i % 2 == 0 { "owner" } else { "cheater" }.into();
            tokio::spawn(async move { w.verify(request).await })
        })
        .collect();
    let mut refusals = Vec::new();
    for call in calls {
        if let Err(status) = call.await.unwrap() {
            let reason = status
                .get_details_error_info()
                .map_or_else(|| format!("{status:?}"), |info| info.reason);
            refusals.push(reason);
        }
    }
    w.sweep_until_quiet(10).await;
    let ledger = w.game.ledger();
    (
        ledger.balance(APP, "owner", "gems_100"),
        ledger.balance(APP, "cheater", "gems_100"),
        refusals,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bound_purchase_goes_to_its_owner_however_the_race_falls() {
    let w = Arc::new(World::start().await);
    let request = w.purchase("owner", "gems_100").await;
    let (owner, cheater, refusals) = race(&w, request, 16).await;
    assert_eq!(
        (owner, cheater),
        (1, 0),
        "the unit goes to the order's user"
    );
    assert_eq!(
        refusals.len(),
        8,
        "every cheater call is refused: {refusals:?}"
    );
    assert!(
        refusals
            .iter()
            .all(|r| r == "ORDER_MISMATCH" || r == "REPLAYED_FOR_OTHER_USER"),
        "{refusals:?}"
    );
    assert_eq!(w.game.ledger().stats().grant_effects, 1);
    assert_eq!(w.count("store_transactions", "1 = 1").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unbound_purchase_is_granted_once_to_whoever_redeemed_it_first() {
    let w = Arc::new(World::start().await);
    // A purchase that carries no order of ours (the client never called CreateOrder).
    let made = w
        .store
        .post_json(
            "/emulator/google/purchases",
            json!({ "package_name": APP, "product_id": "gems_100", "kind": "inapp" }),
        )
        .await;
    let request = pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: String::new(),
        order_id: String::new(),
        purchase: Some(pb::verify_purchase_request::Purchase::Google(
            pb::GooglePurchase {
                purchase_token: made["purchase_token"].as_str().unwrap().into(),
                product_id: "gems_100".into(),
                original_json: made["original_json"].as_str().unwrap().into(),
                signature: made["signature"].as_str().unwrap().into(),
            },
        )),
    };
    let (owner, cheater, refusals) = race(&w, request, 16).await;
    assert_eq!(owner + cheater, 1, "one unit in all: {owner} + {cheater}");
    assert!(
        refusals.iter().all(|r| r == "REPLAYED_FOR_OTHER_USER"),
        "{refusals:?}"
    );
    assert_eq!(
        refusals.len(),
        8,
        "the winner's retries succeed, the other's fail"
    );
    assert_eq!(w.game.ledger().stats().grant_effects, 1);
}
