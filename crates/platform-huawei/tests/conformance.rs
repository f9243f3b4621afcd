//! Huawei's own PSS signature (../shared/conformance/huawei): verifies as SHA256WithRSA/PSS with
//! a 32-byte salt, and not as PKCS#1 v1.5.

use iap_platform_huawei::signature::{IapPublicKey, PKCS1, PSS};

#[test]
fn huawei_pss_vector_verifies_only_as_pss() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/conformance/huawei/huawei_pss_test_vector.json"
    );
    let vector: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let key = IapPublicKey::from_base64(vector["publicKeyBase64SPKI"].as_str().unwrap()).unwrap();
    let (data, signature) = (
        vector["contentUtf8"].as_str().unwrap(),
        vector["signatureBase64"].as_str().unwrap(),
    );
    assert!(key.verifies(data, signature, Some(PSS)));
    assert!(!key.verifies(data, signature, Some(PKCS1)));
    assert!(
        !key.verifies(data, signature, None),
        "no algorithm means PKCS#1"
    );
    assert!(
        !key.verifies(&format!("{data} "), signature, Some(PSS)),
        "exact bytes only"
    );
    assert!(!key.verifies(data, signature, Some("MD5WithRSA")));
}
