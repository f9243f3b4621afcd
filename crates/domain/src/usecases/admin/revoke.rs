//! Revocation by an operator: the items are taken back through the delivery use case.

use serde_json::json;

use super::{Accountability, AdminError, Administration, OrderAndDelivery};
use crate::admin::{AdminStore, RevokeFailure};
use crate::delivery::{DeliveryStore, RevokeReason};
use crate::ids::OrderId;
use crate::order::OrderState;
use crate::ports::OrderRepository;

impl<S: AdminStore + OrderRepository + DeliveryStore> Administration<S> {
    /// Takes back the items of an order (RevokeItems with a stable revoke id) and marks it
    /// REVOKED. The request is audited before it is carried out, so an attempt that fails half
    /// way is on record; an order already revoked or refunded is returned as it is.
    #[tracing::instrument(name = "admin.revoke", skip(self, who), fields(operator = %who.operator()), err)]
    pub async fn revoke(
        &self,
        id: OrderId,
        who: &Accountability,
    ) -> Result<OrderAndDelivery, AdminError> {
        let order = self.order(id).await?;
        match order.state {
            OrderState::Revoked | OrderState::Refunded => return self.with_delivery(order).await,
            state if !state.can_become(OrderState::Revoked) => {
                return Err(AdminError::WrongState {
                    reason: "ORDER_NOT_REVOCABLE",
                    order: id,
                    state,
                    hint: "only paid orders can be revoked",
                });
            }
            _ => {}
        }
        let revoker = self
            .revoker
            .clone()
            .ok_or(AdminError::DeliveryNotConfigured)?;
        let audit = who.audit(
            "revoke",
            Some(id),
            json!({ "from_state": order.state.as_str() }),
        );
        self.store.record_audit(&audit).await?;
        match revoker.revoke(id, RevokeReason::Operator).await {
            Ok(()) => {}
            Err(RevokeFailure::NotFound) => return Err(AdminError::OrderNotFound(id.to_string())),
            Err(RevokeFailure::GrantInFlight) => return Err(AdminError::GrantInFlight(id)),
            Err(RevokeFailure::Unavailable(e)) => return Err(AdminError::DeliveryUnavailable(e)),
        }
        tracing::info!(order_id = %id, "order revoked by an operator");
        let order = self.order(id).await?;
        self.with_delivery(order).await
    }
}
