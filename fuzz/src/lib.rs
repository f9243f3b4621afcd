//! Shared fixtures for the fuzz targets: deterministic test keys (never a store's), the data
//! they signed, and a runtime for the async decoders. Keys come from fixed seeds, so the seed
//! corpora written by `examples/seeds.rs` verify in every later run, and any input a target
//! finds acceptable can be checked against the exact set of things these keys ever signed.

use std::collections::HashSet;
use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

pub mod seeds;

/// "Now" for every check that needs one: 2025-06-15.
pub const NOW_MS: i64 = 1_750_000_000_000;

/// Splits a fuzz input into at most `n` parts at NUL bytes (JSON text never holds a raw NUL).
pub fn split_nul(data: &[u8], n: usize) -> Vec<&[u8]> {
    data.splitn(n, |b| *b == 0).collect()
}

/// Lossless text of a part, or `None` when it is not UTF-8 (the parsers take `&str`).
pub fn text(part: &[u8]) -> Option<&str> {
    std::str::from_utf8(part).ok()
}

/// One current-thread runtime per fuzz process, for the async decoders.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
    }
    RUNTIME.with(|rt| rt.block_on(future))
}

/// A `rand` RNG from a fixed seed.
fn seeded(seed: u64) -> rand::rngs::StdRng {
    use rand::SeedableRng;
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// The App Store fixture: a three-certificate ES256 chain with Apple's marker OIDs under a
/// test root, and JWS it signed.
pub mod apple {
    use super::*;
    use iap_platform_apple::ChainTrust;
    use p256::ecdsa::signature::Signer;

    /// The configured bundle.
    pub const BUNDLE: &str = "com.example.game";
    /// The configured app's Apple id.
    pub const APP_APPLE_ID: i64 = 1_234_567_890;

    /// The test chain and what it signed.
    #[derive(Debug)]
    pub struct Fixture {
        /// DER of the test root.
        pub root_der: Vec<u8>,
        x5c: [String; 3],
        leaf: p256::ecdsa::SigningKey,
        /// Every payload (base64url, as in the JWS) the leaf signed.
        signed_payloads: HashSet<String>,
        /// Signed transactions, renewal infos and notification payloads (compact JWS).
        pub transactions: Vec<String>,
        /// `{"signedPayload": …}` notification bodies.
        pub notifications: Vec<String>,
    }

    /// A P-256 key that signs certificates deterministically (RFC 6979), so every run builds
    /// byte-identical certificates and the seed corpora stay valid across runs.
    struct Deterministic {
        key: p256::ecdsa::SigningKey,
        public: Vec<u8>,
    }

    impl rcgen::PublicKeyData for Deterministic {
        fn der_bytes(&self) -> &[u8] {
            &self.public
        }

        fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
            &rcgen::PKCS_ECDSA_P256_SHA256
        }
    }

    impl rcgen::SigningKey for Deterministic {
        fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
            let signature: p256::ecdsa::Signature = self.key.sign(msg);
            Ok(signature.to_der().as_bytes().to_vec())
        }
    }

    fn key(byte: u8) -> (p256::ecdsa::SigningKey, Deterministic) {
        let secret = p256::SecretKey::from_slice(&[byte; 32]).expect("valid scalar");
        let key = p256::ecdsa::SigningKey::from(secret);
        let public = key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        (key.clone(), Deterministic { key, public })
    }

    fn params(name: &str, ca: bool, oid: &[u64]) -> rcgen::CertificateParams {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2035, 1, 1);
        if ca {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        if !oid.is_empty() {
            params
                .custom_extensions
                .push(rcgen::CustomExtension::from_oid_content(
                    oid,
                    vec![0x05, 0x00],
                ));
        }
        params
    }

    impl Fixture {
        fn new() -> Self {
            let (_, root_pair) = key(1);
            let (_, inter_pair) = key(2);
            let (leaf, leaf_pair) = key(3);
            let root =
                rcgen::CertifiedIssuer::self_signed(params("Fuzz Test Root", true, &[]), root_pair)
                    .expect("root");
            let inter = rcgen::CertifiedIssuer::signed_by(
                params("Fuzz Test WWDR", true, &[1, 2, 840, 113_635, 100, 6, 2, 1]),
                inter_pair,
                &root,
            )
            .expect("intermediate");
            let leaf_cert = params(
                "Fuzz Test Store Signing",
                false,
                &[1, 2, 840, 113_635, 100, 6, 11, 1],
            )
            .signed_by(&leaf_pair, &inter)
            .expect("leaf");
            let mut fixture = Self {
                root_der: root.der().to_vec(),
                x5c: [
                    STANDARD.encode(leaf_cert.der()),
                    STANDARD.encode(inter.der()),
                    STANDARD.encode(root.der()),
                ],
                leaf,
                signed_payloads: HashSet::new(),
                transactions: Vec::new(),
                notifications: Vec::new(),
            };
            fixture.sign_seeds();
            fixture
        }

        /// Signs `payload` with the leaf (ES256, deterministic) and remembers it.
        fn sign(&mut self, payload: &Value) -> String {
            let header = json!({ "alg": "ES256", "x5c": self.x5c });
            let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
            let input = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(header.to_string()));
            let signature: p256::ecdsa::Signature = self.leaf.sign(input.as_bytes());
            let jws = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()));
            self.signed_payloads.insert(payload);
            jws
        }

        fn sign_seeds(&mut self) {
            let signed_date = NOW_MS - 60_000;
            let transaction = |id: &str, kind: &str, extra: Value| {
                let mut t = json!({
                    "transactionId": id, "originalTransactionId": id, "bundleId": BUNDLE,
                    "productId": "gems_100", "purchaseDate": signed_date - 1000,
                    "signedDate": signed_date, "quantity": 1, "type": kind,
                    "environment": "Production", "inAppOwnershipType": "PURCHASED",
                    "appAccountToken": "0190b2c4-3f7a-7c3e-9a55-1234567890AB",
                    "currency": "EUR", "price": 1990, "storefront": "FRA",
                });
                if let (Value::Object(t), Value::Object(extra)) = (&mut t, extra) {
                    t.extend(extra);
                }
                t
            };
            let consumable = self.sign(&transaction("2000000000000001", "Consumable", json!({})));
            let refunded = self.sign(&transaction(
                "2000000000000002",
                "Non-Consumable",
                json!({ "revocationDate": signed_date, "revocationReason": 1 }),
            ));
            let subscription = self.sign(&transaction(
                "2000000000000003",
                "Auto-Renewable Subscription",
                json!({ "expiresDate": NOW_MS + 86_400_000, "offerDiscountType": "FREE_TRIAL",
                        "subscriptionGroupIdentifier": "21000000", "environment": "Sandbox" }),
            ));
            let xcode = self.sign(&json!({
                "transactionId": "0", "bundleId": BUNDLE, "productId": "gems_100",
                "purchaseDate": 1.75e12 + 0.5, "signedDate": 1.749_999_9e12 + 0.25,
                "environment": "Xcode", "type": "Consumable",
            }));
            let renewal = self.sign(&json!({
                "originalTransactionId": "2000000000000003", "autoRenewProductId": "vip_month",
                "productId": "vip_month", "autoRenewStatus": 1, "signedDate": signed_date,
                "environment": "Sandbox", "renewalDate": NOW_MS + 86_400_000,
            }));
            let notification = |me: &mut Self, kind: &str, sub: Option<&str>, tx: Option<&str>| {
                let mut data = json!({
                    "appAppleId": APP_APPLE_ID, "bundleId": BUNDLE, "bundleVersion": "1",
                    "environment": "Production", "status": 1,
                });
                if let Some(tx) = tx {
                    data["signedTransactionInfo"] = json!(tx);
                }
                let mut n = json!({
                    "notificationType": kind, "notificationUUID":
                        format!("0b7a4c1e-0000-4000-8000-{:012}", me.notifications.len()),
                    "version": "2.0", "signedDate": signed_date, "data": data,
                });
                if let Some(sub) = sub {
                    n["subtype"] = json!(sub);
                }
                let jws = me.sign(&n);
                me.notifications
                    .push(json!({ "signedPayload": jws }).to_string());
            };
            notification(self, "ONE_TIME_CHARGE", None, Some(&consumable));
            notification(self, "REFUND", None, Some(&refunded));
            notification(
                self,
                "DID_RENEW",
                Some("BILLING_RECOVERY"),
                Some(&subscription),
            );
            notification(self, "TEST", None, None);
            let summary = self.sign(&json!({
                "notificationType": "RENEWAL_EXTENSION", "subtype": "SUMMARY",
                "notificationUUID": "0b7a4c1e-0000-4000-8000-999999999999", "version": "2.0",
                "signedDate": signed_date,
                "summary": { "requestIdentifier": "r1", "environment": "Production",
                             "appAppleId": APP_APPLE_ID, "bundleId": BUNDLE,
                             "productId": "vip_month", "succeededCount": 3, "failedCount": 0 },
            }));
            self.notifications
                .push(json!({ "signedPayload": summary }).to_string());
            self.transactions = vec![consumable, refunded, subscription, xcode, renewal];
        }

        /// Trust in the test root only.
        pub fn trust(&self) -> ChainTrust {
            ChainTrust::empty().with_root(self.root_der.clone())
        }

        /// Whether `jws` (as `verify` reads it) has a payload this fixture's leaf signed and a
        /// header of the shape the fixture writes (`alg` and `x5c` only): the only way a JWS
        /// can verify under the test root, since the leaf key signs nothing else.
        pub fn signed(&self, jws: &str) -> bool {
            let mut parts = jws.trim().split('.');
            let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
                return false;
            };
            let header: Option<serde_json::Map<String, Value>> = URL_SAFE_NO_PAD
                .decode(header)
                .ok()
                .and_then(|h| serde_json::from_slice(&h).ok());
            let shaped = header.is_some_and(|h| {
                h.len() == 2 && h["alg"] == "ES256" && h.get("x5c").is_some_and(Value::is_array)
            });
            shaped && self.signed_payloads.contains(payload)
        }
    }

    /// The fixture, built once per process.
    pub fn fixture() -> &'static Fixture {
        static FIXTURE: LazyLock<Fixture> = LazyLock::new(Fixture::new);
        &FIXTURE
    }
}

/// RSA fixtures: Google's licence key (SHA1withRSA) and Huawei's IAP key (SHA256WithRSA and
/// SHA256WithRSA/PSS), each from a fixed seed.
pub mod rsa_keys {
    use super::*;
    use rsa::pkcs8::EncodePublicKey;
    use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};

    /// A key pair and the data it signed.
    #[derive(Debug)]
    pub struct Fixture {
        key: rsa::RsaPrivateKey,
        /// Base64 DER SubjectPublicKeyInfo, as the consoles show it.
        pub public_base64: String,
        signed: HashSet<String>,
        /// `(data, signature, algorithm)` seeds; algorithm `None` for PKCS#1 v1.5.
        pub seeds: Vec<(String, String, Option<&'static str>)>,
    }

    impl Fixture {
        fn new(seed: u64) -> Self {
            let key = rsa::RsaPrivateKey::new(&mut seeded(seed), 2048).expect("RSA key");
            let public_base64 = STANDARD.encode(
                key.to_public_key()
                    .to_public_key_der()
                    .expect("SPKI")
                    .as_bytes(),
            );
            Self {
                key,
                public_base64,
                signed: HashSet::new(),
                seeds: Vec::new(),
            }
        }

        /// Signs `data` with SHA1withRSA (Google) and remembers it.
        fn sign_sha1(&mut self, data: String) {
            let signer = rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(self.key.clone());
            let signature = STANDARD.encode(signer.sign(data.as_bytes()).to_bytes());
            self.signed.insert(data.clone());
            self.seeds.push((data, signature, None));
        }

        /// Signs `data` with SHA256WithRSA or its PSS variant (Huawei) and remembers it.
        fn sign_sha256(&mut self, data: String, pss: bool) {
            let signature = if pss {
                let signer =
                    rsa::pss::SigningKey::<sha2::Sha256>::new_with_salt_len(self.key.clone(), 32);
                STANDARD.encode(
                    signer
                        .sign_with_rng(&mut seeded(7), data.as_bytes())
                        .to_bytes(),
                )
            } else {
                let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(self.key.clone());
                STANDARD.encode(signer.sign(data.as_bytes()).to_bytes())
            };
            self.signed.insert(data.clone());
            let algorithm = pss.then_some(iap_platform_huawei::signature::PSS);
            self.seeds.push((data, signature, algorithm));
        }

        /// Whether this key ever signed exactly `data`.
        pub fn signed(&self, data: &str) -> bool {
            self.signed.contains(data)
        }
    }

    /// The configured Google package.
    pub const GOOGLE_PACKAGE: &str = "com.example.game";
    /// The purchase token of the Google seeds.
    pub const GOOGLE_TOKEN: &str = "opaque-token-abc";
    /// The Huawei purchase token of the seeds.
    pub const HUAWEI_TOKEN: &str =
        "00000173741056a37eef310dff9c6a86fec57efafe318ae478e52d9c4e994d804f2fb9b8af8b.1";

    /// Google Play's licence key and signed `getOriginalJson()` texts.
    pub fn google() -> &'static Fixture {
        static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
            let mut f = Fixture::new(11);
            f.sign_sha1(
                json!({
                    "orderId": "GPA.1234-5678-9012-34567", "packageName": GOOGLE_PACKAGE,
                    "productId": "gems_100", "purchaseTime": 1_750_000_000_000_i64,
                    "purchaseState": 0, "purchaseToken": GOOGLE_TOKEN, "quantity": 1,
                    "acknowledged": false,
                })
                .to_string(),
            );
            f.sign_sha1(
                json!({
                    "orderId": "GPA.1234-5678-9012-34568", "packageName": GOOGLE_PACKAGE,
                    "productIds": ["vip_month"], "purchaseTime": 1_750_000_000_000_i64,
                    "purchaseState": 0, "token": GOOGLE_TOKEN, "autoRenewing": true,
                })
                .to_string(),
            );
            f
        });
        &FIXTURE
    }

    /// Huawei's IAP key and signed `InAppPurchaseData` texts.
    pub fn huawei() -> &'static Fixture {
        static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
            let mut f = Fixture::new(13);
            let data = |kind: i64, extra: Value| {
                let mut d = json!({
                    "autoRenewing": false, "orderId": "202506151200001234", "packageName":
                    "com.example.game", "applicationId": 101_234_567, "kind": kind,
                    "productId": "gems_100", "productName": "100 gems",
                    "purchaseTime": 1_750_000_000_000_i64, "purchaseTimeMillis": 1_750_000_000_000_i64,
                    "purchaseState": 0, "developerPayload": "0190b2c4-3f7a-7c3e-9a55-1234567890ab",
                    "purchaseToken": HUAWEI_TOKEN, "consumptionState": 0, "confirmed": 0,
                    "purchaseType": 0, "currency": "EUR", "price": 199, "country": "FR",
                    "payOrderId": "sandbox2025061512000012345", "payType": "4",
                    "sdkChannel": "1", "quantity": 1,
                });
                if let (Value::Object(d), Value::Object(extra)) = (&mut d, extra) {
                    d.extend(extra);
                }
                d.to_string()
            };
            f.sign_sha256(data(0, json!({})), false);
            f.sign_sha256(
                data(1, json!({ "purchaseState": 2, "purchaseType": 1 })),
                true,
            );
            f.sign_sha256(
                data(
                    2,
                    json!({ "productId": "vip_month", "subscriptionId": "1000001234",
                            "expirationDate": 1_752_592_000_000_i64, "trialFlag": 1,
                            "productGroup": "vip", "price": "499" }),
                ),
                false,
            );
            f
        });
        &FIXTURE
    }
}
