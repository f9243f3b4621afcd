//! `iap.v1.VerificationService`.

use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use iap_domain::purchase::{PurchaseProof, SignedData};
use iap_domain::usecases::verify_purchase::VerifyPurchase;
use iap_domain::{AppId, OrderId, ProductId, UserId};
use iap_proto::v1 as pb;
use iap_proto::v1::verification_service_server::{VerificationService, VerificationServiceServer};
use iap_runtime::auth::BearerCheck;
use iap_runtime::status::{IntoStatus, invalid_argument};
use iap_runtime::wire;

use crate::verifier::Verifier;

pub(crate) fn verification_service(
    verifier: Verifier,
    check: BearerCheck,
) -> InterceptedService<VerificationServiceServer<Verifier>, BearerCheck> {
    VerificationServiceServer::with_interceptor(verifier, check)
}

fn non_empty(s: String) -> Option<String> {
    Some(s).filter(|s| !s.is_empty())
}

fn product(s: String) -> Result<ProductId, Status> {
    ProductId::parse(s).map_err(IntoStatus::into_status)
}

/// The proof of purchase the request carries.
fn proof(purchase: Option<pb::verify_purchase_request::Purchase>) -> Result<PurchaseProof, Status> {
    use pb::apple_purchase::Proof;
    use pb::verify_purchase_request::Purchase;
    let missing = |field: &str| invalid_argument(field, "is required");
    match purchase.ok_or_else(|| missing("purchase"))? {
        Purchase::Apple(apple) => match apple.proof.ok_or_else(|| missing("apple.proof"))? {
            Proof::SignedTransaction(jws) if !jws.is_empty() => {
                Ok(PurchaseProof::AppleSignedTransaction(jws))
            }
            Proof::ReceiptData(receipt) if !receipt.is_empty() => Ok(PurchaseProof::AppleReceipt {
                receipt_data: receipt,
                product_id: non_empty(apple.product_id).map(product).transpose()?,
                transaction_id: non_empty(apple.receipt_transaction_id),
            }),
            Proof::TransactionId(id) if !id.is_empty() => Ok(PurchaseProof::AppleTransactionId(id)),
            _ => Err(missing("apple.proof")),
        },
        Purchase::Google(google) => {
            let purchase_token =
                non_empty(google.purchase_token).ok_or_else(|| missing("google.purchase_token"))?;
            let signed_data = non_empty(google.original_json).map(|data| SignedData {
                data,
                signature: google.signature,
            });
            Ok(PurchaseProof::Google {
                purchase_token,
                product_id: product(google.product_id)?,
                signed_data,
            })
        }
        Purchase::Huawei(huawei) => {
            let purchase_token =
                non_empty(huawei.purchase_token).ok_or_else(|| missing("huawei.purchase_token"))?;
            let data = non_empty(huawei.in_app_purchase_data)
                .ok_or_else(|| missing("huawei.in_app_purchase_data"))?;
            let signature =
                non_empty(huawei.signature).ok_or_else(|| missing("huawei.signature"))?;
            Ok(PurchaseProof::Huawei {
                purchase_token,
                product_id: product(huawei.product_id)?,
                signed_data: SignedData { data, signature },
                signature_algorithm: non_empty(huawei.signature_algorithm),
            })
        }
    }
}

/// The use-case command a VerifyPurchase request carries, or why it is invalid.
pub(crate) fn verify_purchase_command(
    r: pb::VerifyPurchaseRequest,
) -> Result<VerifyPurchase, Status> {
    let order_id = match non_empty(r.order_id) {
        Some(id) => Some(
            OrderId::parse(&id)
                .map_err(|_| invalid_argument("order_id", "must be an order id (UUID)"))?,
        ),
        None => None,
    };
    Ok(VerifyPurchase {
        app_id: AppId::parse(r.app_id).map_err(IntoStatus::into_status)?,
        user_id: UserId::parse(r.user_id).map_err(IntoStatus::into_status)?,
        order_id,
        proof: proof(r.purchase)?,
    })
}

#[tonic::async_trait]
impl VerificationService for Verifier {
    async fn verify_purchase(
        &self,
        request: Request<pb::VerifyPurchaseRequest>,
    ) -> Result<Response<pb::VerifyPurchaseResponse>, Status> {
        let command = verify_purchase_command(request.into_inner())?;
        let verified = self
            .purchases
            .verify(command)
            .await
            .map_err(IntoStatus::into_status)?;
        let order = self
            .deliver_now(&verified.order)
            .await
            .unwrap_or(verified.order);
        Ok(Response::new(pb::VerifyPurchaseResponse {
            delivery_state: wire::delivery_state_of(&order).into(),
            order: Some(wire::order(&order)),
            finish_transaction: verified.finish_transaction,
            already_recorded: verified.already_recorded,
            sandbox: verified.sandbox,
            binding_reason: wire::binding_reason(verified.binding_reason).into(),
            repeat_trial: verified.repeat_trial,
        }))
    }
}
