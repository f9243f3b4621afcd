//! The client-side purchase signature: SHA1withRSA (PKCS#1 v1.5) over the exact bytes of
//! `Purchase.getOriginalJson()`, with the Play Console licence key (base64 DER
//! SubjectPublicKeyInfo). Authenticity only: it proves nothing about replay or refunds.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, UnparsedPublicKey};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// A licence key ready to verify signatures.
#[derive(Debug, Clone)]
pub struct LicenseKey {
    rsa_public_key: Vec<u8>,
}

impl LicenseKey {
    /// Parses the Play Console's base64 licence key.
    pub fn from_base64(key: &str) -> Result<Self, String> {
        let der = STANDARD
            .decode(key.trim())
            .map_err(|e| format!("licence key is not base64: {e}"))?;
        let (_, spki) = SubjectPublicKeyInfo::from_der(&der)
            .map_err(|e| format!("licence key is not an RSA public key: {e}"))?;
        Ok(Self {
            rsa_public_key: spki.subject_public_key.data.to_vec(),
        })
    }

    /// Whether `signature` (base64) signs exactly `data`.
    pub fn verifies(&self, data: &str, signature: &str) -> bool {
        let Ok(signature) = STANDARD.decode(signature.trim()) else {
            return false;
        };
        UnparsedPublicKey::new(
            &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            &self.rsa_public_key,
        )
        .verify(data.as_bytes(), &signature)
        .is_ok()
    }
}
