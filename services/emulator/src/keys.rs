//! Key material and identifiers the emulator makes up.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::{Rng, RngCore};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer};
use rsa::{RsaPrivateKey, RsaPublicKey};

/// An RSA key pair with the encodings the stores publish.
#[derive(Debug, Clone)]
pub(crate) struct RsaKey {
    pub(crate) private: RsaPrivateKey,
}

// Persisted as PKCS#8 PEM, the form a key file has.
impl serde::Serialize for RsaKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.private_pkcs8_pem())
    }
}

impl<'de> serde::Deserialize<'de> for RsaKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use rsa::pkcs8::DecodePrivateKey;
        let pem = String::deserialize(deserializer)?;
        RsaPrivateKey::from_pkcs8_pem(&pem)
            .map(|private| Self { private })
            .map_err(serde::de::Error::custom)
    }
}

impl RsaKey {
    /// A new key of `bits` bits.
    pub(crate) fn generate(bits: usize) -> Self {
        let private =
            RsaPrivateKey::new(&mut rand::thread_rng(), bits).expect("RSA key generation");
        Self { private }
    }

    pub(crate) fn public(&self) -> RsaPublicKey {
        self.private.to_public_key()
    }

    /// Base64 DER SubjectPublicKeyInfo (Play Console licence key, AppGallery Connect key).
    pub(crate) fn public_spki_base64(&self) -> String {
        STANDARD.encode(
            self.public()
                .to_public_key_der()
                .expect("SPKI encoding")
                .as_bytes(),
        )
    }

    /// PKCS#8 PEM (a Google service-account key file's `private_key`).
    pub(crate) fn private_pkcs8_pem(&self) -> String {
        self.private
            .to_pkcs8_pem(LineEnding::LF)
            .expect("PKCS#8 encoding")
            .to_string()
    }

    /// `SHA256WithRSA` (PKCS#1 v1.5) or `SHA256WithRSA/PSS` (salt 32, MGF1-SHA-256), base64:
    /// Huawei's data signatures.
    pub(crate) fn sign_sha256_base64(&self, data: &[u8], pss: bool) -> String {
        if pss {
            let key =
                rsa::pss::SigningKey::<sha2::Sha256>::new_with_salt_len(self.private.clone(), 32);
            let signature = rsa::signature::RandomizedSigner::sign_with_rng(
                &key,
                &mut rand::thread_rng(),
                data,
            );
            STANDARD.encode(signature.to_bytes())
        } else {
            let key = SigningKey::<sha2::Sha256>::new(self.private.clone());
            STANDARD.encode(key.sign(data).to_bytes())
        }
    }

    /// SHA1withRSA (PKCS#1 v1.5), base64: Google Play's purchase signature.
    pub(crate) fn sign_sha1_base64(&self, data: &[u8]) -> String {
        let key = SigningKey::<sha1::Sha1>::new(self.private.clone());
        STANDARD.encode(key.sign(data).to_bytes())
    }
}

/// Random URL-safe text of `bytes` random bytes.
pub(crate) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A Google order id: `GPA.dddd-dddd-dddd-ddddd`.
pub(crate) fn google_order_id() -> String {
    let mut rng = rand::thread_rng();
    format!(
        "GPA.{:04}-{:04}-{:04}-{:05}",
        rng.gen_range(0..10_000),
        rng.gen_range(0..10_000),
        rng.gen_range(0..10_000),
        rng.gen_range(0..100_000)
    )
}

/// Keys generated lazily per app (RSA generation is slow, and most tests use one app).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct KeyCache<K> {
    keys: HashMap<String, K>,
}

impl<K> Default for KeyCache<K> {
    fn default() -> Self {
        Self {
            keys: HashMap::new(),
        }
    }
}

impl<K: Clone> KeyCache<K> {
    pub(crate) fn get_or_make(&mut self, app: &str, make: impl FnOnce() -> K) -> K {
        self.keys.entry(app.to_owned()).or_insert_with(make).clone()
    }
}
