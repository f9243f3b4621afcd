//! Property tests: Huawei's signature checks, `responseCode` reading and `InAppPurchaseData`
//! mapping take any input without panicking. Store answers go through the public entry,
//! `HuaweiVerifier::verify`, served by a stub Order/Subscription service whose reply each case
//! sets; the data in it is signed here with a key generated for the run. Data whose signature
//! does not match never maps to a purchase.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use proptest::sample::Index;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use iap_domain::ports::{PurchaseVerifier, StoreError, VerifyContext};
use iap_domain::purchase::{PurchaseProof, SignedData, VerifiedPurchase};
use iap_domain::{AppId, Platform, ProductId, ProductKind, ProductPolicy, RejectReason};
use iap_platform_huawei::api::response_code;
use iap_platform_huawei::signature::{IapPublicKey, PKCS1, PSS};
use iap_platform_huawei::{HuaweiAppConfig, HuaweiVerifier};

const TOKEN: &str = "00000173.token";
const PRODUCT: &str = "gems_100";

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

/// `huawei_pss_test_vector.json`: Huawei's key, signed content and PSS signature.
static VECTOR: LazyLock<Value> = LazyLock::new(|| {
    let path = conformance("huawei/huawei_pss_test_vector.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
});

fn field(name: &str) -> &'static str {
    VECTOR[name].as_str().unwrap()
}

/// The app's IAP key pair, generated for the run.
static KEY: LazyLock<rsa::RsaPrivateKey> =
    LazyLock::new(|| rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap());

fn public_key_base64() -> String {
    use rsa::pkcs8::EncodePublicKey;
    STANDARD.encode(KEY.to_public_key().to_public_key_der().unwrap().as_bytes())
}

/// Signs like Huawei: PSS (MGF1-SHA-256, 32-byte salt) when asked, PKCS#1 v1.5 otherwise.
fn sign(data: &str, pss: bool) -> String {
    let signature = if pss {
        rsa::pss::BlindedSigningKey::<Sha256>::new(KEY.clone())
            .sign_with_rng(&mut rand::thread_rng(), data.as_bytes())
            .to_vec()
    } else {
        rsa::pkcs1v15::SigningKey::<Sha256>::new(KEY.clone())
            .sign(data.as_bytes())
            .to_vec()
    };
    STANDARD.encode(signature)
}

#[derive(Clone, Default)]
struct Stub {
    reply: Arc<Mutex<String>>,
    api_calls: Arc<AtomicUsize>,
}

async fn token() -> axum::Json<Value> {
    axum::Json(json!({ "access_token": "stub", "expires_in": 3600 }))
}

async fn answer(State(stub): State<Stub>) -> ([(&'static str, &'static str); 1], String) {
    stub.api_calls.fetch_add(1, Ordering::SeqCst);
    let body = stub.reply.lock().unwrap().clone();
    ([("content-type", "application/json")], body)
}

/// One stub and verifier per test thread, so parallel tests never share a reply.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    stub: Stub,
    verifier: HuaweiVerifier,
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
            .route("/oauth", post(token))
            .fallback(answer)
            .with_state(stub.clone());
        runtime.spawn(async move { axum::serve(listener, router).await });
        let config = HuaweiAppConfig {
            app_id: "10000001".into(),
            client_secret: "secret".into(),
            public_key_base64: public_key_base64(),
            prefer_pss: false,
            token_url: format!("{base}/oauth"),
            orders_root_url: format!("{base}/orders"),
            subscriptions_root_url: format!("{base}/subscriptions"),
            apptouch_orders_root_url: format!("{base}/orders-at"),
            apptouch_subscriptions_root_url: format!("{base}/subscriptions-at"),
        };
        let app = AppId::parse("game").unwrap();
        let verifier = HuaweiVerifier::new([(&app, &config)]).unwrap();
        Self {
            runtime,
            stub,
            verifier,
            app,
        }
    }

    fn verify(
        &self,
        reply: Option<String>,
        signed_data: SignedData,
        algorithm: Option<&str>,
    ) -> Result<VerifiedPurchase, StoreError> {
        if let Some(reply) = reply {
            *self.stub.reply.lock().unwrap() = reply;
        }
        let policy = ProductPolicy {
            kind: ProductKind::Consumable,
            max_quantity: 10,
            subscription_group: None,
        };
        let proof = PurchaseProof::Huawei {
            purchase_token: TOKEN.into(),
            product_id: ProductId::parse(PRODUCT).unwrap(),
            signed_data,
            signature_algorithm: algorithm.map(str::to_owned),
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
        any::<i64>().prop_map(|n| Value::from(n.to_string())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A small number, as Huawei sends it (string) or as fixtures do (number), or anything.
fn code() -> BoxedStrategy<Value> {
    prop_oneof![
        2 => (0..4i64).prop_map(Value::from),
        2 => (0..4i64).prop_map(|n| Value::from(n.to_string())),
        1 => any_json(),
    ]
    .boxed()
}

/// `InAppPurchaseData` naming this token and product, other fields absent, plausible or of
/// any type.
fn purchase_data() -> impl Strategy<Value = Value> {
    let fields: Vec<(&'static str, BoxedStrategy<Value>)> = vec![
        (
            "orderId",
            prop_oneof![Just(json!("order-1")), any_json()].boxed(),
        ),
        ("purchaseState", code()),
        ("kind", code()),
        ("subscriptionId", any_json().boxed()),
        ("price", any_json().boxed()),
        (
            "currency",
            prop_oneof![Just(json!("EUR")), any_json()].boxed(),
        ),
        ("purchaseTime", any_json().boxed()),
        ("expirationDate", any_json().boxed()),
        ("quantity", any_json().boxed()),
        ("developerPayload", any_json().boxed()),
        ("trialFlag", code()),
        ("purchaseType", code()),
        ("consumptionState", code()),
        ("productGroup", any_json().boxed()),
    ];
    let (names, values): (Vec<_>, Vec<_>) = fields.into_iter().unzip();
    let values: Vec<_> = values
        .into_iter()
        .map(|v| prop::option::weighted(0.85, v))
        .collect();
    values.prop_map(move |values| {
        let mut map: Map<String, Value> = names
            .iter()
            .zip(values)
            .filter_map(|(k, v)| v.map(|v| ((*k).to_owned(), v)))
            .collect();
        map.insert("purchaseToken".into(), json!(TOKEN));
        map.insert("productId".into(), json!(PRODUCT));
        Value::Object(map)
    })
}

/// How the store's answer is made.
#[derive(Debug, Clone)]
struct Answer {
    response_code: Value,
    message: Value,
    data: Value,
    /// Sign `data` properly (else a random signature).
    genuine: bool,
    /// `signatureAlgorithm`, when present.
    algorithm: Option<Value>,
    /// Send plain text instead of JSON.
    garbage: Option<String>,
}

fn answer_strategy() -> impl Strategy<Value = Answer> {
    (
        prop_oneof![
            4 => Just(json!("0")),
            1 => prop::sample::select(vec!["9", "5", "6", "8", "11", "12", "1"]).prop_map(Value::from),
            1 => any_json(),
        ],
        any_json(),
        prop_oneof![4 => purchase_data(), 1 => any_json()],
        any::<bool>(),
        prop::option::of(prop_oneof![
            Just(json!(PSS)),
            Just(json!(PKCS1)),
            any_json(),
        ]),
        prop::option::weighted(0.05, ".{0,30}"),
    )
        .prop_map(
            |(response_code, message, data, genuine, algorithm, garbage)| Answer {
                response_code,
                message,
                data,
                genuine,
                algorithm,
                garbage,
            },
        )
}

impl Answer {
    /// Whether the verifier can check this answer's signature (a known algorithm, or none).
    fn checkable(&self) -> bool {
        match self.algorithm.as_ref().and_then(Value::as_str) {
            None => true,
            Some(name) => name == PSS || name == PKCS1,
        }
    }

    fn body(&self, kind_is_subscription: bool) -> String {
        if let Some(garbage) = &self.garbage {
            return garbage.clone();
        }
        let data = self.data.to_string();
        let pss = self.algorithm.as_ref().and_then(Value::as_str) == Some(PSS);
        let signature = if self.genuine {
            sign(&data, pss)
        } else {
            STANDARD.encode(data.as_bytes())
        };
        let data_field = if kind_is_subscription {
            "inappPurchaseData"
        } else {
            "purchaseTokenData"
        };
        let mut body = json!({
            "responseCode": self.response_code,
            "responseMessage": self.message,
            "dataSignature": signature,
        });
        body[data_field] = json!(data);
        if let Some(algorithm) = &self.algorithm {
            body["signatureAlgorithm"] = algorithm.clone();
        }
        body.to_string()
    }
}

fn check_mapping(result: &Result<VerifiedPurchase, StoreError>) -> Result<(), TestCaseError> {
    if let Ok(purchase) = result {
        prop_assert_eq!(purchase.platform, Platform::Huawei);
        prop_assert_eq!(purchase.product_id.as_str(), PRODUCT);
        prop_assert_eq!(purchase.purchase_token.as_deref(), Some(TOKEN));
        prop_assert!(purchase.quantity >= 1);
        prop_assert!(!purchase.store_transaction_id.is_empty());
        prop_assert_eq!(
            purchase.store_order_id.as_deref(),
            Some(purchase.store_transaction_id.as_str())
        );
        if let Some(price) = &purchase.price {
            prop_assert!(!price.currency.is_empty());
        }
    }
    Ok(())
}

/// ASCII text with one character replaced, inserted or removed (never whitespace at the ends,
/// which the check trims by design).
fn mutate(s: &str, at: Index, c: Index, how: u8) -> String {
    const ALPHABET: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\"{}:,_-&.";
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
fn the_vector_verifies_as_pss_only_and_a_signed_purchase_maps() {
    let key = IapPublicKey::from_base64(field("publicKeyBase64SPKI")).unwrap();
    let (content, signature) = (field("contentUtf8"), field("signatureBase64"));
    assert!(key.verifies(content, signature, Some(PSS)));
    assert!(!key.verifies(content, signature, None));

    let client = json!({ "purchaseToken": TOKEN, "productId": PRODUCT, "kind": 0 }).to_string();
    let store = json!({ "productId": PRODUCT, "orderId": "o-1", "purchaseState": 0 }).to_string();
    let reply = json!({
        "responseCode": "0",
        "purchaseTokenData": store,
        "dataSignature": sign(&store, true),
        "signatureAlgorithm": PSS,
    });
    let signed = SignedData {
        signature: sign(&client, false),
        data: client,
    };
    let purchase = FIXTURE
        .with(|f| f.verify(Some(reply.to_string()), signed, None))
        .unwrap();
    assert_eq!(purchase.store_transaction_id, "o-1");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn keys_parse_any_text_without_panicking(
        text in ".{0,64}",
        bytes in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let _ = IapPublicKey::from_base64(&text);
        let _ = IapPublicKey::from_base64(&STANDARD.encode(&bytes));
    }

    #[test]
    fn arbitrary_data_signatures_and_algorithms_never_verify(
        data in ".{0,200}",
        signature in ".{0,400}",
        raw in prop::collection::vec(any::<u8>(), 0..300),
        algorithm in prop::option::of(prop_oneof![Just(PSS.to_owned()), Just(PKCS1.to_owned()), ".{0,20}"]),
    ) {
        let key = IapPublicKey::from_base64(field("publicKeyBase64SPKI")).unwrap();
        let algorithm = algorithm.as_deref();
        prop_assert!(!key.verifies(&data, &signature, algorithm));
        prop_assert!(!key.verifies(field("contentUtf8"), &STANDARD.encode(&raw), algorithm));
        prop_assert!(!key.verifies(&data, field("signatureBase64"), algorithm));
        // The genuine pair verifies under PSS only.
        prop_assert_eq!(
            key.verifies(field("contentUtf8"), field("signatureBase64"), algorithm),
            algorithm == Some(PSS)
        );
    }

    #[test]
    fn a_mutated_vector_never_verifies(
        mutate_content in any::<bool>(),
        at in any::<Index>(),
        c in any::<Index>(),
        how in any::<u8>(),
    ) {
        let key = IapPublicKey::from_base64(field("publicKeyBase64SPKI")).unwrap();
        let (mut content, mut signature) =
            (field("contentUtf8").to_owned(), field("signatureBase64").to_owned());
        if mutate_content {
            content = mutate(&content, at, c, how);
        } else {
            signature = mutate(&signature, at, c, how);
        }
        prop_assert!(!key.verifies(&content, &signature, Some(PSS)));
    }

    #[test]
    fn response_codes_are_read_from_any_json(reply in any_json(), code in any_json()) {
        let _ = response_code(&reply);
        let expected = match &code {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        prop_assert_eq!(response_code(&json!({ "responseCode": code })), expected);
    }

    #[test]
    fn forged_purchase_data_is_refused_before_any_network_call(
        mutate_data in any::<bool>(),
        pss in any::<bool>(),
        at in any::<Index>(),
        c in any::<Index>(),
        how in any::<u8>(),
    ) {
        let client = json!({ "purchaseToken": TOKEN, "productId": PRODUCT, "kind": 0 }).to_string();
        let (mut data, mut signature) = (client.clone(), sign(&client, pss));
        if mutate_data {
            data = mutate(&data, at, c, how);
        } else {
            signature = mutate(&signature, at, c, how);
        }
        let algorithm = pss.then_some(PSS);
        let (result, calls) = FIXTURE.with(|f| {
            let before = f.stub.api_calls.load(Ordering::SeqCst);
            let result = f.verify(None, SignedData { data, signature }, algorithm);
            (result, f.stub.api_calls.load(Ordering::SeqCst) - before)
        });
        prop_assert!(
            matches!(result, Err(StoreError::Rejected { reason: RejectReason::SignatureInvalid, .. })),
            "{result:?}"
        );
        prop_assert_eq!(calls, 0);
    }

    #[test]
    fn any_store_answer_maps_without_panicking(
        client in purchase_data(),
        client_pss in any::<bool>(),
        answer in answer_strategy(),
    ) {
        let client_text = client.to_string();
        let signed = SignedData { signature: sign(&client_text, client_pss), data: client_text };
        let subscription = matches!(client["kind"].as_i64(), Some(2))
            || client["kind"].as_str() == Some("2");
        let body = answer.body(subscription);
        let algorithm = client_pss.then_some(PSS);
        let result = FIXTURE.with(|f| f.verify(Some(body), signed, algorithm));
        check_mapping(&result)?;
        if result.is_ok() && response_code(&json!({ "responseCode": answer.response_code })) == "0" {
            // The store's data only counts when its signature checks out.
            prop_assert!(answer.garbage.is_none() && answer.genuine && answer.checkable());
        }
    }
}
