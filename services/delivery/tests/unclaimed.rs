//! Paid but unclaimed. A player pays in a client that never sent an order (no Apple
//! `appAccountToken`) and never calls VerifyPurchase: the store's notification is the only trace
//! of the money. It must be kept — once, however often the store (or an operator) replays it —
//! counted, listed, granted to exactly one user by an operator's audited claim or by the
//! player's own later redemption, and never after the store refunded it. Each test asserts the
//! game ledger: the paid units, once, or nothing.

mod common;

use iap_domain::unclaimed::UnclaimedStore;
use iap_proto::v1 as pb;
use iap_proto::v1::admin_service_client::AdminServiceClient;
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;

use common::{APP, World};

/// An Apple purchase made without an order: no `appAccountToken`, so nothing names its player.
async fn apple_buy_unbound(w: &World) -> Value {
    w.store
        .post_json(
            "/emulator/apple/purchases",
            json!({ "bundle_id": APP, "product_id": "gems_100", "product_type": "Consumable",
                "environment": "Production" }),
        )
        .await
}

fn admin(w: &World) -> AdminServiceClient<tonic::transport::Channel> {
    AdminServiceClient::new(w.verifier_channel())
}

async fn open_unclaimed(w: &World) -> Vec<pb::UnclaimedPurchase> {
    admin(w)
        .list_unclaimed_purchases(pb::ListUnclaimedPurchasesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .purchases
}

async fn claim(
    w: &World,
    id: &str,
    user: &str,
    operator: &str,
) -> Result<pb::ClaimUnclaimedPurchaseResponse, tonic::Status> {
    admin(w)
        .claim_unclaimed_purchase(pb::ClaimUnclaimedPurchaseRequest {
            id: id.into(),
            user_id: user.into(),
            operator: operator.into(),
            reason: "ticket 4711: receipt e-mail matched the player".into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo on {status:?}"))
        .reason
}

/// The signed transaction the player's client still holds, redeemed through VerifyPurchase.
async fn client_verifies(
    w: &World,
    user: &str,
    signed: &str,
) -> Result<pb::VerifyPurchaseResponse, tonic::Status> {
    w.verify(pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: user.into(),
        order_id: String::new(),
        purchase: Some(pb::verify_purchase_request::Purchase::Apple(
            pb::ApplePurchase {
                proof: Some(pb::apple_purchase::Proof::SignedTransaction(signed.into())),
                ..Default::default()
            },
        )),
    })
    .await
}

/// The scheduler's gauge job over this world's database, read back as Prometheus text.
async fn gauges(w: &World) -> String {
    let recorder = iap_runtime::telemetry::build_recorder();
    let handle = recorder.handle();
    // Thread-local: the job runs on this test's own thread (it spawns nothing).
    let _local = metrics::set_default_local_recorder(&recorder);
    iap_app::scheduler::OrderGauges::new(w.storage.clone())
        .run_once()
        .await
        .unwrap();
    handle.render()
}

fn gauge(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// A notification with no account token and no order keeps the purchase (once, replays
/// included) and grants nothing; an operator's claim grants it once and is audited; a second
/// claim and a replay of the proof by anyone grant nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paid_purchase_nobody_can_be_found_for_is_kept_then_granted_once_by_a_claim() {
    let w = World::start().await;
    w.notify_here("apple", 1).await;
    let bought = apple_buy_unbound(&w).await;
    let transaction = bought["transaction_id"].as_str().unwrap().to_owned();
    w.pushed(2).await;
    w.settle().await;

    assert_eq!(w.game.ledger().stats().grant_effects, 0, "nothing granted");
    let kept = open_unclaimed(&w).await;
    assert_eq!(kept.len(), 1, "kept once: {kept:?}");
    let row = &kept[0];
    assert_eq!(row.state(), pb::UnclaimedPurchaseState::Open);
    assert_eq!(row.store_transaction_id, transaction);
    assert_eq!(
        (row.product_id.as_str(), row.quantity, row.platform()),
        ("gems_100", 1, pb::Platform::Apple)
    );
    assert_eq!(row.environment(), pb::Environment::Production);
    let text = gauges(&w).await;
    assert_eq!(
        gauge(&text, "iap_unclaimed_purchases{store=\"apple\"}"),
        1.0
    );
    assert_eq!(
        gauge(&text, "iap_unclaimed_purchases{store=\"google\"}"),
        0.0
    );
    assert!(
        gauge(
            &text,
            "iap_unclaimed_purchases_oldest_age_seconds{store=\"apple\"}"
        ) >= 0.0
    );

    // An operator replays the store's notification: still one row.
    let charge = admin(&w)
        .list_notifications(pb::ListNotificationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .notifications
        .into_iter()
        .find(|n| n.notification_type.starts_with("ONE_TIME_CHARGE"))
        .expect("the purchase's notification is stored");
    admin(&w)
        .replay_notification(pb::ReplayNotificationRequest {
            id: charge.id,
            operator: "ops".into(),
            reason: "replay test".into(),
        })
        .await
        .unwrap();
    w.settle().await;
    assert_eq!(w.count("unclaimed_purchases", "1 = 1").await, 1);
    assert_eq!(
        w.count(
            "notifications",
            "outcome LIKE '%kept unclaimed%(kept before)%'"
        )
        .await,
        1,
        "the replay found the kept row"
    );

    // The lookup by the store's id shows it.
    let found = admin(&w)
        .lookup_order(pb::LookupOrderRequest {
            id: transaction.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(found.matches.is_empty());
    assert_eq!(found.unclaimed.len(), 1);

    // Support identifies the player and claims it for them.
    let claimed = claim(&w, &row.id, "rightful-player", "alice")
        .await
        .unwrap();
    let order = claimed.order.unwrap();
    assert_eq!(order.user_id, "rightful-player");
    assert_eq!(order.binding_reason(), pb::BindingReason::ClaimedByOperator);
    let purchase = claimed.purchase.unwrap();
    assert_eq!(purchase.state(), pb::UnclaimedPurchaseState::Claimed);
    assert_eq!(purchase.claimed_order_id, order.order_id);
    assert_eq!(purchase.claimed_by_operator, "alice");
    w.sweep_until_quiet(5).await;
    let ledger = w.game.ledger();
    assert_eq!(ledger.balance(APP, "rightful-player", "gems_100"), 1);
    assert_eq!(ledger.stats().grant_effects, 1);
    assert_eq!(
        w.count(
            "audit_log",
            &format!(
                "action = 'claim_unclaimed' AND actor = 'alice' AND order_id = '{}'",
                order.order_id
            )
        )
        .await,
        1,
        "the claim is audited with its operator and order"
    );

    // A second claim, to anyone, is refused and changes nothing.
    for user in ["rightful-player", "someone-else"] {
        let refused = claim(&w, &row.id, user, "bob").await.unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert_eq!(reason(&refused), "UNCLAIMED_PURCHASE_ALREADY_CLAIMED");
    }
    assert_eq!(w.count("audit_log", "action = 'claim_unclaimed'").await, 1);

    // The signed transaction replayed by another player is refused; by the claimant it is the
    // same order.
    let signed = bought["signed_transaction"].as_str().unwrap();
    let other = client_verifies(&w, "someone-else", signed)
        .await
        .unwrap_err();
    assert_eq!(reason(&other), "REPLAYED_FOR_OTHER_USER");
    let same = client_verifies(&w, "rightful-player", signed)
        .await
        .unwrap();
    assert_eq!(same.order.unwrap().order_id, order.order_id);
    w.sweep_until_quiet(3).await;

    assert_eq!(
        w.game.ledger().stats().grant_effects,
        1,
        "granted once in all"
    );
    assert!(open_unclaimed(&w).await.is_empty());
    let text = gauges(&w).await;
    assert_eq!(
        gauge(&text, "iap_unclaimed_purchases{store=\"apple\"}"),
        0.0
    );
}

/// The player's own client redeems the kept purchase later: the normal path resolves the row in
/// its own commit, so an operator's claim afterwards grants nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_players_own_later_redemption_resolves_the_kept_purchase_one_grant_in_all() {
    let w = World::start().await;
    w.notify_here("apple", 0).await;
    let bought = apple_buy_unbound(&w).await;
    w.pushed(1).await;
    w.settle().await;
    let kept = open_unclaimed(&w).await;
    assert_eq!(kept.len(), 1);

    let signed = bought["signed_transaction"].as_str().unwrap();
    let verified = client_verifies(&w, "late-player", signed).await.unwrap();
    let order = verified.order.unwrap();
    w.sweep_until_quiet(5).await;
    assert_eq!(w.game.ledger().balance(APP, "late-player", "gems_100"), 1);

    assert!(open_unclaimed(&w).await.is_empty(), "resolved");
    let all = admin(&w)
        .list_unclaimed_purchases(pb::ListUnclaimedPurchasesRequest {
            include_settled: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .purchases;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].state(), pb::UnclaimedPurchaseState::Claimed);
    assert_eq!(all[0].claimed_user_id, "late-player");
    assert_eq!(all[0].claimed_order_id, order.order_id);
    assert_eq!(
        all[0].claimed_by_operator, "",
        "no operator: the player's own redemption"
    );

    let refused = claim(&w, &kept[0].id, "support-guess", "carol")
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "UNCLAIMED_PURCHASE_ALREADY_CLAIMED");
    w.sweep_until_quiet(3).await;
    let ledger = w.game.ledger();
    assert_eq!(ledger.stats().grant_effects, 1, "one grant in all");
    assert_eq!(ledger.balance(APP, "support-guess", "gems_100"), 0);
    assert_eq!(w.count("orders", "1 = 1").await, 1);
}

/// The store refunds the purchase while it is unclaimed: it leaves the open list and the gauge,
/// and neither a claim nor the kept proof grants it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purchase_refunded_while_unclaimed_cannot_be_claimed() {
    let w = World::start().await;
    w.notify_here("apple", 0).await;
    let bought = apple_buy_unbound(&w).await;
    w.pushed(1).await;
    w.settle().await;
    let kept = open_unclaimed(&w).await;
    assert_eq!(kept.len(), 1);

    let transaction = bought["transaction_id"].as_str().unwrap();
    w.store
        .post_json(
            &format!("/emulator/apple/transactions/{transaction}/refund"),
            json!({}),
        )
        .await;
    w.pushed(2).await;
    w.settle().await;

    assert!(open_unclaimed(&w).await.is_empty(), "no longer open");
    assert_eq!(w.storage.open_unclaimed().await.unwrap(), vec![]);
    let refused = claim(&w, &kept[0].id, "anyone", "dave").await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "UNCLAIMED_PURCHASE_REFUNDED");
    let signed = bought["signed_transaction"].as_str().unwrap();
    let replayed = client_verifies(&w, "anyone", signed).await.unwrap_err();
    assert_eq!(reason(&replayed), "REFUNDED");
    w.sweep_until_quiet(3).await;
    assert_eq!(w.game.ledger().stats().grant_effects, 0, "nothing granted");
    assert_eq!(w.count("orders", "1 = 1").await, 0);
    assert_eq!(
        w.count("audit_log", "1 = 1").await,
        0,
        "a refused claim leaves no trace"
    );
}

/// Bad claims get a machine-readable reason and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_of_unknown_purchases_or_without_an_operator_are_refused() {
    let w = World::start().await;
    w.notify_here("apple", 0).await;
    apple_buy_unbound(&w).await;
    w.pushed(1).await;
    w.settle().await;
    let kept = open_unclaimed(&w).await;

    let missing = claim(&w, &uuid::Uuid::now_v7().to_string(), "p", "erin")
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(reason(&missing), "UNCLAIMED_PURCHASE_NOT_FOUND");
    for (id, user, operator, field) in [
        ("not-a-uuid", "p", "erin", "id"),
        (kept[0].id.as_str(), "p", "", "operator"),
        (kept[0].id.as_str(), "", "erin", "user_id"),
    ] {
        let bad = claim(&w, id, user, operator).await.unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument, "{field}: {bad:?}");
        assert_eq!(
            bad.get_details_bad_request().unwrap().field_violations[0].field,
            field
        );
    }
    assert_eq!(open_unclaimed(&w).await.len(), 1, "still open");
    assert_eq!(w.count("orders", "1 = 1").await, 0);
}

/// A subscription bought without an order: its SUBSCRIBED notification names nobody, so the paid
/// first period is kept; a claim grants it once and makes the claimant the subscription's owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unowned_subscription_period_is_kept_and_its_claimant_owns_the_subscription() {
    let w = World::start().await;
    w.notify_here("apple", 0).await;
    w.store
        .post_json(
            "/emulator/apple/purchases",
            json!({ "bundle_id": APP, "product_id": "vip_monthly",
                "product_type": "Auto-Renewable Subscription", "environment": "Production" }),
        )
        .await;
    w.pushed(1).await;
    w.settle().await;
    let kept = open_unclaimed(&w).await;
    assert_eq!(kept.len(), 1, "the paid period is kept");
    assert_eq!(kept[0].product_id, "vip_monthly");
    assert_eq!(w.game.ledger().stats().grant_effects, 0);

    claim(&w, &kept[0].id, "subscriber", "frank").await.unwrap();
    w.sweep_until_quiet(5).await;
    assert_eq!(w.game.ledger().balance(APP, "subscriber", "vip_monthly"), 1);
    assert_eq!(w.game.ledger().stats().grant_effects, 1);
    assert_eq!(
        w.count("subscriptions", "user_id = 'subscriber'").await,
        1,
        "the claimant owns the subscription"
    );
}
