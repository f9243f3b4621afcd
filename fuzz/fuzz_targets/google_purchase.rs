//! Google Play purchase data: the local check of `getOriginalJson()` with its SHA1withRSA
//! signature, licence-key parsing, and the mapping of productsv2 / subscriptionsv2 answers.
//! Input: a selector byte, then NUL-separated parts (see each arm). Only JSON the fixture key
//! signed passes the local check, and a mapped purchase is for the token and product asked.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

use iap_domain::purchase::{PurchaseStatus, SignedData};
use iap_domain::{Platform, ProductId, ProductKind};
use iap_fuzz::rsa_keys::{self, GOOGLE_PACKAGE};
use iap_fuzz::{split_nul, text};
use iap_platform_google::fuzzing::{check_signed_data, product_purchase, subscription_purchase};
use iap_platform_google::signature::LicenseKey;

static KEY: LazyLock<LicenseKey> =
    LazyLock::new(|| LicenseKey::from_base64(&rsa_keys::google().public_base64).unwrap());

/// `original_json \0 signature \0 token \0 product`.
fn local_check(data: &[u8]) {
    let parts = split_nul(data, 4);
    let [json, signature, token, product] = parts.as_slice() else {
        return;
    };
    let (Some(json), Some(signature), Some(token), Some(product)) =
        (text(json), text(signature), text(token), text(product))
    else {
        return;
    };
    let Ok(product) = ProductId::parse(product) else {
        return;
    };
    if KEY.verifies(json, signature) {
        assert!(
            rsa_keys::google().signed(json),
            "forged purchase JSON verified"
        );
    }
    let signed = SignedData {
        data: json.to_owned(),
        signature: signature.to_owned(),
    };
    if check_signed_data(GOOGLE_PACKAGE, Some(&KEY), &signed, token, &product).is_ok() {
        assert!(rsa_keys::google().signed(json));
        let parsed: Value = serde_json::from_str(json).unwrap();
        if let Some(p) = parsed["packageName"].as_str() {
            assert_eq!(p, GOOGLE_PACKAGE);
        }
    }
    // Without a licence key only the JSON's own claims are checked; never a panic.
    let _ = check_signed_data(GOOGLE_PACKAGE, None, &signed, token, &product);
}

/// `answer JSON \0 product`.
fn mapping(data: &[u8], subscription: bool) {
    let parts = split_nul(data, 2);
    let Ok(answer) = serde_json::from_slice::<Value>(parts[0]) else {
        return;
    };
    let product = parts
        .get(1)
        .and_then(|p| text(p))
        .and_then(|p| ProductId::parse(p).ok())
        .unwrap_or_else(|| ProductId::parse("gems_100").unwrap());
    let token = rsa_keys::GOOGLE_TOKEN;
    let result = if subscription {
        subscription_purchase(token, &product, answer.clone())
    } else {
        product_purchase(token, &product, answer.clone())
    };
    let Ok(purchase) = result else {
        return;
    };
    assert_eq!(purchase.platform, Platform::Google);
    assert_eq!(purchase.product_id, product);
    assert_eq!(purchase.purchase_token.as_deref(), Some(token));
    assert!(purchase.quantity >= 1);
    assert!(!purchase.store_transaction_id.is_empty());
    assert_eq!(purchase.raw, answer);
    if subscription {
        assert_eq!(purchase.kind, Some(ProductKind::AutoRenewable));
        assert_eq!(purchase.quantity, 1);
    } else {
        // Never more units than the answer says are left to refund.
        let line = answer["productLineItem"]
            .as_array()
            .and_then(|l| l.iter().find(|i| i["productId"] == product.as_str()))
            .expect("the line the purchase came from");
        let offer = &line["productOfferDetails"];
        if let Some(left) = offer["refundableQuantity"].as_u64().filter(|l| *l > 0) {
            assert!(u64::from(purchase.quantity) <= left);
        }
        if purchase.status == PurchaseStatus::Purchased {
            assert_eq!(answer["purchaseStateContext"]["purchaseState"], "PURCHASED");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => local_check(rest),
        1 => mapping(rest, false),
        2 => mapping(rest, true),
        _ => {
            if let Some(key) = text(rest)
                && let Ok(key) = LicenseKey::from_base64(key)
            {
                let (data, signature, _) = &rsa_keys::google().seeds[0];
                let _ = key.verifies(data, signature);
            }
        }
    }
});
