//! The game server as delivery sees it: a `GameServerService` gRPC client with a deadline on
//! every call. Every failure (status, timeout, connection) is reported for a retry: the outcome
//! of an unanswered call is unknown, and the idempotency keys make the retry safe.

use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tonic::transport::{Channel, Endpoint};

use iap_domain::delivery::{
    GameAck, GameError, GameServer, GrantCommand, GrantReason, RevokeCommand, RevokeReason,
};
use iap_domain::subscriptions::{SubscriptionState, SubscriptionUpdate};
use iap_proto::v1 as pb;
use iap_proto::v1::game_server_service_client::GameServerServiceClient;
use iap_runtime::auth::attach_bearer;
use iap_runtime::settings::Token;
use iap_runtime::wire;

/// `GameServerService` over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcGameServer {
    client: GameServerServiceClient<Channel>,
    token: Option<Token>,
}

impl GrpcGameServer {
    /// A client for `url` (`http://host:port`). Connects lazily: a game server that is down at
    /// startup delays deliveries, it does not stop the process.
    pub fn new(url: &str) -> Result<Self, String> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| format!("delivery.game_server_url {url:?}: {e}"))?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true);
        Ok(Self {
            client: GameServerServiceClient::new(endpoint.connect_lazy()),
            token: None,
        })
    }

    /// Sends `authorization: Bearer <token>` with every call (`auth.game_server_token`).
    pub fn with_token(mut self, token: Option<Token>) -> Self {
        self.token = token;
        self
    }
}

/// Longest game reference kept with a grant or revocation (shown to support with the order).
const MAX_REFERENCE_LEN: usize = 255;

/// The game's reference as it is kept: unchanged up to [`MAX_REFERENCE_LEN`] bytes; a longer one
/// (the game's text, of any length) is cut and ends with the SHA-256 of the whole, so support can
/// still match it, and is counted. The grant it acknowledges stands either way: refusing the
/// acknowledgement would only make the grant be sent again.
fn kept_reference(call: &'static str, reference: String) -> String {
    if reference.len() <= MAX_REFERENCE_LEN {
        return reference;
    }
    metrics::counter!("iap_game_ack_reference_shortened_total", "call" => call).increment(1);
    tracing::warn!(
        call,
        length = reference.len(),
        "the game server's reference is longer than {MAX_REFERENCE_LEN} bytes: kept shortened, with its SHA-256"
    );
    let suffix = format!(
        "~sha256:{}",
        hex::encode(Sha256::digest(reference.as_bytes()))
    );
    let mut cut = MAX_REFERENCE_LEN - suffix.len();
    while !reference.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &reference[..cut])
}

/// Awaits one call within `deadline`; a timeout or a status is a failure to retry (its outcome is
/// unknown, and the idempotency key makes the retry safe).
async fn within<T>(
    call: &str,
    deadline: Duration,
    reply: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, GameError> {
    match tokio::time::timeout(deadline, reply).await {
        Err(_) => Err(GameError(format!("{call}: deadline exceeded"))),
        Ok(Err(status)) => {
            if matches!(
                status.code(),
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
            ) {
                // Retrying cannot fix a refused credential: an operator must, so it is counted
                // (and alerted on) instead of only retried.
                metrics::counter!("iap_game_server_refused_total", "call" => call.to_owned())
                    .increment(1);
                tracing::error!(
                    call,
                    code = ?status.code(),
                    "the game server refuses our credentials: check auth.game_server_token"
                );
            }
            Err(GameError(format!(
                "{call}: {:?} {}",
                status.code(),
                status.message().chars().take(200).collect::<String>()
            )))
        }
        Ok(Ok(reply)) => Ok(reply.into_inner()),
    }
}

#[async_trait]
impl GameServer for GrpcGameServer {
    async fn grant(
        &self,
        command: &GrantCommand,
        deadline: Duration,
    ) -> Result<GameAck, GameError> {
        let order = &command.order;
        let mut request = tonic::Request::new(pb::GrantItemsRequest {
            grant_id: command.grant_id.clone(),
            order_id: order.id.to_string(),
            app_id: order.app_id.to_string(),
            user_id: order.user_id.to_string(),
            product_id: order.product_id.to_string(),
            quantity: i32::try_from(order.quantity).unwrap_or(i32::MAX),
            platform: wire::platform(order.platform).into(),
            product_kind: wire::product_kind(order.product_kind).into(),
            store_transaction_id: order.store_transaction_id.clone().unwrap_or_default(),
            sandbox: command.sandbox,
            reason: match command.reason {
                GrantReason::Purchase => pb::GrantReason::Purchase,
                GrantReason::SubscriptionRenewal => pb::GrantReason::SubscriptionRenewal,
                GrantReason::ManualCompensation => pb::GrantReason::ManualCompensation,
                GrantReason::RefundReversed => pb::GrantReason::RefundReversed,
            }
            .into(),
            entitlement_expires_at_ms: command
                .entitlement_expires_at
                .map_or(0, |t| t.timestamp_millis()),
        });
        request.set_timeout(deadline);
        attach_bearer(&mut request, self.token.as_ref()).map_err(GameError)?;
        let mut client = self.client.clone();
        let reply = within("GrantItems", deadline, client.grant_items(request)).await?;
        Ok(GameAck {
            reference: kept_reference("GrantItems", reply.reference),
            duplicate: reply.duplicate,
        })
    }

    async fn revoke(
        &self,
        command: &RevokeCommand,
        deadline: Duration,
    ) -> Result<GameAck, GameError> {
        let order = &command.order;
        let mut request = tonic::Request::new(pb::RevokeItemsRequest {
            revoke_id: command.revoke_id.clone(),
            grant_id: command.grant_id.clone(),
            order_id: order.id.to_string(),
            app_id: order.app_id.to_string(),
            user_id: order.user_id.to_string(),
            product_id: order.product_id.to_string(),
            quantity: i32::try_from(command.quantity).unwrap_or(i32::MAX),
            remaining_quantity: i32::try_from(command.remaining).unwrap_or(i32::MAX),
            platform: wire::platform(order.platform).into(),
            reason: match command.reason {
                RevokeReason::Refunded => pb::RevokeReason::Refunded,
                RevokeReason::Revoked => pb::RevokeReason::Revoked,
                RevokeReason::Operator => pb::RevokeReason::Operator,
            }
            .into(),
        });
        request.set_timeout(deadline);
        attach_bearer(&mut request, self.token.as_ref()).map_err(GameError)?;
        let mut client = self.client.clone();
        let reply = within("RevokeItems", deadline, client.revoke_items(request)).await?;
        Ok(GameAck {
            reference: kept_reference("RevokeItems", reply.reference),
            duplicate: reply.duplicate,
        })
    }

    async fn update_subscription(
        &self,
        update: &SubscriptionUpdate,
        deadline: Duration,
    ) -> Result<bool, GameError> {
        let s = &update.subscription;
        let mut request = tonic::Request::new(pb::UpdateSubscriptionRequest {
            subscription_id: s.id.clone(),
            version: s.version,
            app_id: s.app_id.to_string(),
            user_id: s.user_id.to_string(),
            platform: wire::platform(s.platform).into(),
            product_id: s.product_id.to_string(),
            state: subscription_state(s.state).into(),
            access_until_ms: update.access_until.map_or(0, |t| t.timestamp_millis()),
            expires_at_ms: s.expires_at.map_or(0, |t| t.timestamp_millis()),
            auto_renew: s.auto_renew,
            latest_order_id: s.latest_order_id.to_string(),
            replaced_by: s.replaced_by.clone().unwrap_or_default(),
            sandbox: s.environment == iap_domain::Environment::Sandbox,
        });
        request.set_timeout(deadline);
        attach_bearer(&mut request, self.token.as_ref()).map_err(GameError)?;
        let mut client = self.client.clone();
        match tokio::time::timeout(deadline, client.update_subscription(request)).await {
            Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => Ok(false),
            other => {
                within("UpdateSubscription", deadline, async move {
                    other.unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("deadline")))
                })
                .await?;
                Ok(true)
            }
        }
    }
}

fn subscription_state(state: SubscriptionState) -> pb::SubscriptionState {
    match state {
        SubscriptionState::Active => pb::SubscriptionState::Active,
        SubscriptionState::InGrace => pb::SubscriptionState::InGrace,
        SubscriptionState::BillingRetry => pb::SubscriptionState::BillingRetry,
        SubscriptionState::OnHold => pb::SubscriptionState::OnHold,
        SubscriptionState::Paused => pb::SubscriptionState::Paused,
        SubscriptionState::Expired => pb::SubscriptionState::Expired,
        SubscriptionState::Revoked => pb::SubscriptionState::Revoked,
        SubscriptionState::Replaced => pb::SubscriptionState::Replaced,
    }
}
