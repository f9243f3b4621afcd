//! `DeliveryService.Deliver` over gRPC, for processes that trigger deliveries without running
//! them: the verifier's fast path and the scheduler's sweeps.

use async_trait::async_trait;
use tonic::transport::{Channel, Endpoint};

use iap_domain::OrderId;
use iap_domain::delivery::{DeliveryTrigger, RevokeReason};
use iap_proto::v1 as pb;
use iap_proto::v1::delivery_service_client::DeliveryServiceClient;

/// A `DeliveryService` client.
#[derive(Debug, Clone)]
pub struct DeliveryClient {
    client: DeliveryServiceClient<Channel>,
}

impl DeliveryClient {
    /// Connects lazily to `url`: a delivery service that is down delays deliveries (the callers
    /// retry), it does not stop the caller.
    pub fn new(url: &str) -> Result<Self, String> {
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

    async fn revoke_now(&self, order: OrderId, reason: RevokeReason) -> Result<(), String> {
        let reason = match reason {
            RevokeReason::Refunded => pb::RevokeReason::Refunded,
            RevokeReason::Revoked => pb::RevokeReason::Revoked,
            RevokeReason::Operator => pb::RevokeReason::Operator,
        };
        self.client
            .clone()
            .revoke(pb::RevokeRequest {
                order_id: order.to_string(),
                reason: reason.into(),
            })
            .await
            .map(|_| ())
            .map_err(|s| format!("Revoke: {:?} {}", s.code(), s.message()))
    }
}
