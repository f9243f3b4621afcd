//! Legacy `verifyReceipt` answers: picking the transaction and mapping it to a purchase, and the
//! retry decision. Input: `answer JSON \0 transaction id \0 product id` (both optional). A
//! purchase is only ever one of the answer's entries, for the bundle, matching what was asked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

use iap_domain::ProductId;
use iap_fuzz::{apple, split_nul, text};
use iap_platform_apple::fuzzing::{receipt_purchase, receipt_retryable};
use iap_platform_apple::receipt::pick_transaction;

fuzz_target!(|data: &[u8]| {
    let parts = split_nul(data, 3);
    let Ok(reply) = serde_json::from_slice::<Value>(parts[0]) else {
        return;
    };
    let transaction_id = parts.get(1).and_then(|p| text(p)).filter(|s| !s.is_empty());
    let product = parts
        .get(2)
        .and_then(|p| text(p))
        .and_then(|s| ProductId::parse(s).ok());

    let _ = receipt_retryable(reply["status"].as_i64().unwrap_or(-1), &reply);

    let picked = pick_transaction(
        &reply,
        transaction_id,
        product.as_ref().map(ProductId::as_str),
    );
    for entry in picked.iter().flat_map(|pick| pick.entries()) {
        let listed = reply["receipt"]["in_app"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(
                reply["latest_receipt_info"]
                    .as_array()
                    .into_iter()
                    .flatten(),
            )
            .any(|e| std::ptr::eq(e, entry));
        assert!(listed, "picked an entry the answer does not list");
    }

    match receipt_purchase(apple::BUNDLE, &reply, product.as_ref(), transaction_id) {
        Ok(purchase) => {
            assert_eq!(reply["receipt"]["bundle_id"], apple::BUNDLE);
            let entry = picked.expect("a purchase comes from a picked entry");
            assert_eq!(purchase.raw, *entry);
            assert_eq!(
                entry["transaction_id"],
                purchase.store_transaction_id.as_str()
            );
            if let Some(id) = transaction_id {
                assert_eq!(purchase.store_transaction_id, id);
            }
            if let Some(product) = &product {
                assert_eq!(&purchase.product_id, product);
            }
            assert!(purchase.quantity >= 1);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
