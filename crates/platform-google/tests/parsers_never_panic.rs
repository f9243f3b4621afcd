//! Property tests: the licence-key check and the mapping of Android Publisher answers
//! (productsv2, subscriptionsv2) take any input without panicking. Answers go through the public
//! entry, `GoogleVerifier::verify`, served by a stub Android Publisher whose reply each case
//! sets. Forged purchase JSON never verifies and never reaches the network.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

use iap_domain::ports::{PurchaseVerifier, StoreError, VerifyContext};
use iap_domain::purchase::{PurchaseProof, PurchaseStatus, SignedData, VerifiedPurchase};
use iap_domain::{AppId, Platform, ProductId, ProductKind, ProductPolicy, RejectReason};
use iap_platform_google::signature::LicenseKey;
use iap_platform_google::{GoogleAppConfig, GoogleVerifier};

const TOKEN: &str = "opaque-token";
const PRODUCT: &str = "gems_100";
/// Where the RSAPublicKey starts in an RSA-2048 SubjectPublicKeyInfo.
const RSA_KEY_OFFSET: usize = 24;

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

/// `google_sig_test_vector.json`: licence key, purchase JSON and its SHA1withRSA signature.
static VECTOR: LazyLock<Value> = LazyLock::new(|| {
    let path = conformance("google/google_sig_test_vector.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
});

fn field(name: &str) -> &'static str {
    VECTOR[name].as_str().unwrap()
}

/// A service-account key for the stub's token endpoint (which accepts any assertion).
static SERVICE_ACCOUNT_PEM: LazyLock<String> = LazyLock::new(|| {
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap()
        .to_string()
});

#[derive(Clone, Default)]
struct Stub {
    reply: Arc<Mutex<(u16, String)>>,
    api_calls: Arc<AtomicUsize>,
}

async fn token() -> axum::Json<Value> {
    axum::Json(json!({ "access_token": "stub", "expires_in": 3600 }))
}

async fn answer(State(stub): State<Stub>) -> (StatusCode, String) {
    stub.api_calls.fetch_add(1, Ordering::SeqCst);
    let (status, body) = stub.reply.lock().unwrap().clone();
    (StatusCode::from_u16(status).unwrap(), body)
}

/// One stub and verifier per test thread, so parallel tests never share a reply.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    stub: Stub,
    verifier: GoogleVerifier,
    app: AppId,
}

impl Fixture {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let stub = Stub::default();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = Router::new()
            .route("/token", post(token))
            .fallback(answer)
            .with_state(stub.clone());
        runtime.spawn(async move { axum::serve(listener, router).await });
        let config = GoogleAppConfig {
            package_name: "com.example.game".into(),
            service_account_json: json!({
                "client_email": "stub@example.iam.gserviceaccount.com",
                "private_key": *SERVICE_ACCOUNT_PEM,
                "token_uri": format!("{base}/token"),
            })
            .to_string(),
            license_key_base64: Some(field("base64PublicKey").to_owned()),
            api_root_url: format!("{base}/"),
            push_audience: None,
            push_service_account: None,
            push_certs_url: iap_platform_google::push::GOOGLE_CERTS_URL.to_owned(),
        };
        let app = AppId::parse("game").unwrap();
        let verifier = GoogleVerifier::new([(&app, &config)]).unwrap();
        Self {
            runtime,
            stub,
            verifier,
            app,
        }
    }

    fn verify(
        &self,
        kind: ProductKind,
        reply: Option<(u16, String)>,
        signed_data: Option<SignedData>,
    ) -> Result<VerifiedPurchase, StoreError> {
        if let Some(reply) = reply {
            *self.stub.reply.lock().unwrap() = reply;
        }
        let policy = ProductPolicy {
            kind,
            max_quantity: 10,
            subscription_group: None,
        };
        let proof = PurchaseProof::Google {
            purchase_token: TOKEN.into(),
            product_id: ProductId::parse(PRODUCT).unwrap(),
            signed_data,
        };
        let ctx = VerifyContext {
            app_id: &self.app,
            product: Some(&policy),
            ledger: None,
        };
        self.runtime.block_on(self.verifier.verify(ctx, &proof))
    }
}

thread_local! {
    static FIXTURE: Fixture = Fixture::start();
}

/// Any JSON value, nested a little.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Either one of `likely` or any JSON value.
fn one_of_or_any(likely: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![
        3 => prop::sample::select(likely).prop_map(Value::from),
        1 => any_json(),
    ]
    .boxed()
}

/// An object holding each field, mostly.
fn object(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let (names, values): (Vec<_>, Vec<_>) = fields.into_iter().unzip();
    let values: Vec<_> = values
        .into_iter()
        .map(|v| prop::option::weighted(0.85, v))
        .collect();
    values
        .prop_map(move |values| {
            let map: Map<String, Value> = names
                .iter()
                .zip(values)
                .filter_map(|(k, v)| v.map(|v| ((*k).to_owned(), v)))
                .collect();
            Value::Object(map)
        })
        .boxed()
}

fn time() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(json!("2025-01-02T03:04:05.678Z")),
        Just(json!("9999-12-31T23:59:59Z")),
        any_json(),
    ]
    .boxed()
}

fn product_line() -> BoxedStrategy<Value> {
    object(vec![
        ("productId", one_of_or_any(&[PRODUCT, "other"])),
        (
            "productOfferDetails",
            object(vec![
                ("quantity", any_json().boxed()),
                (
                    "consumptionState",
                    one_of_or_any(&["CONSUMPTION_STATE_CONSUMED"]),
                ),
            ]),
        ),
    ])
}

/// A productsv2 `ProductPurchaseV2` with each field absent, plausible, or of any type.
fn product_v2() -> BoxedStrategy<Value> {
    object(vec![
        (
            "productLineItem",
            prop_oneof![
                prop::collection::vec(product_line(), 0..3).prop_map(Value::Array),
                any_json(),
            ]
            .boxed(),
        ),
        (
            "purchaseStateContext",
            object(vec![(
                "purchaseState",
                one_of_or_any(&["PURCHASED", "PENDING", "CANCELLED"]),
            )]),
        ),
        ("testPurchaseContext", any_json().boxed()),
        ("orderId", any_json().boxed()),
        ("purchaseCompletionTime", time()),
        ("obfuscatedExternalProfileId", any_json().boxed()),
        ("obfuscatedExternalAccountId", any_json().boxed()),
        (
            "acknowledgementState",
            one_of_or_any(&["ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"]),
        ),
    ])
}

fn money_units() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(|u| Value::from(u.to_string())),
        "[0-9]{1,25}".prop_map(Value::from),
        any_json(),
    ]
    .boxed()
}

fn subscription_line() -> BoxedStrategy<Value> {
    object(vec![
        ("productId", one_of_or_any(&[PRODUCT, "other"])),
        ("expiryTime", time()),
        ("latestSuccessfulOrderId", any_json().boxed()),
        (
            "autoRenewingPlan",
            object(vec![(
                "recurringPrice",
                object(vec![
                    ("units", money_units()),
                    ("nanos", any_json().boxed()),
                    ("currencyCode", one_of_or_any(&["EUR"])),
                ]),
            )]),
        ),
        ("offerPhase", any_json().boxed()),
    ])
}

/// A subscriptionsv2 `SubscriptionPurchaseV2` with each field absent, plausible, or of any type.
fn subscription_v2() -> BoxedStrategy<Value> {
    object(vec![
        (
            "lineItems",
            prop_oneof![
                prop::collection::vec(subscription_line(), 0..3).prop_map(Value::Array),
                any_json(),
            ]
            .boxed(),
        ),
        (
            "subscriptionState",
            one_of_or_any(&[
                "SUBSCRIPTION_STATE_ACTIVE",
                "SUBSCRIPTION_STATE_PENDING",
                "SUBSCRIPTION_STATE_EXPIRED",
                "SUBSCRIPTION_STATE_ON_HOLD",
            ]),
        ),
        ("startTime", time()),
        ("testPurchase", any_json().boxed()),
        ("linkedPurchaseToken", any_json().boxed()),
        ("latestOrderId", any_json().boxed()),
        (
            "externalAccountIdentifiers",
            object(vec![
                ("obfuscatedExternalProfileId", any_json().boxed()),
                ("obfuscatedExternalAccountId", any_json().boxed()),
            ]),
        ),
        (
            "acknowledgementState",
            one_of_or_any(&["ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"]),
        ),
    ])
}

/// HTTP status and body: mostly 200 with the JSON, sometimes an error status, a truncated
/// body or plain text.
fn reply(json: BoxedStrategy<Value>) -> impl Strategy<Value = (u16, String)> {
    let status = prop_oneof![
        6 => Just(200u16),
        1 => prop::sample::select(vec![204u16, 400, 401, 404, 409, 410, 429, 500, 503]),
    ];
    let body = prop_oneof![
        6 => json.clone().prop_map(|v| v.to_string()),
        1 => (json, any::<Index>()).prop_map(|(v, at)| {
            let s = v.to_string();
            s.chars().take(at.index(s.chars().count() + 1)).collect()
        }),
        1 => ".{0,40}",
    ];
    (status, body)
}

fn check_mapping(
    status: u16,
    result: &Result<VerifiedPurchase, StoreError>,
) -> Result<(), TestCaseError> {
    match result {
        Ok(purchase) => {
            prop_assert!(
                (200..300).contains(&status),
                "HTTP {status} mapped to a purchase"
            );
            prop_assert_eq!(purchase.platform, Platform::Google);
            prop_assert_eq!(purchase.product_id.as_str(), PRODUCT);
            prop_assert_eq!(purchase.purchase_token.as_deref(), Some(TOKEN));
            prop_assert!(purchase.quantity >= 1);
            prop_assert!(!purchase.store_transaction_id.is_empty());
        }
        Err(StoreError::Rejected { .. } | StoreError::Unavailable { .. }) => {}
        Err(StoreError::Misconfigured(_)) => prop_assert!(matches!(status, 401 | 403)),
    }
    Ok(())
}

/// ASCII text with one character replaced, inserted or removed (never whitespace at the ends,
/// which the check trims by design).
fn mutate(s: &str, at: Index, c: Index, how: u8) -> String {
    const ALPHABET: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\"{}:,_-";
    let mut bytes = s.as_bytes().to_vec();
    let new = ALPHABET[c.index(ALPHABET.len())];
    match how % 3 {
        0 => {
            let i = at.index(bytes.len());
            bytes[i] = if bytes[i] == new { b'~' } else { new };
        }
        1 => bytes.insert(at.index(bytes.len() + 1), new),
        _ => {
            bytes.remove(at.index(bytes.len()));
        }
    }
    String::from_utf8(bytes).unwrap()
}

#[test]
fn the_vector_verifies_and_its_purchase_maps() {
    let key = LicenseKey::from_base64(field("base64PublicKey")).unwrap();
    assert!(key.verifies(field("originalJson"), field("signature")));
    let signed = SignedData {
        data: field("originalJson").to_owned(),
        signature: field("signature").to_owned(),
    };
    let reply = json!({
        "productLineItem": [{ "productId": PRODUCT, "productOfferDetails": { "quantity": 2 } }],
        "purchaseStateContext": { "purchaseState": "PURCHASED" },
        "orderId": "GPA.1",
    });
    let purchase = FIXTURE
        .with(|f| {
            f.verify(
                ProductKind::Consumable,
                Some((200, reply.to_string())),
                Some(signed),
            )
        })
        .unwrap();
    assert_eq!(purchase.status, PurchaseStatus::Purchased);
    assert_eq!(purchase.quantity, 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn licence_keys_parse_any_text_without_panicking(
        text in ".{0,64}",
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        at in any::<Index>(),
        xor in 1..=255u8,
    ) {
        let _ = LicenseKey::from_base64(&text);
        let _ = LicenseKey::from_base64(&STANDARD.encode(&bytes));
        // The vector's key with one DER byte changed: refused, or a key that verifies nothing
        // the real key signed once the RSA key itself (from byte 24, after the SPKI header
        // and algorithm identifier) is touched.
        let mut der = STANDARD.decode(field("base64PublicKey")).unwrap();
        let i = at.index(der.len());
        der[i] ^= xor;
        let key = LicenseKey::from_base64(&STANDARD.encode(&der));
        if let Ok(key) = key
            && i >= RSA_KEY_OFFSET
        {
            prop_assert!(!key.verifies(field("originalJson"), field("signature")));
        }
    }

    #[test]
    fn arbitrary_data_and_signatures_never_verify(
        data in ".{0,200}",
        signature in ".{0,400}",
        raw in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let key = LicenseKey::from_base64(field("base64PublicKey")).unwrap();
        prop_assert!(!key.verifies(&data, &signature));
        prop_assert!(!key.verifies(field("originalJson"), &STANDARD.encode(&raw)));
        prop_assert!(!key.verifies(&data, field("signature")));
    }

    #[test]
    fn forged_purchase_json_is_refused_asking_google_at_most_once(
        mutate_data in any::<bool>(),
        at in any::<Index>(),
        c in any::<Index>(),
        how in any::<u8>(),
    ) {
        let (mut data, mut signature) =
            (field("originalJson").to_owned(), field("signature").to_owned());
        if mutate_data {
            data = mutate(&data, at, c, how);
        } else {
            signature = mutate(&signature, at, c, how);
        }
        let key = LicenseKey::from_base64(field("base64PublicKey")).unwrap();
        prop_assert!(!key.verifies(&data, &signature));
        let (result, calls) = FIXTURE.with(|f| {
            let before = f.stub.api_calls.load(Ordering::SeqCst);
            // Google, asked whether the key or the JSON is wrong, does not know the token.
            let unknown = (404, json!({ "error": { "code": 404, "message": "not found" } }).to_string());
            let result = f.verify(
                ProductKind::Consumable,
                Some(unknown),
                Some(SignedData { data, signature }),
            );
            (result, f.stub.api_calls.load(Ordering::SeqCst) - before)
        });
        prop_assert!(
            matches!(result, Err(StoreError::Rejected { reason: RejectReason::SignatureInvalid, .. })),
            "{result:?}"
        );
        prop_assert!(calls <= 1, "{calls} calls");
    }

    #[test]
    fn any_productsv2_answer_maps_without_panicking(answer in reply(product_v2())) {
        let status = answer.0;
        let result = FIXTURE.with(|f| f.verify(ProductKind::Consumable, Some(answer.clone()), None));
        check_mapping(status, &result)?;
        if let Ok(purchase) = &result {
            prop_assert_eq!(purchase.kind, None);
            let raw: Value = serde_json::from_str(&answer.1).unwrap();
            let state = &raw["purchaseStateContext"]["purchaseState"];
            prop_assert_eq!(
                purchase.status == PurchaseStatus::Purchased,
                state == "PURCHASED"
            );
        }
    }

    #[test]
    fn any_subscriptionsv2_answer_maps_without_panicking(answer in reply(subscription_v2())) {
        let status = answer.0;
        let result = FIXTURE.with(|f| f.verify(ProductKind::AutoRenewable, Some(answer), None));
        check_mapping(status, &result)?;
        if let Ok(purchase) = &result {
            prop_assert_eq!(purchase.kind, Some(ProductKind::AutoRenewable));
            prop_assert_eq!(purchase.quantity, 1);
            if let Some(price) = &purchase.price {
                prop_assert!(!price.currency.is_empty());
            }
        }
    }
}
