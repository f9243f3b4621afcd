//! Huawei purchases the regular path does not see. A carrier (AppTouch) account's purchase is
//! known only to Huawei's AppTouch site; a purchase the app consumed on the device before its
//! server saw it is answered "already consumed" (code 9) with no data, and may have been refunded
//! since. Each must end as the store says it was paid: granted once, confirmed where it lives, or
//! not granted at all.

mod common;

use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_test_support::emulator::HUAWEI_APP;
use serde_json::{Value, json};
use tonic_types::StatusExt;

use common::{APP, World};

const PRODUCT: &str = "gems_100";

/// CreateOrder on Huawei, then a purchase at the emulator carrying the order's payload, paid by
/// an AppTouch account when `apptouch`. Returns the VerifyPurchase request and the purchase.
async fn buy(w: &World, user: &str, apptouch: bool) -> (pb::VerifyPurchaseRequest, Value) {
    let created = OrderServiceClient::new(w.verifier_channel())
        .create_order(pb::CreateOrderRequest {
            app_id: APP.into(),
            user_id: user.into(),
            product_id: PRODUCT.into(),
            platform: pb::Platform::Huawei.into(),
            quantity: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut body = json!({ "app_id": HUAWEI_APP, "product_id": PRODUCT, "kind": 0,
        "developer_payload": created.binding.unwrap().huawei_developer_payload });
    if apptouch {
        body["account_flag"] = json!(1);
    }
    let made = w.store.post_json("/emulator/huawei/purchases", body).await;
    let field = |name: &str| made[name].as_str().unwrap_or_default().to_owned();
    let request = pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: user.into(),
        order_id: String::new(),
        purchase: Some(pb::verify_purchase_request::Purchase::Huawei(
            pb::HuaweiPurchase {
                purchase_token: field("purchase_token"),
                product_id: PRODUCT.into(),
                in_app_purchase_data: field("in_app_purchase_data"),
                signature: field("data_signature"),
                signature_algorithm: field("signature_algorithm"),
            },
        )),
    };
    (request, made)
}

async fn control(w: &World, token: &str, action: &str) {
    w.store
        .post_json(
            &format!("/emulator/huawei/purchases/{token}/{action}"),
            json!({}),
        )
        .await;
}

/// The rejection's machine reason and whether the client may finish the transaction.
fn refusal(status: &tonic::Status) -> (String, bool) {
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo on {status:?}"));
    let finish = info.metadata.get("finish_transaction").map(String::as_str) == Some("true");
    (info.reason, finish)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_apptouch_purchase_is_granted_confirmed_and_refunded_at_the_apptouch_site() {
    let w = World::start().await;
    w.notify_here("huawei", 0).await;
    let (request, made) = buy(&w, "carrier-player", true).await;
    let token = made["purchase_token"].as_str().unwrap().to_owned();
    assert!(
        made["in_app_purchase_data"]
            .as_str()
            .unwrap()
            .contains("\"accountFlag\":1"),
        "the emulator marks the account as Huawei does"
    );

    let verified = w
        .verify(request)
        .await
        .expect("verified at the AppTouch site");
    assert_eq!(verified.order.unwrap().state(), pb::OrderState::Paid);
    w.sweep_until_quiet(5).await;
    assert_eq!(w.game.ledger().balance(APP, "carrier-player", PRODUCT), 1);
    let held = w
        .store
        .get_json(&format!("/emulator/huawei/purchases/{token}"))
        .await;
    assert_eq!(
        held["confirmed"], true,
        "confirmed where the purchase lives"
    );
    assert_eq!(w.count("orders", "state = 'CONFIRMED'").await, 1);

    // Its refund is listed by the AppTouch site only: the unsigned ORDER event is confirmed
    // there, and the unit is taken back once. (The payment event, re-queried where the
    // purchase lives, changed nothing.)
    control(&w, &token, "refund").await;
    w.pushed(2).await;
    w.settle().await;
    w.sweep_until_quiet(5).await;
    assert_eq!(w.game.ledger().balance(APP, "carrier-player", PRODUCT), 0);
    assert_eq!(w.game.ledger().stats().grant_effects, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purchase_the_app_consumed_and_the_store_refunded_is_not_granted() {
    let w = World::start().await;
    let (request, made) = buy(&w, "consumer", false).await;
    let token = made["purchase_token"].as_str().unwrap();
    // The app consumed it on the device, the player asked Huawei for the money back, and only
    // then does the client (or a cheater holding its signed data) ask the server.
    control(&w, token, "consume").await;
    control(&w, token, "refund").await;

    let refused = w.verify(request.clone()).await.unwrap_err();
    assert_eq!(refusal(&refused), ("REFUNDED".to_owned(), true));
    // Refused again on a retry, and nothing is ever paid or granted.
    let again = w.verify(request).await.unwrap_err();
    assert_eq!(refusal(&again).0, "REFUNDED");
    w.sweep_until_quiet(3).await;
    assert_eq!(w.count("orders", "state <> 'CREATED'").await, 0);
    assert_eq!(w.game.ledger().balance(APP, "consumer", PRODUCT), 0);
    assert_eq!(w.game.ledger().stats().grant_effects, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purchase_the_app_consumed_before_its_server_saw_it_is_granted_once() {
    let w = World::start().await;
    let (request, made) = buy(&w, "early-consumer", false).await;
    control(&w, made["purchase_token"].as_str().unwrap(), "consume").await;

    let first = w.verify(request.clone()).await.expect("paid, not refunded");
    assert!(!first.already_recorded);
    let retry = w.verify(request).await.unwrap();
    assert!(retry.already_recorded, "the ledger answers the retry");
    w.sweep_until_quiet(5).await;
    assert_eq!(w.game.ledger().balance(APP, "early-consumer", PRODUCT), 1);
    assert_eq!(w.game.ledger().stats().grant_effects, 1);
    // Huawei answers the confirmation "already confirmed": the order completes.
    assert_eq!(w.count("orders", "state = 'CONFIRMED'").await, 1);
}
