//! Huawei `InAppPurchaseData`: the signature check (SHA256WithRSA and its PSS variant, and
//! names Huawei does not define), public-key parsing, and the mapping of checked data to a
//! purchase. Input: a selector byte, then NUL-separated parts. Only data the fixture key signed
//! passes, and a mapped purchase is keyed by the data's orderId.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

use iap_domain::{Platform, ProductId};
use iap_fuzz::rsa_keys::{self, HUAWEI_TOKEN};
use iap_fuzz::{split_nul, text};
use iap_platform_huawei::fuzzing::{signed_json, to_verified};
use iap_platform_huawei::signature::IapPublicKey;

static KEY: LazyLock<IapPublicKey> =
    LazyLock::new(|| IapPublicKey::from_base64(&rsa_keys::huawei().public_base64).unwrap());

/// `data \0 signature \0 algorithm` (algorithm absent: none named).
fn signature(data: &[u8]) {
    let parts = split_nul(data, 3);
    let [json, signature, rest @ ..] = parts.as_slice() else {
        return;
    };
    let (Some(json), Some(signature)) = (text(json), text(signature)) else {
        return;
    };
    let algorithm = rest.first().and_then(|a| text(a));
    if KEY.verifies(json, signature, algorithm) {
        assert!(
            rsa_keys::huawei().signed(json),
            "forged InAppPurchaseData verified"
        );
    }
    if let Ok(value) = signed_json(&KEY, json, signature, algorithm) {
        assert!(rsa_keys::huawei().signed(json));
        assert_eq!(value, serde_json::from_str::<Value>(json).unwrap());
    }
}

/// `data JSON \0 product`.
fn mapping(data: &[u8], consumed_known: Option<bool>) {
    let parts = split_nul(data, 2);
    let Ok(json) = serde_json::from_slice::<Value>(parts[0]) else {
        return;
    };
    let product = parts
        .get(1)
        .and_then(|p| text(p))
        .and_then(|p| ProductId::parse(p).ok())
        .unwrap_or_else(|| ProductId::parse("gems_100").unwrap());
    let Ok(purchase) = to_verified(HUAWEI_TOKEN, &product, json.clone(), consumed_known) else {
        return;
    };
    assert_eq!(purchase.platform, Platform::Huawei);
    assert_eq!(purchase.product_id, product);
    assert_eq!(purchase.purchase_token.as_deref(), Some(HUAWEI_TOKEN));
    assert!(!purchase.store_transaction_id.is_empty());
    assert_eq!(
        purchase.store_order_id.as_deref(),
        Some(&*purchase.store_transaction_id)
    );
    assert!(purchase.quantity >= 1);
    if let Some(known) = consumed_known {
        assert_eq!(purchase.consumed, Some(known));
    }
    assert_eq!(purchase.raw, json);
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => signature(rest),
        1 => mapping(rest, None),
        2 => mapping(rest, Some(true)),
        3 => mapping(rest, Some(false)),
        _ => {
            if let Some(key) = text(rest)
                && let Ok(key) = IapPublicKey::from_base64(key)
            {
                let (data, signature, algorithm) = &rsa_keys::huawei().seeds[0];
                let _ = key.verifies(data, signature, *algorithm);
            }
        }
    }
});
