//! Property tests: the App Store parsers (JWS verification, payload models, legacy receipt
//! answers) return a value or an error for any input, never panic, and never accept data that
//! was not signed as it stands. Near-valid inputs start from Apple's official test vectors in
//! ../shared/conformance/apple.

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

use iap_platform_apple::jws::{self, ChainTrust};
use iap_platform_apple::model::{NotificationPayload, RenewalInfoPayload, TransactionPayload};
use iap_platform_apple::receipt::pick_transaction;

const NOW_MS: i64 = 1_800_000_000_000;

/// `shared/conformance/<path>` beside the project (the nearest ancestor that has it, so a
/// worktree finds it too).
fn conformance(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/conformance"))
        .find(|dir| dir.is_dir())
        .expect("shared/conformance beside the project")
        .join(path)
}

fn vector(path: &str) -> Vec<u8> {
    let full = conformance(&format!("apple/{path}"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn text(path: &str) -> String {
    String::from_utf8(vector(path)).unwrap().trim().to_owned()
}

static TEST_TRUST: LazyLock<ChainTrust> =
    LazyLock::new(|| ChainTrust::empty().with_root(vector("official-test/testCA.der")));

/// Signed by a chain to the test root.
static SIGNED: LazyLock<Vec<String>> = LazyLock::new(|| {
    ["transactionInfo", "renewalInfo", "testNotification"]
        .iter()
        .map(|name| text(&format!("official-test/{name}")))
        .collect()
});

/// Signed by Apple under the real Apple Root CA G3 (the default, pinned trust).
static REAL: LazyLock<String> = LazyLock::new(|| text("real/realTestNotification.jws"));

/// Characters a mutation writes: base64url, the standard alphabet's extras, separators.
/// Whitespace is left out because surrounding whitespace is trimmed by design.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=.";

#[derive(Debug, Clone)]
enum Mutation {
    Replace(Index, Index),
    Insert(Index, Index),
    Remove(Index),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), any::<Index>()).prop_map(|(at, c)| Mutation::Replace(at, c)),
        (any::<Index>(), any::<Index>()).prop_map(|(at, c)| Mutation::Insert(at, c)),
        any::<Index>().prop_map(Mutation::Remove),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

/// Applies `m` to ASCII `s`; the result always differs from `s`.
fn mutate(s: &str, m: &Mutation) -> String {
    let mut bytes = s.as_bytes().to_vec();
    match m {
        Mutation::Replace(at, c) => {
            let i = at.index(bytes.len());
            let mut new = ALPHABET[c.index(ALPHABET.len())];
            if new == bytes[i] {
                new = if new == b'A' { b'B' } else { b'A' };
            }
            bytes[i] = new;
        }
        Mutation::Insert(at, c) => {
            bytes.insert(at.index(bytes.len() + 1), ALPHABET[c.index(ALPHABET.len())]);
        }
        Mutation::Remove(at) => {
            bytes.remove(at.index(bytes.len()));
        }
        Mutation::Truncate(at) => bytes.truncate(at.index(bytes.len())),
    }
    String::from_utf8(bytes).unwrap()
}

/// Any JSON value, nested a little.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        "[0-9]{1,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object with the given field names, each absent or holding a random JSON value.
fn object_with(fields: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop::collection::vec(prop::option::of(any_json()), fields.len()).prop_map(move |values| {
        let map: Map<String, Value> = fields
            .iter()
            .zip(values)
            .filter_map(|(k, v)| v.map(|v| ((*k).to_owned(), v)))
            .collect();
        Value::Object(map)
    })
}

const TRANSACTION_FIELDS: &[&str] = &[
    "transactionId",
    "originalTransactionId",
    "bundleId",
    "productId",
    "purchaseDate",
    "expiresDate",
    "signedDate",
    "quantity",
    "type",
    "appAccountToken",
    "revocationReason",
    "revocationDate",
    "offerType",
    "environment",
    "price",
    "currency",
];

const RENEWAL_FIELDS: &[&str] = &[
    "expirationIntent",
    "originalTransactionId",
    "autoRenewProductId",
    "autoRenewStatus",
    "isInBillingRetryPeriod",
    "gracePeriodExpiresDate",
    "signedDate",
    "environment",
    "renewalDate",
    "renewalPrice",
];

const NOTIFICATION_FIELDS: &[&str] = &[
    "notificationType",
    "subtype",
    "notificationUUID",
    "version",
    "signedDate",
    "data",
    "summary",
    "externalPurchaseToken",
];

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWS header: `alg` ES256 or anything, `x5c` with real certificates, random bytes or
/// random JSON in each slot.
fn header() -> impl Strategy<Value = Value> {
    let real_certs: Vec<String> = ["transactionInfo_x5c0", "transactionInfo_x5c1", "testCA"]
        .iter()
        .map(|name| STANDARD.encode(vector(&format!("official-test/{name}.der"))))
        .collect();
    let cert = prop_oneof![
        prop::sample::select(real_certs).prop_map(Value::String),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| Value::String(STANDARD.encode(b))),
        any_json(),
    ];
    let alg = prop_oneof![Just(json!("ES256")), any_json()];
    let x5c = prop_oneof![
        prop::collection::vec(cert, 0..5).prop_map(Value::Array),
        any_json(),
    ];
    (alg, prop::option::of(x5c)).prop_map(|(alg, x5c)| {
        let mut header = json!({ "alg": alg });
        if let Some(x5c) = x5c {
            header["x5c"] = x5c;
        }
        header
    })
}

#[test]
fn the_unmutated_vectors_verify() {
    for jws in SIGNED.iter() {
        jws::verify::<Value>(jws, &TEST_TRUST, NOW_MS).unwrap();
    }
    jws::verify::<Value>(&REAL, &ChainTrust::default(), NOW_MS).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_verifies(s in ".{0,300}") {
        prop_assert!(jws::verify::<Value>(&s, &TEST_TRUST, NOW_MS).is_err());
        prop_assert!(jws::verify::<TransactionPayload>(&s, &ChainTrust::default(), NOW_MS).is_err());
    }

    #[test]
    fn jws_shaped_text_with_random_segments_never_verifies(
        parts in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..96), 1..5),
    ) {
        let jws = parts.iter().map(|p| b64url(p)).collect::<Vec<_>>().join(".");
        prop_assert!(jws::verify::<Value>(&jws, &TEST_TRUST, NOW_MS).is_err());
    }

    #[test]
    fn random_headers_never_verify(
        header in header(),
        payload in any_json(),
        signature in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let jws = format!(
            "{}.{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(payload.to_string().as_bytes()),
            b64url(&signature)
        );
        prop_assert!(jws::verify::<Value>(&jws, &TEST_TRUST, NOW_MS).is_err());
    }

    #[test]
    fn a_real_header_with_a_random_payload_never_verifies(
        which in 0..3usize,
        payload in object_with(TRANSACTION_FIELDS),
    ) {
        // Apple's header and signature, someone else's payload.
        let signed = &SIGNED[which];
        let mut parts = signed.split('.');
        let (header, _, signature) = (parts.next().unwrap(), parts.next(), parts.next().unwrap());
        let jws = format!("{header}.{}.{signature}", b64url(payload.to_string().as_bytes()));
        let result = jws::verify::<Value>(&jws, &TEST_TRUST, NOW_MS);
        prop_assert!(result.is_err(), "forged payload accepted");
    }

    #[test]
    fn a_mutated_vector_never_verifies(which in 0..3usize, m in mutation()) {
        let jws = mutate(&SIGNED[which], &m);
        prop_assert!(jws::verify::<Value>(&jws, &TEST_TRUST, NOW_MS).is_err());
    }

    #[test]
    fn a_mutated_real_notification_never_verifies(m in mutation()) {
        let jws = mutate(&REAL, &m);
        prop_assert!(jws::verify::<Value>(&jws, &ChainTrust::default(), NOW_MS).is_err());
    }

    #[test]
    fn a_mutated_certificate_never_verifies(
        which in 0..3usize,
        cert in 0..3usize,
        at in any::<Index>(),
        xor in 1..=255u8,
    ) {
        let signed = &SIGNED[which];
        let (header_b64, rest) = signed.split_once('.').unwrap();
        let mut header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).unwrap()).unwrap();
        let mut der = STANDARD.decode(header["x5c"][cert].as_str().unwrap()).unwrap();
        let i = at.index(der.len());
        der[i] ^= xor;
        header["x5c"][cert] = json!(STANDARD.encode(der));
        let jws = format!("{}.{rest}", b64url(header.to_string().as_bytes()));
        prop_assert!(jws::verify::<Value>(&jws, &TEST_TRUST, NOW_MS).is_err());
    }

    #[test]
    fn payload_models_decode_any_json_without_panicking(
        transaction in object_with(TRANSACTION_FIELDS),
        renewal in object_with(RENEWAL_FIELDS),
        notification in object_with(NOTIFICATION_FIELDS),
        anything in any_json(),
    ) {
        if let Ok(t) = serde_json::from_value::<TransactionPayload>(transaction.clone()) {
            let _ = (t.kind(), t.environment(), t.is_free_trial());
            // What decoded is what was sent.
            prop_assert_eq!(t.bundle_id.as_deref(), transaction["bundleId"].as_str());
        }
        let _ = serde_json::from_value::<RenewalInfoPayload>(renewal);
        if let Ok(n) = serde_json::from_value::<NotificationPayload>(notification) {
            let _ = (n.bundle_id(), n.environment(), n.app_apple_id());
        }
        let _ = serde_json::from_value::<TransactionPayload>(anything.clone());
        let _ = serde_json::from_value::<NotificationPayload>(anything);
    }

    #[test]
    fn well_typed_transactions_always_decode(
        id in "[0-9]{1,19}",
        product in ".{0,20}",
        purchase in any::<f64>(),
        quantity in any::<u32>(),
        price in any::<i64>(),
    ) {
        let payload = json!({
            "transactionId": id, "productId": product, "purchaseDate": purchase,
            "quantity": quantity, "price": price, "unknownField": [1, {"x": null}],
        });
        let decoded: TransactionPayload = serde_json::from_value(payload).unwrap();
        prop_assert_eq!(decoded.transaction_id.as_deref(), Some(id.as_str()));
        prop_assert_eq!(decoded.quantity, Some(quantity));
        prop_assert_eq!(decoded.price, Some(price));
    }

    #[test]
    fn picking_from_any_verify_receipt_answer_never_panics(
        reply in any_json(),
        entries in prop::collection::vec(
            object_with(&["transaction_id", "product_id", "purchase_date_ms", "quantity"]),
            0..5,
        ),
        latest in prop::collection::vec(
            object_with(&["transaction_id", "product_id", "purchase_date_ms"]),
            0..3,
        ),
        transaction_id in prop::option::of(prop_oneof![Just("1".to_owned()), ".{0,4}"]),
        product_id in prop::option::of(prop_oneof![Just("gems".to_owned()), ".{0,4}"]),
    ) {
        let _ = pick_transaction(&reply, transaction_id.as_deref(), product_id.as_deref());
        let reply = json!({
            "status": 0,
            "receipt": { "bundle_id": "com.example", "in_app": entries },
            "latest_receipt_info": latest,
        });
        let picked = pick_transaction(&reply, transaction_id.as_deref(), product_id.as_deref());
        for entry in picked.iter().flat_map(|pick| pick.entries()) {
            // Only ever an entry of the answer, and one that matches what was asked for.
            let listed = reply["receipt"]["in_app"].as_array().unwrap().iter()
                .chain(reply["latest_receipt_info"].as_array().unwrap())
                .any(|e| std::ptr::eq(e, entry));
            prop_assert!(listed);
            if let Some(id) = &transaction_id {
                prop_assert_eq!(entry["transaction_id"].as_str(), Some(id.as_str()));
            } else if let Some(product) = &product_id {
                prop_assert_eq!(entry["product_id"].as_str(), Some(product.as_str()));
            }
        }
    }
}
