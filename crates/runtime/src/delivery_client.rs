//! `DeliveryService` over gRPC, for processes that trigger deliveries without running them: the
//! verifier's fast path and operators' redeliveries, compensations and revocations, and the
//! scheduler's sweeps. Sends the service token, and speaks TLS to `https://` URLs.

use async_trait::async_trait;
use tonic::transport::{Channel, Endpoint};

use iap_domain::OrderId;
use iap_domain::admin::{OrderRevoker, RevokeFailure};
use iap_domain::delivery::{DeliveryTrigger, RevokeReason};
use iap_domain::refunds::{RefundShare, Revocation};
use iap_proto::v1 as pb;
use iap_proto::v1::delivery_service_client::DeliveryServiceClient;

use crate::auth::{attach_bearer, client_tls};
use crate::settings::{AuthSettings, Token};

/// A `DeliveryService` client.
#[derive(Debug, Clone)]
pub struct DeliveryClient {
    client: DeliveryServiceClient<Channel>,
    token: Option<Token>,
}

impl DeliveryClient {
    /// Connects lazily to `url` without credentials: a delivery service that is down delays
    /// deliveries (the callers retry), it does not stop the caller.
    pub fn new(url: &str) -> Result<Self, String> {
        Self::with_auth(url, &AuthSettings::default())
    }

    /// Like [`DeliveryClient::new`], sending `auth.service_token` with every call, and for an
    /// `https://` URL trusting `auth.tls_server_ca_file` and presenting this process's
    /// certificate.
    pub fn with_auth(url: &str, auth: &AuthSettings) -> Result<Self, String> {
        let mut endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| format!("delivery URL {url:?}: {e}"))?
            .connect_timeout(std::time::Duration::from_secs(2));
        if url.starts_with("https://") {
            let tls = client_tls(auth).map_err(|e| e.to_string())?;
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| format!("delivery URL {url:?}: {e}"))?;
        }
        Ok(Self {
            client: DeliveryServiceClient::new(endpoint.connect_lazy()),
            token: auth.service_token.clone(),
        })
    }

    fn request<T>(&self, message: T) -> Result<tonic::Request<T>, String> {
        let mut request = tonic::Request::new(message);
        attach_bearer(&mut request, self.token.as_ref())?;
        Ok(request)
    }
}

#[async_trait]
impl DeliveryTrigger for DeliveryClient {
    async fn deliver_now(&self, order: OrderId) -> Result<(), String> {
        let request = self.request(pb::DeliverRequest {
            order_id: order.to_string(),
        })?;
        self.client
            .clone()
            .deliver(request)
            .await
            .map(|_| ())
            .map_err(|s| format!("Deliver: {:?} {}", s.code(), s.message()))
    }

    async fn revoke_now(&self, order: OrderId, reason: RevokeReason) -> Result<(), String> {
        self.revoke_call(order, &Revocation::whole(reason))
            .await
            .map(|_| ())
            .map_err(|s| format!("Revoke: {:?} {}", s.code(), s.message()))
    }

    async fn revoke_refund_now(
        &self,
        order: OrderId,
        revocation: &Revocation,
    ) -> Result<u32, String> {
        self.revoke_call(order, revocation)
            .await
            .map_err(|s| format!("Revoke: {:?} {}", s.code(), s.message()))
    }
}

impl DeliveryClient {
    async fn revoke_call(
        &self,
        order: OrderId,
        revocation: &Revocation,
    ) -> Result<u32, tonic::Status> {
        let reason = match revocation.reason {
            RevokeReason::Refunded => pb::RevokeReason::Refunded,
            RevokeReason::Revoked => pb::RevokeReason::Revoked,
            RevokeReason::Operator => pb::RevokeReason::Operator,
        };
        let request = self
            .request(pb::RevokeRequest {
                order_id: order.to_string(),
                reason: reason.into(),
                refunded_units: match revocation.share {
                    RefundShare::Whole => 0,
                    RefundShare::Units(units) => i32::try_from(units).unwrap_or(i32::MAX),
                },
                store_source: revocation.cause.source.clone().unwrap_or_default(),
                store_reason: revocation.cause.reason.clone().unwrap_or_default(),
            })
            .map_err(tonic::Status::internal)?;
        let reply = self.client.clone().revoke(request).await?.into_inner();
        Ok(u32::try_from(reply.revoked_units).unwrap_or(0))
    }
}

#[async_trait]
impl OrderRevoker for DeliveryClient {
    async fn revoke(&self, order: OrderId, reason: RevokeReason) -> Result<(), RevokeFailure> {
        self.revoke_call(order, &Revocation::whole(reason))
            .await
            .map(|_| ())
            .map_err(|status| match status.code() {
                tonic::Code::NotFound => RevokeFailure::NotFound,
                tonic::Code::Aborted => RevokeFailure::GrantInFlight,
                code => {
                    RevokeFailure::Unavailable(format!("Revoke: {code:?} {}", status.message()))
                }
            })
    }
}
