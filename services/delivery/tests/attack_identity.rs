//! One purchase, one identity. A cheating client owns one real Google Play purchase and sends its
//! token again in every spelling that might still reach the same purchase at Google (URL syntax,
//! percent-encodings, dot segments, whitespace the URL parser drops, Unicode look-alikes), or a
//! token that walks the request to another package on the same service account; and replays
//! purchases of other apps and environments at this one. Whatever it sends, the game ledger must
//! show the paid unit granted once, and nothing for a purchase that is not this app's.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;

use common::{APP, World};

/// The package of another app on the same Play service account.
const OTHER_PACKAGE: &str = "com.example.othergame";

/// The status's machine reason.
fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo on {status:?}"))
        .reason
}

/// A Google VerifyPurchase with only a token, as a cheater sends it (no `original_json`: the
/// optional local signature check would refuse a changed token before the store is asked, and
/// the fence must hold without it).
fn google_request(user: &str, token: &str) -> pb::VerifyPurchaseRequest {
    pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: user.into(),
        order_id: String::new(),
        purchase: Some(pb::verify_purchase_request::Purchase::Google(
            pb::GooglePurchase {
                purchase_token: token.into(),
                product_id: "gems_100".into(),
                ..Default::default()
            },
        )),
    }
}

/// One change to the token.
#[derive(Debug, Clone)]
enum Edit {
    /// URL syntax, escapes or whitespace inserted at a position.
    Insert(Index, &'static str),
    /// One character replaced by its `%XX` escape (which Google's URL decoding undoes).
    PercentEncode(Index),
    /// One character replaced by a Unicode look-alike (Cyrillic, Greek or full-width).
    LookAlike(Index),
    /// One letter's case flipped.
    FlipCase(Index),
    /// The token behind dot segments that lead back to it (`x/../T`, a walk through the path).
    DotWalk(&'static str),
}

const PIECES: &[&str] = &[
    "#", "#x", "?", "?x", "?token=x", "/", "//", "/.", "/..", "/../", "./", "../", "..", ".",
    "%2F", "%2f", "%2E", "%2E%2E", "%23", "%3F", "%25", "%00", "%20", "%0A", ";", ";x", "&", "+",
    "=", ":", ":consume", "\\", "~", "-", "_", " ", "  ", "\t", "\n", "\r", "\r\n", "\u{b}",
    "\u{c}", "\u{0}", "\u{a0}", "\u{1680}", "\u{2000}", "\u{2003}", "\u{2009}", "\u{200a}",
    "\u{200b}", "\u{200c}", "\u{200d}", "\u{2028}", "\u{2029}", "\u{202f}", "\u{205f}", "\u{2060}",
    "\u{3000}", "\u{feff}", "\u{ad}", "\u{301}", "\u{ff0f}", "\u{2215}", "\u{2044}", "\u{ff03}",
    "\u{ff1f}", "\u{2024}", "\u{ff0e}",
];

const WALKS: &[&str] = &[
    "x/../",
    "./",
    "x/./../",
    "../tokens/",
    "../../productsv2/tokens/",
    "../../../../com.example.game/purchases/productsv2/tokens/",
    "%2E%2E/tokens/",
    ".%2E/tokens/",
];

fn look_alike(c: char) -> char {
    match c {
        'a' => 'а',
        'c' => 'с',
        'e' => 'е',
        'o' => 'о',
        'p' => 'р',
        'x' => 'х',
        'y' => 'у',
        'A' => 'Α',
        'B' => 'Β',
        'E' => 'Ε',
        'O' => 'Ο',
        'J' => 'Ј',
        // Full-width forms exist for every printable ASCII character.
        c if c.is_ascii_graphic() => char::from_u32(u32::from(c) + 0xFEE0).unwrap_or(c),
        c => c,
    }
}

fn apply(token: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    for edit in edits {
        match edit {
            Edit::Insert(at, piece) => {
                let at = at.index(chars.len() + 1);
                chars.splice(at..at, piece.chars());
            }
            Edit::PercentEncode(at) => {
                let at = at.index(chars.len());
                let mut buf = [0u8; 4];
                let escaped: String = chars[at]
                    .encode_utf8(&mut buf)
                    .bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect();
                chars.splice(at..=at, escaped.chars());
            }
            Edit::LookAlike(at) => {
                let at = at.index(chars.len());
                chars[at] = look_alike(chars[at]);
            }
            Edit::FlipCase(at) => {
                let at = at.index(chars.len());
                let c = chars[at];
                chars[at] = if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                };
            }
            Edit::DotWalk(walk) => {
                chars.splice(0..0, walk.chars());
            }
        }
    }
    chars.into_iter().collect()
}

fn variants(token: String) -> impl Strategy<Value = String> {
    let edit = prop_oneof![
        4 => (any::<Index>(), proptest::sample::select(PIECES)).prop_map(|(i, p)| Edit::Insert(i, p)),
        2 => any::<Index>().prop_map(Edit::PercentEncode),
        2 => any::<Index>().prop_map(Edit::LookAlike),
        1 => any::<Index>().prop_map(Edit::FlipCase),
        1 => proptest::sample::select(WALKS).prop_map(Edit::DotWalk),
    ];
    proptest::collection::vec(edit, 1..4).prop_map(move |edits| apply(&token, &edits))
}

/// After one honest VerifyPurchase, thousands of spellings of the same token: each is refused
/// (at the edge, or by Google as a token it does not know) or recognised as the purchase
/// already recorded. Never a second order, a second row or a second grant.
#[test]
fn thousands_of_spellings_of_one_google_token_grant_it_once() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let w = runtime.block_on(World::start_with_redis(None));
    let user = "spelling-player";
    let honest = runtime.block_on(w.purchase(user, "gems_100"));
    let Some(pb::verify_purchase_request::Purchase::Google(google)) = &honest.purchase else {
        unreachable!("a Google purchase");
    };
    let token = google.purchase_token.clone();
    let first = runtime.block_on(w.verify(honest.clone())).unwrap();
    let order_id = first.order.unwrap().order_id;
    runtime.block_on(w.sweep_until_quiet(5));
    assert_eq!(w.game.ledger().balance(APP, user, "gems_100"), 1);

    let (refused_at_edge, unknown_at_store, recognised) =
        (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let mut runner = TestRunner::new(Config {
        cases: 3000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&variants(token.clone()), |variant| {
            match runtime.block_on(w.verify(google_request(user, &variant))) {
                Ok(reply) => {
                    // Only a spelling the store itself reads as this purchase may pass, and then
                    // only as the purchase already recorded, on the same order.
                    prop_assert!(reply.already_recorded, "{variant:?} made a new order");
                    prop_assert_eq!(&reply.order.unwrap().order_id, &order_id);
                    recognised.fetch_add(1, Ordering::Relaxed);
                }
                Err(status) if status.code() == Code::InvalidArgument => {
                    prop_assert_eq!(reason(&status), "IDENTIFIER_INVALID");
                    refused_at_edge.fetch_add(1, Ordering::Relaxed);
                }
                Err(status) => {
                    prop_assert_eq!(status.code(), Code::FailedPrecondition, "{:?}", status);
                    prop_assert_eq!(reason(&status), "NOT_FOUND_AT_STORE");
                    unknown_at_store.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    // The honest token once more: the same purchase, already recorded.
    let again = runtime
        .block_on(w.verify(google_request(user, &token)))
        .unwrap();
    assert!(again.already_recorded);

    runtime.block_on(w.sweep_until_quiet(5));
    let ledger = w.game.ledger();
    assert_eq!(ledger.balance(APP, user, "gems_100"), 1, "one unit, once");
    assert_eq!(ledger.stats().grant_effects, 1);
    assert_eq!(runtime.block_on(w.count("store_transactions", "1 = 1")), 1);
    assert_eq!(runtime.block_on(w.count("orders", "state <> 'CREATED'")), 1);
    let (edge, store) = (
        refused_at_edge.load(Ordering::Relaxed),
        unknown_at_store.load(Ordering::Relaxed),
    );
    eprintln!(
        "variants: {edge} refused at the edge, {store} unknown to the store, {} recognised",
        recognised.load(Ordering::Relaxed)
    );
    assert!(
        edge > 1000,
        "most variants carry URL syntax and are refused at the edge"
    );
    runtime.block_on(async move { drop(w) });
}

/// A purchase of another app on the same Play service account, bought by the same cheater.
async fn other_package_token(w: &World) -> String {
    let made = w
        .store
        .post_json(
            "/emulator/google/purchases",
            json!({ "package_name": OTHER_PACKAGE, "product_id": "gems_100", "kind": "inapp" }),
        )
        .await;
    made["purchase_token"].as_str().unwrap().to_owned()
}

/// `../` segments in the token walk the androidpublisher URL to another package: refused at the
/// edge. The other package's token sent plainly reaches Google under this package, which answers
/// `purchaseTokenDoesNotMatchPackageName`: refused as another app's purchase. Nothing granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_packages_purchase_is_refused_by_path_walk_or_plainly() {
    let w = World::start_with_redis(None).await;
    let theirs = other_package_token(&w).await;
    let walks = [
        format!("../../../../{OTHER_PACKAGE}/purchases/productsv2/tokens/{theirs}"),
        format!("..%2F..%2F..%2F..%2F{OTHER_PACKAGE}%2Fpurchases%2Fproductsv2%2Ftokens%2F{theirs}"),
        format!("x/../../../../../{OTHER_PACKAGE}/purchases/productsv2/tokens/{theirs}"),
    ];
    for walk in &walks {
        let status = w
            .verify(google_request("walker", walk))
            .await
            .expect_err("a walk to another package is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(reason(&status), "IDENTIFIER_INVALID");
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.metadata["field"], "google.purchase_token");
    }
    let status = w
        .verify(google_request("walker", &theirs))
        .await
        .expect_err("another package's token is refused");
    assert_eq!(reason(&status), "BUNDLE_MISMATCH", "{status:?}");

    w.sweep_until_quiet(3).await;
    assert_eq!(w.game.ledger().stats().grant_effects, 0, "nothing granted");
    assert_eq!(w.count("store_transactions", "1 = 1").await, 0);
    assert_eq!(w.count("orders", "1 = 1").await, 0, "no order made");
}

async fn apple_buy(w: &World, body: Value) -> Value {
    let mut full = json!({ "bundle_id": APP, "product_id": "gems_100", "product_type": "Consumable",
        "environment": "Production" });
    full.as_object_mut()
        .unwrap()
        .extend(body.as_object().unwrap().clone());
    w.store.post_json("/emulator/apple/purchases", full).await
}

fn apple_request(user: &str, proof: pb::apple_purchase::Proof) -> pb::VerifyPurchaseRequest {
    pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: user.into(),
        order_id: String::new(),
        purchase: Some(pb::verify_purchase_request::Purchase::Apple(
            pb::ApplePurchase {
                proof: Some(proof),
                ..Default::default()
            },
        )),
    }
}

/// Replays of other apps' and other environments' purchases: an App Store transaction of another
/// bundle (signed by Apple, by its signed transaction or its id), a sandbox transaction at a
/// production app, a Huawei purchase of another AppGallery app. Each refused; nothing granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purchases_of_other_apps_and_environments_are_refused() {
    use pb::apple_purchase::Proof;
    let w = World::start_with_redis(None).await;

    let other_bundle = apple_buy(&w, json!({ "bundle_id": "com.example.othergame" })).await;
    let status = w
        .verify(apple_request(
            "replayer",
            Proof::SignedTransaction(other_bundle["signed_transaction"].as_str().unwrap().into()),
        ))
        .await
        .expect_err("another bundle's transaction is refused");
    assert_eq!(reason(&status), "BUNDLE_MISMATCH", "{status:?}");
    let status = w
        .verify(apple_request(
            "replayer",
            Proof::TransactionId(other_bundle["transaction_id"].as_str().unwrap().into()),
        ))
        .await
        .expect_err("another bundle's transaction id is refused");
    // The App Store Server API is asked with this app's key, and knows no such transaction.
    assert_eq!(reason(&status), "NOT_FOUND_AT_STORE", "{status:?}");

    let sandbox = apple_buy(&w, json!({ "environment": "Sandbox" })).await;
    let status = w
        .verify(apple_request(
            "replayer",
            Proof::SignedTransaction(sandbox["signed_transaction"].as_str().unwrap().into()),
        ))
        .await
        .expect_err("a sandbox transaction is refused for a user not allowed sandbox");
    assert_eq!(reason(&status), "SANDBOX_NOT_ALLOWED", "{status:?}");

    let huawei_other: Value = w
        .store
        .post_json(
            "/emulator/huawei/purchases",
            json!({ "app_id": "109999999", "product_id": "gems_100", "kind": 0 }),
        )
        .await;
    let status = w
        .verify(pb::VerifyPurchaseRequest {
            app_id: APP.into(),
            user_id: "replayer".into(),
            order_id: String::new(),
            purchase: Some(pb::verify_purchase_request::Purchase::Huawei(
                pb::HuaweiPurchase {
                    purchase_token: huawei_other["purchase_token"].as_str().unwrap().into(),
                    product_id: "gems_100".into(),
                    in_app_purchase_data: huawei_other["in_app_purchase_data"]
                        .as_str()
                        .unwrap()
                        .into(),
                    signature: huawei_other["data_signature"].as_str().unwrap().into(),
                    signature_algorithm: huawei_other["signature_algorithm"]
                        .as_str()
                        .unwrap_or_default()
                        .into(),
                },
            )),
        })
        .await
        .expect_err("another AppGallery app's purchase is refused");
    assert!(
        ["SIGNATURE_INVALID", "BUNDLE_MISMATCH"].contains(&reason(&status).as_str()),
        "{status:?}"
    );

    w.sweep_until_quiet(3).await;
    assert_eq!(w.game.ledger().stats().grant_effects, 0, "nothing granted");
    assert_eq!(w.count("store_transactions", "1 = 1").await, 0);
}

/// Product ids, transaction ids and tokens outside their store's format are refused at the edge
/// with `IDENTIFIER_INVALID` naming the field, before any store, lookup or write; a forged
/// notification carrying one is refused at the door and leaves nothing in the inbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identifiers_outside_the_stores_formats_are_refused_at_the_edge() {
    use pb::apple_purchase::Proof;
    let w = World::start_with_redis(None).await;
    let mut orders = OrderServiceClient::new(w.verifier_channel());
    for (platform, product) in [
        (pb::Platform::Google, "Gems_100"),
        (pb::Platform::Google, "gems_100#x"),
        (pb::Platform::Apple, "gems_100/../no_ads"),
        (pb::Platform::Huawei, "gems_100\u{200b}"),
    ] {
        let status = orders
            .create_order(pb::CreateOrderRequest {
                app_id: APP.into(),
                user_id: "edge".into(),
                product_id: product.into(),
                platform: platform.into(),
                quantity: 1,
                ..Default::default()
            })
            .await
            .expect_err("a product id outside the store's format is refused");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{product:?}: {status:?}"
        );
        assert_eq!(reason(&status), "IDENTIFIER_INVALID");
        assert_eq!(
            status.get_details_error_info().unwrap().metadata["field"],
            "product_id"
        );
    }

    let bought = apple_buy(&w, json!({})).await;
    let transaction = bought["transaction_id"].as_str().unwrap();
    let huawei = |token: &str| pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: "edge".into(),
        order_id: String::new(),
        purchase: Some(pb::verify_purchase_request::Purchase::Huawei(
            pb::HuaweiPurchase {
                purchase_token: token.into(),
                product_id: "gems_100".into(),
                in_app_purchase_data: "{}".into(),
                signature: "c2ln".into(),
                signature_algorithm: String::new(),
            },
        )),
    };
    for (request, field) in [
        (
            apple_request("edge", Proof::TransactionId(format!("1/../{transaction}"))),
            "apple.transaction_id",
        ),
        (
            apple_request("edge", Proof::TransactionId(format!("{transaction}?x"))),
            "apple.transaction_id",
        ),
        (
            apple_request("edge", Proof::TransactionId(format!(" {transaction}"))),
            "apple.transaction_id",
        ),
        (huawei("00000173abc?x"), "huawei.purchase_token"),
        (huawei("00000173abc\n"), "huawei.purchase_token"),
        (google_request("edge", "tok#x"), "google.purchase_token"),
        (google_request("edge", ".."), "google.purchase_token"),
    ] {
        let status = w
            .verify(request)
            .await
            .expect_err("an identifier outside the store's format is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert_eq!(reason(&status), "IDENTIFIER_INVALID", "{field}");
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.metadata["field"], field);
        assert!(!status.message().contains(transaction), "no value echoed");
    }

    // A forged Google push naming a token with URL syntax: refused at the door, not stored.
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(
        json!({ "version": "1.0", "packageName": APP, "eventTimeMillis": "1700000000000",
            "oneTimeProductNotification": { "version": "1.0", "notificationType": 1,
                "purchaseToken": "tok/../x#y", "sku": "gems_100" } })
        .to_string(),
    );
    let pushed = reqwest::Client::new()
        .post(format!("http://{}/notifications/google", w.verifier_http))
        .json(&json!({ "message": { "data": data, "messageId": "forged-1" }, "subscription": "s" }))
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), reqwest::StatusCode::BAD_REQUEST);
    assert_eq!(w.count("notifications", "1 = 1").await, 0);

    assert_eq!(w.count("orders", "1 = 1").await, 0, "nothing stored");
    assert_eq!(w.count("store_transactions", "1 = 1").await, 0);
    assert_eq!(w.game.ledger().stats().grant_calls, 0);
}
