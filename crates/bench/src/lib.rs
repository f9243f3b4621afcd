//! Fixtures for the signature benchmarks (`benches/signatures.rs`): RSA-2048 keys generated on
//! the spot with purchase JSON signed the way Google Play and Huawei sign it, and the shared
//! conformance vectors. Depends on no `iap-*` crate: the benchmark drives the platform crates.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs8::EncodePublicKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
use rsa::{RsaPrivateKey, pkcs1v15, pss};

/// A public key (base64 DER SubjectPublicKeyInfo, as the consoles show it), signed text, and
/// the base64 signature over it.
#[derive(Debug, Clone)]
pub struct SignedFixture {
    /// The verifying key.
    pub public_key_base64: String,
    /// The exact signed text.
    pub data: String,
    /// Base64 signature over `data`.
    pub signature_base64: String,
}

/// How a fixture is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// SHA1withRSA, PKCS#1 v1.5 (Google Play licence key).
    Sha1Pkcs1,
    /// SHA256WithRSA, PKCS#1 v1.5 (Huawei's default).
    Sha256Pkcs1,
    /// SHA256WithRSA/PSS, MGF1-SHA-256, 32-byte salt (Huawei).
    Sha256Pss,
}

/// A `Purchase.getOriginalJson()` as Google Play writes it.
pub const GOOGLE_ORIGINAL_JSON: &str = r#"{"orderId":"GPA.3391-2876-4415-19523","packageName":"com.example.game","productId":"gems_100","purchaseTime":1767225600000,"purchaseState":0,"purchaseToken":"mfgkcmjlmjkdbgpdmkfhkcbp.AO-J1OyQxK3l7lJx9YhEJv0n1CwKq3bH4Zr8nM2pLs5tRv6uWx7yAz0bCd1eFg2hIj3kLm4nOp5qRs6tUv7wXy8zA9bC0dE1fG2hI3jK4lM5nO6pQ7rS8tU9vW0xY1zA2bC3dE","obfuscatedAccountId":"u_8f3a2c","quantity":1,"acknowledged":false}"#;

/// An `InAppPurchaseData` as Huawei IAP writes it.
pub const HUAWEI_PURCHASE_DATA: &str = r#"{"autoRenewing":false,"orderId":"202601010000000000000001","packageName":"com.example.game","applicationId":110000001,"kind":0,"productId":"gems_100","productName":"100 gems","purchaseTime":1767225600000,"purchaseTimeMillis":1767225600000,"purchaseState":0,"developerPayload":"0193f0c4-7a1e-7c2b-9d4e-5f6a7b8c9d0e","purchaseToken":"000001946f1c2b3a.e8b5f1a2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2.1","consumptionState":0,"confirmed":0,"purchaseType":0,"currency":"EUR","price":199,"country":"DE","payOrderId":"WPAY0123456789","payType":"17","sdkChannel":"1"}"#;

/// Generates an RSA-2048 key and signs `data` with it under `scheme`.
pub fn sign_with_new_key(data: &str, scheme: Scheme) -> SignedFixture {
    let mut rng = rand::thread_rng();
    let key = RsaPrivateKey::new(&mut rng, 2048).expect("RSA-2048 key generation");
    let public_key = key
        .to_public_key()
        .to_public_key_der()
        .expect("SPKI encoding of an RSA key");
    let signature = match scheme {
        Scheme::Sha1Pkcs1 => pkcs1v15::SigningKey::<sha1::Sha1>::new(key)
            .sign(data.as_bytes())
            .to_vec(),
        Scheme::Sha256Pkcs1 => pkcs1v15::SigningKey::<sha2::Sha256>::new(key)
            .sign(data.as_bytes())
            .to_vec(),
        Scheme::Sha256Pss => pss::BlindedSigningKey::<sha2::Sha256>::new(key)
            .sign_with_rng(&mut rng, data.as_bytes())
            .to_vec(),
    };
    SignedFixture {
        public_key_base64: STANDARD.encode(public_key.as_bytes()),
        data: data.to_owned(),
        signature_base64: STANDARD.encode(signature),
    }
}

/// A file of the shared conformance vectors (`shared/conformance/<path>` beside the project,
/// found from the nearest ancestor that has it, so worktrees find it too).
pub fn conformance_file(path: &str) -> Vec<u8> {
    let root = conformance_root();
    let full = root.join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn conformance_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared").join("conformance"))
        .find(|dir| dir.is_dir())
        .expect("shared/conformance beside the project")
}
