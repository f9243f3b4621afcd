//! `iap.v1.OrderService`.

use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use iap_domain::ports::OrderRepository;
use iap_domain::usecases::create_order::CreateOrder;
use iap_domain::{AppId, OrderId, ProductId, UserId};
use iap_proto::v1 as pb;
use iap_proto::v1::order_service_server::{OrderService, OrderServiceServer};
use iap_runtime::auth::BearerCheck;
use iap_runtime::status::{IntoStatus, invalid_argument, not_found};
use iap_runtime::wire;

use crate::verifier::Verifier;

pub(crate) fn order_service(
    verifier: Verifier,
    check: BearerCheck,
) -> InterceptedService<OrderServiceServer<Verifier>, BearerCheck> {
    OrderServiceServer::with_interceptor(verifier, check)
}

/// The use-case command a CreateOrder request carries, or why it is invalid.
pub(crate) fn create_order_command(r: pb::CreateOrderRequest) -> Result<CreateOrder, Status> {
    let platform = wire::platform_from_wire(r.platform).ok_or_else(|| {
        invalid_argument(
            "platform",
            "must be PLATFORM_APPLE, PLATFORM_GOOGLE or PLATFORM_HUAWEI",
        )
    })?;
    let quantity = u32::try_from(r.quantity)
        .map_err(|_| invalid_argument("quantity", "must not be negative"))?;
    Ok(CreateOrder {
        app_id: AppId::parse(r.app_id).map_err(IntoStatus::into_status)?,
        user_id: UserId::parse(r.user_id).map_err(IntoStatus::into_status)?,
        product_id: ProductId::parse(r.product_id).map_err(IntoStatus::into_status)?,
        platform,
        quantity,
        expected_price: r.expected_price.map(wire::money_from_wire),
        idempotency_key: Some(r.idempotency_key).filter(|k| !k.is_empty()),
        metadata: r.metadata.into_iter().collect(),
    })
}

#[tonic::async_trait]
impl OrderService for Verifier {
    async fn create_order(
        &self,
        request: Request<pb::CreateOrderRequest>,
    ) -> Result<Response<pb::CreateOrderResponse>, Status> {
        let command = create_order_command(request.into_inner())?;
        let created = self
            .orders
            .create(command)
            .await
            .map_err(IntoStatus::into_status)?;
        Ok(Response::new(pb::CreateOrderResponse {
            order: Some(wire::order(&created.order)),
            binding: Some(wire::purchase_binding(created.binding)),
        }))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::GetOrderResponse>, Status> {
        let id = request.into_inner().order_id;
        let id = OrderId::parse(&id)
            .map_err(|_| invalid_argument("order_id", "must be an order id (UUID)"))?;
        let order = self
            .storage
            .get_order(id)
            .await
            .map_err(IntoStatus::into_status)?
            .ok_or_else(|| not_found("ORDER_NOT_FOUND", format!("no order {id}")))?;
        Ok(Response::new(pb::GetOrderResponse {
            order: Some(wire::order(&order)),
            delivery: None,
        }))
    }
}
