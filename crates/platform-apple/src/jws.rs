//! Verifying Apple-signed JWS (signed transactions, renewal infos, notifications) offline, as
//! Apple's app-store-server-library does (platforms/apple.md §2):
//!
//! 1. `alg` is ES256 and `x5c` holds exactly three certificates;
//! 2. the intermediate is signed by a trusted root — a configured root certificate, or the
//!    `x5c[2]` when its SHA-256 fingerprint is pinned (Apple Root CA G3 by default). `x5c[2]` is
//!    never trusted for its bytes alone;
//! 3. the leaf is signed by the intermediate, the intermediate is a CA, and both carry Apple's
//!    marker OIDs;
//! 4. every certificate is valid at the payload's `signedDate` (what Apple's libraries do
//!    offline; a chain that expired since still verifies old data, as it should);
//! 5. the ES256 signature over `header.payload` verifies with the leaf's key.
//!
//! Authority Key Identifiers are not required: Apple's own test certificates lack them.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use iap_domain::RejectReason;
use iap_domain::ports::StoreError;

/// SHA-256 of the DER of Apple Root CA - G3, the root of every App Store signature.
pub const APPLE_ROOT_CA_G3_SHA256: &str =
    "63343abfb89a6a03ebb57e9b3f5fa7be7c4f5c756f3017b3a8c488c3653e9179";

/// Apple's marker on the App Store receipt-signing leaf certificate.
pub const LEAF_OID: &str = "1.2.840.113635.100.6.11.1";
/// Apple's marker on the WWDR intermediate certificate.
pub const INTERMEDIATE_OID: &str = "1.2.840.113635.100.6.2.1";

/// Which roots a chain may end at.
#[derive(Debug, Clone)]
pub struct ChainTrust {
    roots: Vec<Vec<u8>>,
    pinned: Vec<[u8; 32]>,
}

impl Default for ChainTrust {
    /// Apple Root CA - G3, pinned by fingerprint.
    fn default() -> Self {
        let mut pin = [0u8; 32];
        // The constant is valid hex of 32 bytes (checked by a test).
        let _ = hex::decode_to_slice(APPLE_ROOT_CA_G3_SHA256, &mut pin);
        Self {
            roots: Vec::new(),
            pinned: vec![pin],
        }
    }
}

impl ChainTrust {
    /// Trusts nothing yet.
    pub fn empty() -> Self {
        Self {
            roots: Vec::new(),
            pinned: Vec::new(),
        }
    }

    /// Also trusts this root certificate (DER): the emulator's, or Apple's test root.
    #[must_use]
    pub fn with_root(mut self, der: Vec<u8>) -> Self {
        self.roots.push(der);
        self
    }

    /// Also trusts a root given by the SHA-256 of its DER.
    #[must_use]
    pub fn with_pinned_root(mut self, sha256: [u8; 32]) -> Self {
        self.pinned.push(sha256);
        self
    }
}

/// Why a JWS was refused. `code()` is the stable machine-readable sub-code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Not three base64url parts, or undecodable JSON.
    #[error("malformed JWS: {0}")]
    Malformed(String),
    /// `alg` is not ES256.
    #[error("unsupported algorithm {0:?}")]
    AlgorithmUnsupported(String),
    /// No `x5c` header.
    #[error("the JWS header has no x5c certificate chain")]
    X5cMissing,
    /// `x5c` does not hold exactly three certificates.
    #[error("x5c holds {0} certificates, Apple's chains hold 3")]
    X5cLength(usize),
    /// A certificate cannot be parsed.
    #[error("certificate {index} cannot be parsed: {detail}")]
    CertificateMalformed {
        /// Position in x5c.
        index: usize,
        /// Parser message.
        detail: String,
    },
    /// The intermediate is not signed by a trusted root.
    #[error("the chain does not end at a trusted root")]
    UntrustedRoot,
    /// A genuine Apple signature (the whole chain up to Apple Root CA - G3 and the signature
    /// verify) that our trust settings leave out: our configuration, not the purchase, is wrong.
    #[error("the data is signed by Apple Root CA - G3, which the app's trust settings leave out")]
    AppleRootNotTrusted,
    /// A certificate signature in the chain does not verify, or the intermediate is no CA.
    #[error("the certificate chain does not verify: {0}")]
    ChainInvalid(&'static str),
    /// A certificate lacks Apple's marker OID.
    #[error("the {0} certificate lacks Apple's marker OID")]
    AppleOidMissing(&'static str),
    /// A certificate had expired at `signedDate`.
    #[error("a certificate of the chain had expired when the data was signed")]
    CertificateExpired,
    /// A certificate was not yet valid at `signedDate`.
    #[error("a certificate of the chain was not yet valid when the data was signed")]
    CertificateNotYetValid,
    /// The ES256 signature does not verify.
    #[error("the signature does not match the signed data")]
    SignatureInvalid,
}

impl JwsError {
    /// Stable sub-code for logs, metrics and the gRPC ErrorInfo.
    pub fn code(&self) -> &'static str {
        match self {
            JwsError::Malformed(_) => "malformed",
            JwsError::AlgorithmUnsupported(_) => "alg_unsupported",
            JwsError::X5cMissing => "x5c_missing",
            JwsError::X5cLength(_) => "x5c_length",
            JwsError::CertificateMalformed { .. } => "certificate_malformed",
            JwsError::UntrustedRoot => "untrusted_root",
            JwsError::AppleRootNotTrusted => "apple_root_not_trusted",
            JwsError::ChainInvalid(_) => "chain_signature_invalid",
            JwsError::AppleOidMissing(_) => "apple_oid_missing",
            JwsError::CertificateExpired => "certificate_expired",
            JwsError::CertificateNotYetValid => "certificate_not_yet_valid",
            JwsError::SignatureInvalid => "signature_invalid",
        }
    }
}

impl From<JwsError> for StoreError {
    /// A forged or broken signature is the data's fault (`SIGNATURE_INVALID`: not Apple's, the
    /// client may finish it); Apple's own signature refused by our trust settings is ours
    /// (misconfigured: the purchase is kept open until the settings are fixed).
    fn from(err: JwsError) -> Self {
        let reason = match err {
            JwsError::AppleRootNotTrusted => {
                return StoreError::Misconfigured(format!(
                    "{err}: set trust_apple_root = true ({})",
                    err.code()
                ));
            }
            JwsError::Malformed(_) => RejectReason::Malformed,
            _ => RejectReason::SignatureInvalid,
        };
        StoreError::rejected(reason, err.code(), err.to_string())
    }
}

/// A verified JWS: the decoded payload and the time it was signed.
#[derive(Debug, Clone)]
pub struct VerifiedJws<T> {
    /// The payload.
    pub payload: T,
    /// `signedDate` (milliseconds since the epoch), when the payload has one.
    pub signed_date_ms: Option<i64>,
}

#[derive(serde::Deserialize)]
struct Header {
    alg: Option<String>,
    x5c: Option<Vec<String>>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignedDate {
    signed_date: Option<f64>,
}

/// Whether `der` is Apple Root CA - G3 (by the SHA-256 of its DER).
fn is_apple_root(der: &[u8]) -> bool {
    let digest: [u8; 32] = Sha256::digest(der).into();
    hex::encode(digest) == APPLE_ROOT_CA_G3_SHA256
}

fn parse(index: usize, der: &[u8]) -> Result<X509Certificate<'_>, JwsError> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|e| JwsError::CertificateMalformed {
            index,
            detail: e.to_string(),
        })
}

/// Decodes the payload of a compact JWS **without verifying anything**, only to learn which
/// app's trust settings to verify it with. Never act on what it returns.
pub fn peek_payload(jws: &str) -> Result<serde_json::Value, JwsError> {
    let payload = jws
        .trim()
        .split('.')
        .nth(1)
        .ok_or_else(|| JwsError::Malformed("a JWS has three dot-separated parts".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| JwsError::Malformed("payload is not base64url".into()))?;
    serde_json::from_slice(&bytes).map_err(|e| JwsError::Malformed(format!("payload: {e}")))
}

/// Verifies `jws` against `trust` and decodes its payload. `now_ms` is used as the check time
/// when the payload has no `signedDate`.
pub fn verify<T: DeserializeOwned>(
    jws: &str,
    trust: &ChainTrust,
    now_ms: i64,
) -> Result<VerifiedJws<T>, JwsError> {
    let mut parts = jws.trim().split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed(
            "a JWS has three dot-separated parts".into(),
        ));
    };
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| JwsError::Malformed(format!("{what} is not base64url")))
    };
    let header: Header = serde_json::from_slice(&decode(header_b64, "the header")?)
        .map_err(|e| JwsError::Malformed(format!("header: {e}")))?;
    let payload_bytes = decode(payload_b64, "the payload")?;
    let signature = decode(signature_b64, "the signature")?;

    match header.alg.as_deref() {
        Some("ES256") => {}
        other => {
            return Err(JwsError::AlgorithmUnsupported(
                other.unwrap_or("none").to_owned(),
            ));
        }
    }
    let chain_b64 = header.x5c.ok_or(JwsError::X5cMissing)?;
    if chain_b64.len() != 3 {
        return Err(JwsError::X5cLength(chain_b64.len()));
    }
    let chain_der: Vec<Vec<u8>> = chain_b64
        .iter()
        .enumerate()
        .map(|(index, c)| {
            STANDARD
                .decode(c)
                .map_err(|_| JwsError::CertificateMalformed {
                    index,
                    detail: "not base64".into(),
                })
        })
        .collect::<Result<_, _>>()?;
    let leaf = parse(0, &chain_der[0])?;
    let intermediate = parse(1, &chain_der[1])?;

    // The roots the intermediate may be signed by.
    let presented_root_pinned = {
        let digest: [u8; 32] = Sha256::digest(&chain_der[2]).into();
        trust.pinned.contains(&digest)
    };
    let mut candidates: Vec<&[u8]> = trust.roots.iter().map(Vec::as_slice).collect();
    if presented_root_pinned {
        candidates.push(&chain_der[2]);
    }
    let signs_intermediate = |der: &[u8]| {
        X509Certificate::from_der(der).is_ok_and(|(_, root)| {
            intermediate
                .verify_signature(Some(root.public_key()))
                .is_ok()
        })
    };
    let root_der = match candidates.into_iter().find(|der| signs_intermediate(der)) {
        Some(der) => der,
        // Apple's own root, left out of our trust: verified to the end as if trusted, so that
        // a genuine Apple signature is told apart from a forgery that copies Apple's public
        // certificates. The first is our configuration's fault, the second the data's.
        None if is_apple_root(&chain_der[2]) && signs_intermediate(&chain_der[2]) => {
            let as_if_trusted = ChainTrust {
                roots: vec![chain_der[2].clone()],
                pinned: Vec::new(),
            };
            verify::<serde_json::Value>(jws, &as_if_trusted, now_ms)?;
            return Err(JwsError::AppleRootNotTrusted);
        }
        None => return Err(JwsError::UntrustedRoot),
    };
    let root = parse(2, root_der)?;

    if !intermediate.is_ca() {
        return Err(JwsError::ChainInvalid(
            "the intermediate is not a certificate authority",
        ));
    }
    leaf.verify_signature(Some(intermediate.public_key()))
        .map_err(|_| JwsError::ChainInvalid("the leaf is not signed by the intermediate"))?;
    let has_oid = |cert: &X509Certificate<'_>, oid: &str| {
        cert.extensions()
            .iter()
            .any(|e| e.oid.to_id_string() == oid)
    };
    if !has_oid(&leaf, LEAF_OID) {
        return Err(JwsError::AppleOidMissing("leaf"));
    }
    if !has_oid(&intermediate, INTERMEDIATE_OID) {
        return Err(JwsError::AppleOidMissing("intermediate"));
    }

    // Xcode writes fractional milliseconds; Apple's servers write integers.
    let signed_date_ms = serde_json::from_slice::<SignedDate>(&payload_bytes)
        .ok()
        .and_then(|d| d.signed_date)
        .map(|ms| ms as i64);
    let at = signed_date_ms.unwrap_or(now_ms) / 1000;
    for cert in [&leaf, &intermediate, &root] {
        let validity = cert.validity();
        if at < validity.not_before.timestamp() {
            return Err(JwsError::CertificateNotYetValid);
        }
        if at > validity.not_after.timestamp() {
            return Err(JwsError::CertificateExpired);
        }
    }

    let signed = format!("{header_b64}.{payload_b64}");
    UnparsedPublicKey::new(
        &ECDSA_P256_SHA256_FIXED,
        leaf.public_key().subject_public_key.data.as_ref(),
    )
    .verify(signed.as_bytes(), &signature)
    .map_err(|_| JwsError::SignatureInvalid)?;

    let payload = serde_json::from_slice(&payload_bytes)
        .map_err(|e| JwsError::Malformed(format!("payload: {e}")))?;
    Ok(VerifiedJws {
        payload,
        signed_date_ms,
    })
}
