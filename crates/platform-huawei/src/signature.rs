//! Huawei's data signatures: RSA over the exact UTF-8 bytes of the signed JSON, with SHA-256
//! and either PKCS#1 v1.5 (`SHA256WithRSA`, the default when no algorithm is named) or PSS
//! with MGF1-SHA-256 and a 32-byte salt (`SHA256WithRSA/PSS`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256, UnparsedPublicKey};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// `SHA256WithRSA/PSS`.
pub const PSS: &str = "SHA256WithRSA/PSS";
/// `SHA256WithRSA`.
pub const PKCS1: &str = "SHA256WithRSA";

/// The AppGallery Connect IAP public key.
#[derive(Debug, Clone)]
pub struct IapPublicKey {
    rsa_public_key: Vec<u8>,
}

impl IapPublicKey {
    /// Parses the base64 DER SubjectPublicKeyInfo AppGallery Connect shows.
    pub fn from_base64(key: &str) -> Result<Self, String> {
        let der = STANDARD
            .decode(key.trim())
            .map_err(|e| format!("public key is not base64: {e}"))?;
        let (_, spki) = SubjectPublicKeyInfo::from_der(&der)
            .map_err(|e| format!("not an RSA public key: {e}"))?;
        Ok(Self {
            rsa_public_key: spki.subject_public_key.data.to_vec(),
        })
    }

    /// Whether `signature` (base64) signs exactly `data` with `algorithm` (PKCS#1 when `None`).
    /// An algorithm Huawei does not define never verifies.
    pub fn verifies(&self, data: &str, signature: &str, algorithm: Option<&str>) -> bool {
        let Ok(signature) = STANDARD.decode(signature.trim()) else {
            return false;
        };
        let scheme: &'static dyn ring::signature::VerificationAlgorithm =
            match algorithm.unwrap_or(PKCS1) {
                PKCS1 => &RSA_PKCS1_2048_8192_SHA256,
                PSS => &RSA_PSS_2048_8192_SHA256,
                _ => return false,
            };
        UnparsedPublicKey::new(scheme, &self.rsa_public_key)
            .verify(data.as_bytes(), &signature)
            .is_ok()
    }
}
