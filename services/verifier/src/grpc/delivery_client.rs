//! The fast path to a separate `iap-delivery`: `DeliveryService.Deliver` over gRPC.

use async_trait::async_trait;
use tonic::transport::{Channel, Endpoint};

use iap_domain::OrderId;
use iap_domain::delivery::DeliveryTrigger;
use iap_proto::v1 as pb;
use iap_proto::v1::delivery_service_client::DeliveryServiceClient;

/// `DeliveryService` client used right after a payment is recorded.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryClient {
    client: DeliveryServiceClient<Channel>,
}

impl DeliveryClient {
    /// Connects lazily to `url`: a delivery service that is down only leaves the work to the
    /// sweeper.
    pub(crate) fn new(url: &str) -> Result<Self, String> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| format!("verifier.delivery_url {url:?}: {e}"))?
            .connect_timeout(std::time::Duration::from_secs(2));
        Ok(Self {
            client: DeliveryServiceClient::new(endpoint.connect_lazy()),
        })
    }
}

#[async_trait]
impl DeliveryTrigger for DeliveryClient {
    async fn deliver_now(&self, order: OrderId) -> Result<(), String> {
        self.client
            .clone()
            .deliver(pb::DeliverRequest {
                order_id: order.to_string(),
            })
            .await
            .map(|_| ())
            .map_err(|s| format!("Deliver: {:?} {}", s.code(), s.message()))
    }
}
