//! When the client is told to finish. Finishing a store transaction tells the store the
//! purchase is done: it is never offered to the client again. So `finish_transaction=true` may
//! only come with a purchase that is recorded (and granted to someone), or one the store itself
//! rules out. A real, paid purchase that does not fit the caller's request — a player who
//! switched game accounts, an old unfinished purchase sent with a newer order, a product the
//! catalog does not have yet, our own wrong store settings — must never be finished unrecorded.
//! Each test asserts the game ledger: units paid, granted once, to the player who paid.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_runtime::Settings;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use common::{APP, World};

/// The status's machine reason and its `finish_transaction` metadata.
fn refusal(status: &tonic::Status) -> (Code, String, Option<String>) {
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo on {status:?}"));
    let finish: HashMap<String, String> = info.metadata;
    (
        status.code(),
        info.reason,
        finish.get("finish_transaction").cloned(),
    )
}

/// CreateOrder for `user`: the order id and its Google binding.
async fn create_order(w: &World, user: &str, product: &str) -> (String, pb::PurchaseBinding) {
    let created = OrderServiceClient::new(w.verifier_channel())
        .create_order(pb::CreateOrderRequest {
            app_id: APP.into(),
            user_id: user.into(),
            product_id: product.into(),
            platform: pb::Platform::Google.into(),
            quantity: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let order = created.order.unwrap().order_id;
    (order, created.binding.unwrap())
}

/// A purchase at the emulator's Google Play, carrying `binding` (or no ids at all, as a client
/// that lost them sends it).
async fn buy(w: &World, product: &str, binding: Option<&pb::PurchaseBinding>) -> Value {
    let mut body = json!({ "package_name": APP, "product_id": product, "kind": "inapp" });
    if let Some(b) = binding {
        body["obfuscated_account_id"] = json!(b.google_obfuscated_account_id);
        body["obfuscated_profile_id"] = json!(b.google_obfuscated_profile_id);
    }
    w.store.post_json("/emulator/google/purchases", body).await
}

/// The VerifyPurchase a client sends for `made`, as `user`, naming `order_id` (may be empty).
fn request(user: &str, order_id: &str, product: &str, made: &Value) -> pb::VerifyPurchaseRequest {
    pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: user.into(),
        order_id: order_id.into(),
        purchase: Some(pb::verify_purchase_request::Purchase::Google(
            pb::GooglePurchase {
                purchase_token: made["purchase_token"].as_str().unwrap().into(),
                product_id: product.into(),
                original_json: made["original_json"].as_str().unwrap().into(),
                signature: made["signature"].as_str().unwrap().into(),
            },
        )),
    }
}

/// A second verifier on the world's database and store, with settings changed by `edit` (a
/// catalog rollout, or an operator's mistake).
async fn verifier_with(w: &World, edit: impl FnOnce(&str) -> String) -> Channel {
    let settings = Settings::from_toml(&edit(&w.toml)).unwrap();
    let catalog = Arc::new(settings.catalog().unwrap());
    let stores = iap_app::verifier::store_verifiers(&settings).unwrap();
    let verifier = iap_app::verifier::Verifier::new(w.storage.clone(), catalog, stores);
    let listeners = iap_app::verifier::Listeners {
        grpc: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        http: TcpListener::bind("127.0.0.1:0").await.unwrap(),
    };
    let addr = listeners.grpc.local_addr().unwrap();
    tokio::spawn(iap_app::verifier::serve(
        verifier,
        listeners,
        w.shutdown.clone(),
    ));
    common::connect(addr).await
}

async fn verify_at(
    channel: Channel,
    request: pb::VerifyPurchaseRequest,
) -> Result<pb::VerifyPurchaseResponse, tonic::Status> {
    iap_proto::v1::verification_service_client::VerificationServiceClient::new(channel)
        .verify_purchase(request)
        .await
        .map(tonic::Response::into_inner)
}

/// Alice buys; before her client reports the purchase she switches the game to her second
/// account, Bob. The purchase carries Alice's order: it is recorded and granted to Alice (who
/// paid), once; Bob's client is told the purchase is taken care of and may finish it — only
/// after it is recorded. Bob's retries and Alice's own later report grant nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_who_switched_accounts_is_granted_on_the_account_that_paid_once() {
    let w = World::start_with_redis(None).await;
    let (alices_order, binding) = create_order(&w, "alice", "gems_100").await;
    let made = buy(&w, "gems_100", Some(&binding)).await;

    let refused = w
        .verify(request("bob", "", "gems_100", &made))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&refused),
        (
            Code::FailedPrecondition,
            "ORDER_MISMATCH".into(),
            Some("true".into())
        )
    );
    let order = w
        .order(iap_domain::OrderId::parse(&alices_order).unwrap())
        .await;
    assert_eq!(
        order.state,
        iap_domain::OrderState::Paid,
        "recorded before the client is told to finish"
    );
    assert_eq!(order.user_id.as_str(), "alice");

    // Bob's client retries, also naming an order of Bob's: still nothing for Bob.
    let (bobs_order, _) = create_order(&w, "bob", "gems_100").await;
    let again = w
        .verify(request("bob", &bobs_order, "gems_100", &made))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&again),
        (
            Code::FailedPrecondition,
            "REPLAYED_FOR_OTHER_USER".into(),
            Some("true".into())
        )
    );
    let alice = w
        .verify(request("alice", "", "gems_100", &made))
        .await
        .unwrap();
    assert!(alice.already_recorded && alice.finish_transaction);

    w.sweep_until_quiet(5).await;
    assert_eq!(w.game.ledger().balance(APP, "alice", "gems_100"), 1);
    assert_eq!(w.game.ledger().balance(APP, "bob", "gems_100"), 0);
    assert_eq!(w.count("store_transactions", "TRUE").await, 1);
    assert_eq!(
        w.count(
            "orders",
            &format!("id = '{bobs_order}' AND state = 'CREATED'")
        )
        .await,
        1,
        "Bob's order stays payable"
    );
}

/// Seed 004: an unfinished purchase A (gems) is replayed by the client together with its newer
/// order B for another product (no ads). A is granted against its own order; B stays payable,
/// and B's own purchase pays it later. Nothing is finished unrecorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_purchase_sent_with_a_newer_order_of_another_product_pays_its_own() {
    let w = World::start_with_redis(None).await;
    let (order_a, _) = create_order(&w, "carol", "gems_100").await;
    // A's client lost the binding (a crash between CreateOrder and the store's sheet).
    let purchase_a = buy(&w, "gems_100", None).await;
    let (order_b, binding_b) = create_order(&w, "carol", "no_ads").await;

    let paid = w
        .verify(request("carol", &order_b, "gems_100", &purchase_a))
        .await
        .unwrap();
    assert!(paid.finish_transaction);
    assert_eq!(
        paid.order.unwrap().order_id,
        order_a,
        "A pays its own order"
    );
    assert_eq!(
        w.count("orders", &format!("id = '{order_b}' AND state = 'CREATED'"))
            .await,
        1,
        "B stays payable"
    );

    let purchase_b = buy(&w, "no_ads", Some(&binding_b)).await;
    let paid_b = w
        .verify(request("carol", &order_b, "no_ads", &purchase_b))
        .await
        .unwrap();
    assert_eq!(paid_b.order.unwrap().order_id, order_b);

    w.sweep_until_quiet(5).await;
    assert_eq!(w.game.ledger().balance(APP, "carol", "gems_100"), 1);
    assert_eq!(w.game.ledger().balance(APP, "carol", "no_ads"), 1);
}

/// A product sold in the store before the catalog rollout reached this deployment: refused
/// without finishing, so the client keeps the purchase; once the catalog has the product the
/// same report grants it, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_the_catalog_does_not_have_yet_is_kept_open_and_granted_after_the_rollout() {
    let w = World::start_with_redis(None).await;
    let made = buy(&w, "gems_500", None).await;
    let refused = w
        .verify(request("dora", "", "gems_500", &made))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&refused),
        (
            Code::FailedPrecondition,
            "UNKNOWN_PRODUCT".into(),
            Some("false".into())
        )
    );
    assert_eq!(w.count("store_transactions", "TRUE").await, 0);

    let rolled_out = verifier_with(&w, |toml| {
        format!(
            "{toml}\n[apps.\"{APP}\".products.gems_500]\nkind = \"consumable\"\nmax_quantity = 10\n"
        )
    })
    .await;
    let paid = verify_at(rolled_out.clone(), request("dora", "", "gems_500", &made))
        .await
        .unwrap();
    assert!(paid.finish_transaction && !paid.already_recorded);
    let again = verify_at(rolled_out, request("dora", "", "gems_500", &made))
        .await
        .unwrap();
    assert!(again.already_recorded);

    w.sweep_until_quiet(5).await;
    assert_eq!(w.game.ledger().balance(APP, "dora", "gems_500"), 1);
}

/// Our own mistake: the deployment holds another app's Google Play licence key. A genuine
/// purchase (Google confirms it) is answered `FAILED_PRECONDITION` / `STORE_MISCONFIGURED` with
/// `finish_transaction=false`, counted in `iap_store_misconfigured_total`, and nothing is
/// recorded; a forged purchase JSON stays `SIGNATURE_INVALID`. With the key fixed, the kept
/// purchase is granted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_wrong_licence_key_keeps_a_real_purchase_open_and_is_counted() {
    let w = World::start_with_redis(None).await;
    let mut keys = Vec::new();
    for package in [APP, "com.example.othergame"] {
        let key = w
            .store
            .get_json(&format!("/emulator/google/apps/{package}/license-key"))
            .await;
        keys.push(key["public_key_base64"].as_str().unwrap().to_owned());
    }
    let (ours, other_apps) = (keys[0].clone(), keys[1].clone());
    let wrong = verifier_with(&w, |toml| toml.replace(&ours, &other_apps)).await;

    let (order, binding) = create_order(&w, "erin", "gems_100").await;
    let made = buy(&w, "gems_100", Some(&binding)).await;
    let refused = verify_at(wrong.clone(), request("erin", &order, "gems_100", &made))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&refused),
        (
            Code::FailedPrecondition,
            "STORE_MISCONFIGURED".into(),
            Some("false".into())
        )
    );
    assert_eq!(w.count("store_transactions", "TRUE").await, 0);

    // A purchase JSON nobody at Google issued, signed by nobody: still a forgery.
    let mut forged = made.clone();
    forged["purchase_token"] = json!("forged-token-that-google-never-issued");
    forged["original_json"] = json!(made["original_json"].as_str().unwrap().replace(
        made["purchase_token"].as_str().unwrap(),
        "forged-token-that-google-never-issued"
    ));
    let forgery = verify_at(wrong, request("erin", "", "gems_100", &forged))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&forgery),
        (
            Code::FailedPrecondition,
            "SIGNATURE_INVALID".into(),
            Some("true".into())
        )
    );

    // The metric, from the use case itself on this thread.
    let recorder = iap_runtime::telemetry::build_recorder();
    let handle = recorder.handle();
    let counted = {
        let settings = Settings::from_toml(&w.toml.replace(&ours, &other_apps)).unwrap();
        let usecase = iap_domain::usecases::verify_purchase::PurchaseVerification::new(
            Arc::new(settings.catalog().unwrap()),
            iap_app::verifier::store_verifiers(&settings).unwrap(),
            w.storage.clone(),
        );
        let command = iap_domain::usecases::verify_purchase::VerifyPurchase {
            app_id: iap_domain::AppId::parse(APP).unwrap(),
            user_id: iap_domain::UserId::parse("erin").unwrap(),
            order_id: None,
            proof: iap_domain::purchase::PurchaseProof::Google {
                purchase_token: made["purchase_token"].as_str().unwrap().into(),
                product_id: iap_domain::ProductId::parse("gems_100").unwrap(),
                signed_data: Some(iap_domain::purchase::SignedData {
                    data: made["original_json"].as_str().unwrap().into(),
                    signature: made["signature"].as_str().unwrap().into(),
                }),
            },
        };
        let _local = metrics::set_default_local_recorder(&recorder);
        let error = usecase.verify(command).await.unwrap_err();
        assert!(!error.finish_transaction(), "{error}");
        handle.render()
    };
    assert!(
        counted
            .lines()
            .any(|l| l.starts_with("iap_store_misconfigured_total{store=\"google\"} 1")),
        "{counted}"
    );

    // Fixed: the purchase the client kept open is granted, once.
    let paid = w
        .verify(request("erin", &order, "gems_100", &made))
        .await
        .unwrap();
    assert!(paid.finish_transaction);
    w.sweep_until_quiet(5).await;
    assert_eq!(w.game.ledger().balance(APP, "erin", "gems_100"), 1);
}
