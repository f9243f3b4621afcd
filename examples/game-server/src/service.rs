//! The gRPC face of the ledger: translates `GrantItems`/`RevokeItems`/`UpdateSubscription` into
//! ledger calls, maps
//! ledger errors to status codes, and applies the test faults.

use std::sync::Arc;

use iap_proto::v1::game_server_service_server::{GameServerService, GameServerServiceServer};
use iap_proto::v1::{
    GrantItemsRequest, GrantItemsResponse, RevokeItemsRequest, RevokeItemsResponse,
    SubscriptionState, UpdateSubscriptionRequest, UpdateSubscriptionResponse,
};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::faults::Faults;
use crate::ledger::{EntitlementEntry, GrantRequest, Ledger, LedgerError, Outcome, RevokeRequest};

/// `iap.v1.GameServerService` over a [`Ledger`], with [`Faults`] for tests.
#[derive(Debug, Clone)]
pub struct GameServer {
    ledger: Arc<Ledger>,
    faults: Arc<Faults>,
}

impl GameServer {
    /// A service answering from `ledger`, misbehaving as `faults` says.
    pub fn new(ledger: Arc<Ledger>, faults: Arc<Faults>) -> Self {
        Self { ledger, faults }
    }

    /// Wraps the service for `tonic::transport::Server::add_service`.
    pub fn into_server(self) -> GameServerServiceServer<Self> {
        GameServerServiceServer::new(self)
    }

    /// Runs a ledger call on a blocking thread: it may wait for `sync_data`. Once started it
    /// finishes even if the caller goes away, so a cancelled call never leaves half an effect.
    async fn on_ledger<T, F>(&self, call: F) -> Result<T, Status>
    where
        F: FnOnce(&Ledger) -> Result<T, LedgerError> + Send + 'static,
        T: Send + 'static,
    {
        let ledger = Arc::clone(&self.ledger);
        match tokio::task::spawn_blocking(move || call(&ledger)).await {
            Ok(result) => result.map_err(Status::from),
            Err(join_error) => {
                tracing::error!(error = %join_error, "ledger call panicked");
                Err(Status::internal("ledger call failed"))
            }
        }
    }
}

#[tonic::async_trait]
impl GameServerService for GameServer {
    async fn grant_items(
        &self,
        request: Request<GrantItemsRequest>,
    ) -> Result<Response<GrantItemsResponse>, Status> {
        let request = request.into_inner();
        let span = tracing::info_span!(
            "grant_items",
            grant_id = %request.grant_id,
            order_id = %request.order_id,
        );
        async move {
            if let Some(code) = self.faults.take_grant_failure() {
                tracing::warn!(?code, "fault: failing grant before applying it");
                return Err(Status::new(code, "injected fault: grant not applied"));
            }
            let grant = GrantRequest {
                grant_id: request.grant_id,
                order_id: request.order_id,
                app_id: request.app_id,
                user_id: request.user_id,
                product_id: request.product_id,
                quantity: request.quantity,
            };
            let result = self.on_ledger(move |ledger| ledger.grant(&grant)).await;
            tokio::time::sleep(self.faults.reply_delay()).await;
            let Outcome {
                reference,
                duplicate,
            } = result.inspect_err(|status| {
                tracing::info!(code = ?status.code(), "grant refused");
            })?;
            tracing::info!(%reference, duplicate, "grant answered");
            if let Some(code) = self.faults.take_lost_ack() {
                tracing::warn!(?code, "fault: grant applied, losing the acknowledgement");
                return Err(Status::new(code, "injected fault: acknowledgement lost"));
            }
            Ok(Response::new(GrantItemsResponse {
                reference,
                duplicate,
            }))
        }
        .instrument(span)
        .await
    }

    async fn revoke_items(
        &self,
        request: Request<RevokeItemsRequest>,
    ) -> Result<Response<RevokeItemsResponse>, Status> {
        let request = request.into_inner();
        let span = tracing::info_span!(
            "revoke_items",
            revoke_id = %request.revoke_id,
            grant_id = %request.grant_id,
        );
        async move {
            let revoke = RevokeRequest {
                revoke_id: request.revoke_id,
                grant_id: request.grant_id,
                order_id: request.order_id,
                app_id: request.app_id,
                user_id: request.user_id,
                product_id: request.product_id,
                quantity: request.quantity,
            };
            let result = self.on_ledger(move |ledger| ledger.revoke(&revoke)).await;
            tokio::time::sleep(self.faults.reply_delay()).await;
            let Outcome {
                reference,
                duplicate,
            } = result.inspect_err(|status| {
                tracing::info!(code = ?status.code(), "revoke refused");
            })?;
            tracing::info!(%reference, duplicate, "revoke answered");
            Ok(Response::new(RevokeItemsResponse {
                reference,
                duplicate,
            }))
        }
        .instrument(span)
        .await
    }

    async fn update_subscription(
        &self,
        request: Request<UpdateSubscriptionRequest>,
    ) -> Result<Response<UpdateSubscriptionResponse>, Status> {
        let request = request.into_inner();
        if request.subscription_id.is_empty() || request.version <= 0 {
            return Err(Status::invalid_argument(
                "subscription_id and a positive version are required",
            ));
        }
        let state = SubscriptionState::try_from(request.state)
            .unwrap_or(SubscriptionState::Unspecified)
            .as_str_name()
            .trim_start_matches("SUBSCRIPTION_STATE_")
            .to_ascii_lowercase();
        let entry = EntitlementEntry {
            subscription_id: request.subscription_id,
            version: request.version,
            app_id: request.app_id,
            user_id: request.user_id,
            product_id: request.product_id,
            state,
            access_until_ms: request.access_until_ms,
            applied_at_ms: 0,
        };
        let duplicate = self
            .on_ledger(move |ledger| ledger.update_entitlement(entry))
            .await?;
        Ok(Response::new(UpdateSubscriptionResponse { duplicate }))
    }
}

/// The one mapping from ledger errors to gRPC statuses. Only refusals that retrying cannot fix
/// get non-retryable codes; a failed write is UNAVAILABLE so the delivery service tries again.
impl From<LedgerError> for Status {
    fn from(error: LedgerError) -> Self {
        match &error {
            LedgerError::InvalidArgument { .. } => Status::invalid_argument(error.to_string()),
            LedgerError::KeyConflict { .. } | LedgerError::RevokeMismatch { .. } => {
                Status::failed_precondition(error.to_string())
            }
            LedgerError::Write(_) | LedgerError::Unwritable => {
                tracing::error!(error = %error, "ledger write failed");
                Status::unavailable("the ledger could not record the change; retry later")
            }
        }
    }
}
