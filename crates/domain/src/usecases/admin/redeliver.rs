//! Redelivery: a DEAD or stuck paid order goes back in the queue with the same grant id.

use serde_json::json;

use super::{Accountability, AdminError, Administration, OrderAndDelivery};
use crate::admin::AdminStore;
use crate::delivery::DeliveryStore;
use crate::ids::OrderId;
use crate::order::OrderState;
use crate::ports::OrderRepository;

impl<S: AdminStore + OrderRepository + DeliveryStore> Administration<S> {
    /// Puts a DEAD order (or a paid one stuck in PAID/DELIVERING) back in the queue with the
    /// same grant id and delivers it now. A DEAD order keeps its attempt counter (it is the
    /// fencing token) but starts a fresh series of `delivery.max_attempts` attempts, counted
    /// from `attempts_before_redelivery` (the audit entry says from which attempt).
    #[tracing::instrument(name = "admin.redeliver", skip(self, who), fields(operator = %who.operator()), err)]
    pub async fn redeliver(
        &self,
        id: OrderId,
        who: &Accountability,
    ) -> Result<OrderAndDelivery, AdminError> {
        let order = self.order(id).await?;
        let requeueable = order.state.awaits_delivery()
            || (order.state == OrderState::Dead && order.state.can_become(OrderState::Paid));
        if !requeueable {
            return Err(AdminError::WrongState {
                reason: "ORDER_NOT_REDELIVERABLE",
                order: id,
                state: order.state,
                hint: "only DEAD, PAID or DELIVERING orders can be redelivered; \
                       use CompensateOrder for an unpaid one",
            });
        }
        let audit = who.audit(
            "redeliver",
            Some(id),
            json!({
                "from_state": order.state.as_str(),
                "attempt": order.attempt,
                "fresh_series": order.state == OrderState::Dead,
            }),
        );
        self.store
            .requeue_order(id, order.state, order.attempt, &audit)
            .await?
            .ok_or(AdminError::OrderChanged(id))?;
        tracing::info!(order_id = %id, from = %order.state, "order requeued by an operator");
        self.deliver_now(id).await;
        let order = self.order(id).await?;
        self.with_delivery(order).await
    }
}
