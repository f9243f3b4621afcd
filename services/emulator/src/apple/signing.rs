//! The App Store's keys: the certificate chain that signs transactions, notifications and
//! renewal info as a JWS (ES256, `x5c` leaf → intermediate → root, with Apple's marker OIDs),
//! and the App Store Server API key its bearer tokens are checked against.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::keys::random_token;

/// Apple's marker extension on the App Store receipt-signing leaf certificate.
const LEAF_OID: &[u64] = &[1, 2, 840, 113_635, 100, 6, 11, 1];
/// Apple's marker extension on the WWDR intermediate certificate.
const INTERMEDIATE_OID: &[u64] = &[1, 2, 840, 113_635, 100, 6, 2, 1];

/// The signing chain and the App Store Server API key.
#[derive(Serialize, Deserialize)]
pub(super) struct AppleKeys {
    pub(super) root_der: Vec<u8>,
    intermediate_der: Vec<u8>,
    leaf_der: Vec<u8>,
    /// PKCS#8 DER of the leaf's key.
    leaf_key: Vec<u8>,
    pub(super) api_issuer_id: String,
    pub(super) api_key_id: String,
    pub(super) api_private_key_pem: String,
    pub(super) api_public_key_pem: String,
}

impl std::fmt::Debug for AppleKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppleKeys")
            .field("api_key_id", &self.api_key_id)
            .finish_non_exhaustive()
    }
}

fn chain_params(common_name: &str, ca: bool, marker: Option<&[u64]>) -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "iap-emulator");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    // Strict verifiers (OpenSSL's X509_STRICT, used by Apple's Python library) want the
    // authority key identifier that Apple's real certificates carry.
    params.use_authority_key_identifier_extension = true;
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    } else {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    }
    if let Some(oid) = marker {
        // Apple's marker extensions hold an ASN.1 NULL.
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(oid, vec![0x05, 0x00]));
    }
    params
}

impl AppleKeys {
    pub(super) fn generate() -> Self {
        let root_key = KeyPair::generate().expect("P-256 key");
        let root_params = chain_params("iap-emulator Apple Root CA", true, None);
        let root = root_params
            .self_signed(&root_key)
            .expect("root certificate");
        let root_issuer = Issuer::new(root_params, root_key);

        let intermediate_key = KeyPair::generate().expect("P-256 key");
        let intermediate_params = chain_params(
            "iap-emulator Worldwide Developer Relations Certification Authority",
            true,
            Some(INTERMEDIATE_OID),
        );
        let intermediate = intermediate_params
            .signed_by(&intermediate_key, &root_issuer)
            .expect("intermediate");
        let intermediate_issuer = Issuer::new(intermediate_params, intermediate_key);

        let leaf_key = KeyPair::generate().expect("P-256 key");
        let leaf_params = chain_params(
            "iap-emulator App Store Receipt Signing",
            false,
            Some(LEAF_OID),
        );
        let leaf = leaf_params
            .signed_by(&leaf_key, &intermediate_issuer)
            .expect("leaf");

        let api_key = KeyPair::generate().expect("P-256 key");
        Self {
            root_der: root.der().to_vec(),
            intermediate_der: intermediate.der().to_vec(),
            leaf_der: leaf.der().to_vec(),
            leaf_key: leaf_key.serialize_der(),
            api_issuer_id: uuid::Uuid::new_v4().to_string(),
            api_key_id: random_token(8)
                .to_ascii_uppercase()
                .replace(['-', '_'], "X")
                .chars()
                .take(10)
                .collect(),
            api_private_key_pem: api_key.serialize_pem(),
            api_public_key_pem: api_key.public_key_pem(),
        }
    }

    /// A compact JWS (ES256, `x5c` = leaf, intermediate, root in standard base64 DER).
    pub(super) fn sign(&self, payload: &Value) -> String {
        let header = json!({
            "alg": "ES256",
            "x5c": [STANDARD.encode(&self.leaf_der), STANDARD.encode(&self.intermediate_der), STANDARD.encode(&self.root_der)],
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let signer = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &self.leaf_key,
            &SystemRandom::new(),
        )
        .expect("the leaf key was generated here");
        let signature = signer
            .sign(&SystemRandom::new(), input.as_bytes())
            .expect("ECDSA signing");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}
