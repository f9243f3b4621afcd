//! `iap.v1.DeliveryService`: thin handlers over the delivery use case.

use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use iap_domain::OrderId;
use iap_domain::delivery::RevokeReason;
use iap_domain::refunds::{RefundCause, RefundShare, Revocation};
use iap_proto::v1 as pb;
use iap_proto::v1::delivery_service_server::{DeliveryService, DeliveryServiceServer};
use iap_runtime::auth::BearerCheck;
use iap_runtime::status::{IntoStatus, invalid_argument, not_found};
use iap_runtime::wire;

use crate::delivery::Delivery;

pub(crate) fn delivery_service(
    delivery: Delivery,
    check: BearerCheck,
) -> InterceptedService<DeliveryServiceServer<Delivery>, BearerCheck> {
    DeliveryServiceServer::with_interceptor(delivery, check)
}

fn order_id(raw: &str) -> Result<OrderId, Status> {
    if raw.is_empty() {
        return Err(invalid_argument("order_id", "is required"));
    }
    OrderId::parse(raw).map_err(|_| invalid_argument("order_id", "must be an order id (UUID)"))
}

#[tonic::async_trait]
impl DeliveryService for Delivery {
    async fn deliver(
        &self,
        request: Request<pb::DeliverRequest>,
    ) -> Result<Response<pb::DeliverResponse>, Status> {
        let id = order_id(&request.into_inner().order_id)?;
        // Its own task: a caller that goes away (a sweeper killed, a deadline) must not cut a
        // grant in the middle, which would leave the order leased until the lease runs out.
        let deliveries = self.deliveries.clone();
        let outcome = tokio::spawn(async move { deliveries.deliver(id).await })
            .await
            .map_err(|e| Status::internal(format!("delivery task failed: {e}")))?
            .map_err(IntoStatus::into_status)?;
        Ok(Response::new(pb::DeliverResponse {
            order: Some(wire::order(&outcome.order)),
            delivery: outcome.delivery.as_ref().map(wire::delivery),
            in_progress_elsewhere: outcome.held_elsewhere,
        }))
    }

    async fn get_delivery(
        &self,
        request: Request<pb::GetDeliveryRequest>,
    ) -> Result<Response<pb::GetDeliveryResponse>, Status> {
        let id = order_id(&request.into_inner().order_id)?;
        let record = self
            .deliveries
            .delivery(id)
            .await
            .map_err(IntoStatus::into_status)?
            .ok_or_else(|| {
                not_found(
                    "DELIVERY_NOT_FOUND",
                    format!("order {id} has no delivery yet (unknown, unpaid or not claimed)"),
                )
            })?;
        Ok(Response::new(pb::GetDeliveryResponse {
            delivery: Some(wire::delivery(&record)),
        }))
    }

    async fn revoke(
        &self,
        request: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        let request = request.into_inner();
        let id = order_id(&request.order_id)?;
        let reason = match pb::RevokeReason::try_from(request.reason) {
            Ok(pb::RevokeReason::Refunded) => RevokeReason::Refunded,
            Ok(pb::RevokeReason::Revoked) => RevokeReason::Revoked,
            // AdminService.RevokeOrder, through the verifier.
            Ok(pb::RevokeReason::Operator) => RevokeReason::Operator,
            _ => {
                return Err(invalid_argument(
                    "reason",
                    "must be REVOKE_REASON_REFUNDED, REVOKE_REASON_REVOKED or REVOKE_REASON_OPERATOR",
                ));
            }
        };
        let share = match u32::try_from(request.refunded_units) {
            Ok(0) => RefundShare::Whole,
            Ok(units) => RefundShare::Units(units),
            Err(_) => {
                return Err(invalid_argument(
                    "refunded_units",
                    "must not be negative (0 is the whole order)",
                ));
            }
        };
        let non_empty = |text: String| (!text.is_empty()).then_some(text);
        let revocation = Revocation {
            reason,
            share,
            cause: RefundCause {
                source: non_empty(request.store_source),
                reason: non_empty(request.store_reason),
            },
        };
        // Its own task, like Deliver: a RevokeItems call is never cut by a caller going away.
        let deliveries = self.deliveries.clone();
        let revoked = tokio::spawn(async move { deliveries.revoke_refund(id, &revocation).await })
            .await
            .map_err(|e| Status::internal(format!("revocation task failed: {e}")))?
            .map_err(IntoStatus::into_status)?;
        let order = revoked.order;
        let delivery = self
            .deliveries
            .delivery(id)
            .await
            .map_err(IntoStatus::into_status)?;
        Ok(Response::new(pb::RevokeResponse {
            order: Some(wire::order(&order)),
            delivery: delivery.as_ref().map(wire::delivery),
            revoked_units: i32::try_from(revoked.units).unwrap_or(i32::MAX),
        }))
    }
}
