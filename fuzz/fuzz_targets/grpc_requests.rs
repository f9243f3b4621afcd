//! gRPC request validation: the bytes a client sends are decoded as tonic's prost codec does,
//! then converted to a use-case command exactly as the verifier's handlers do before any I/O.
//! A request is either refused with INVALID_ARGUMENT or becomes a command that says what the
//! request said (same ids, same proof, same store).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;

use iap_domain::purchase::PurchaseProof;
use iap_proto::v1 as pb;
use iap_app::fuzzing::{create_order_command, verify_purchase_command};

fn create_order(bytes: &[u8]) {
    let Ok(request) = pb::CreateOrderRequest::decode(bytes) else {
        return;
    };
    // What decodes re-encodes to the same message.
    let again = pb::CreateOrderRequest::decode(request.encode_to_vec().as_slice()).unwrap();
    assert_eq!(again, request);
    match create_order_command(request.clone()) {
        Ok(command) => {
            assert_eq!(command.app_id.as_str(), request.app_id);
            assert_eq!(command.user_id.as_str(), request.user_id);
            assert_eq!(command.product_id.as_str(), request.product_id);
            assert_eq!(i64::from(command.quantity), i64::from(request.quantity));
            assert_eq!(
                iap_runtime_platform(command.platform),
                request.platform,
                "platform changed"
            );
            assert_eq!(
                command.idempotency_key.is_some(),
                !request.idempotency_key.is_empty()
            );
            assert_eq!(command.metadata.len(), request.metadata.len());
        }
        Err(status) => assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}"),
    }
}

fn iap_runtime_platform(p: iap_domain::Platform) -> i32 {
    match p {
        iap_domain::Platform::Apple => pb::Platform::Apple as i32,
        iap_domain::Platform::Google => pb::Platform::Google as i32,
        iap_domain::Platform::Huawei => pb::Platform::Huawei as i32,
    }
}

fn verify_purchase(bytes: &[u8]) {
    let Ok(request) = pb::VerifyPurchaseRequest::decode(bytes) else {
        return;
    };
    let again = pb::VerifyPurchaseRequest::decode(request.encode_to_vec().as_slice()).unwrap();
    assert_eq!(again, request);
    let command = match verify_purchase_command(request.clone()) {
        Ok(command) => command,
        Err(status) => {
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
            return;
        }
    };
    assert_eq!(command.app_id.as_str(), request.app_id);
    assert_eq!(command.user_id.as_str(), request.user_id);
    assert_eq!(command.order_id.is_some(), !request.order_id.is_empty());
    use pb::apple_purchase::Proof;
    use pb::verify_purchase_request::Purchase;
    match (request.purchase.expect("a proof"), command.proof) {
        (Purchase::Apple(a), PurchaseProof::AppleSignedTransaction(jws)) => {
            assert_eq!(a.proof, Some(Proof::SignedTransaction(jws.clone())));
            assert!(!jws.is_empty());
        }
        (
            Purchase::Apple(a),
            PurchaseProof::AppleReceipt {
                receipt_data,
                product_id,
                transaction_id,
            },
        ) => {
            assert_eq!(a.proof, Some(Proof::ReceiptData(receipt_data.clone())));
            assert!(!receipt_data.is_empty());
            assert_eq!(
                product_id.map(|p| p.to_string()).unwrap_or_default(),
                a.product_id
            );
            assert_eq!(transaction_id.unwrap_or_default(), a.receipt_transaction_id);
        }
        (Purchase::Apple(a), PurchaseProof::AppleTransactionId(id)) => {
            assert_eq!(a.proof, Some(Proof::TransactionId(id.clone())));
            assert!(!id.is_empty());
        }
        (
            Purchase::Google(g),
            PurchaseProof::Google {
                purchase_token,
                product_id,
                signed_data,
            },
        ) => {
            assert!(!purchase_token.is_empty());
            assert_eq!(purchase_token, g.purchase_token);
            assert_eq!(product_id.as_str(), g.product_id);
            match signed_data {
                Some(s) => {
                    assert_eq!(s.data, g.original_json);
                    assert_eq!(s.signature, g.signature);
                }
                None => assert!(g.original_json.is_empty()),
            }
        }
        (
            Purchase::Huawei(h),
            PurchaseProof::Huawei {
                purchase_token,
                product_id,
                signed_data,
                signature_algorithm,
            },
        ) => {
            assert!(!purchase_token.is_empty() && !signed_data.data.is_empty());
            assert!(!signed_data.signature.is_empty());
            assert_eq!(purchase_token, h.purchase_token);
            assert_eq!(product_id.as_str(), h.product_id);
            assert_eq!(signed_data.data, h.in_app_purchase_data);
            assert_eq!(signed_data.signature, h.signature);
            assert_eq!(
                signature_algorithm.unwrap_or_default(),
                h.signature_algorithm
            );
        }
        (purchase, proof) => panic!("{purchase:?} became {proof:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        create_order(bytes);
    } else {
        verify_purchase(bytes);
    }
});
