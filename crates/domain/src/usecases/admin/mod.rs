//! Operations for support engineers: list and find orders, read an order's history, redeliver,
//! compensate (补单), revoke, look at and replay store notifications, and the counts that show
//! lost orders. Every manual change names an operator and a reason and is written to the audit
//! log in the same commit as the change; a compensation is idempotent per key.
//!
//! Grants and revocations go through the delivery use case (in process in `iapd`, over gRPC to
//! `iap-delivery` otherwise), so an operator's grant is fenced and deduplicated exactly like an
//! automatic one: same grant id, same claim, same attempt counter.

mod accountability;
mod browse;
mod compensate;
mod inbox;
mod masking;
mod paging;
mod redeliver;
mod revoke;
mod stats;

use std::sync::Arc;

use crate::admin::{AdminStore, OrderRevoker};
use crate::catalog::Catalog;
use crate::delivery::{DeliveryRecord, DeliveryStore, DeliveryTrigger};
use crate::ids::{AppId, IdError, OrderId, ProductId};
use crate::order::{Order, OrderState};
use crate::ports::{OrderRepository, StorageError};

pub use accountability::Accountability;
pub use browse::{ListOrders, LookupMatch, OrderHistory};
pub use compensate::{Compensate, CompensationGrant, CompensationOutcome};
pub use masking::mask_token;
pub use paging::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, page_size};
pub use stats::AdminStats;

/// Why an operator's call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A field is missing or malformed.
    #[error("{field}: {problem}")]
    InvalidArgument {
        /// Field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// No order has this id (or, for a lookup, no order carries it).
    #[error("no order {0}")]
    OrderNotFound(String),
    /// No stored notification has this id.
    #[error("no stored notification {0}")]
    NotificationNotFound(String),
    /// The app is not configured.
    #[error("app {0} is not configured")]
    UnknownApp(AppId),
    /// The product is not in the app's catalog.
    #[error("product {product} is not in the catalog of app {app}")]
    UnknownProduct {
        /// App.
        app: AppId,
        /// Product.
        product: ProductId,
    },
    /// The order is in a state the action does not apply to.
    #[error("order {order} is {state}: {hint}")]
    WrongState {
        /// Machine-readable reason, e.g. `ORDER_NOT_REDELIVERABLE`.
        reason: &'static str,
        /// Order.
        order: OrderId,
        /// Its state.
        state: OrderState,
        /// What to do instead.
        hint: &'static str,
    },
    /// The idempotency key was used for a different compensation.
    #[error("idempotency key {0:?} was used for a different compensation")]
    IdempotencyKeyReused(String),
    /// The order changed while the action was being recorded; nothing was written. Retry.
    #[error("order {0} changed concurrently; nothing was written, retry")]
    OrderChanged(OrderId),
    /// A grant of the order is in flight; retry shortly.
    #[error("a grant of order {0} is in flight; retry shortly")]
    GrantInFlight(OrderId),
    /// This process has no way to reach the game server (no delivery configured).
    #[error("no delivery service is configured in this process")]
    DeliveryNotConfigured,
    /// The delivery service or the game server did not answer; retry.
    #[error("delivery unavailable: {0}")]
    DeliveryUnavailable(String),
    /// Storage failed; nothing half-written.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<IdError> for AdminError {
    fn from(e: IdError) -> Self {
        AdminError::InvalidArgument {
            field: e.field,
            problem: e.problem.to_owned(),
        }
    }
}

fn invalid(field: &'static str, problem: impl Into<String>) -> AdminError {
    AdminError::InvalidArgument {
        field,
        problem: problem.into(),
    }
}

/// Parses an order id given by an operator.
pub fn parse_order_id(raw: &str) -> Result<OrderId, AdminError> {
    if raw.trim().is_empty() {
        return Err(invalid("order_id", "is required"));
    }
    OrderId::parse(raw).map_err(|_| invalid("order_id", "must be an order id (UUID)"))
}

/// An order and its grant record after an action.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderAndDelivery {
    /// The order.
    pub order: Order,
    /// Its grant record.
    pub delivery: Option<DeliveryRecord>,
}

/// The operators' use cases.
pub struct Administration<S> {
    store: S,
    catalog: Arc<Catalog>,
    delivery: Option<Arc<dyn DeliveryTrigger>>,
    revoker: Option<Arc<dyn OrderRevoker>>,
}

impl<S> std::fmt::Debug for Administration<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Administration")
            .field("delivery", &self.delivery.is_some())
            .field("revoker", &self.revoker.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: AdminStore + OrderRepository + DeliveryStore> Administration<S> {
    /// Wires the use cases. Without `delivery`, redelivered and compensated orders are left due
    /// for the sweeper; without `revoker`, RevokeOrder is refused.
    pub fn new(
        store: S,
        catalog: Arc<Catalog>,
        delivery: Option<Arc<dyn DeliveryTrigger>>,
        revoker: Option<Arc<dyn OrderRevoker>>,
    ) -> Self {
        Self {
            store,
            catalog,
            delivery,
            revoker,
        }
    }

    async fn order(&self, id: OrderId) -> Result<Order, AdminError> {
        self.store
            .get_order(id)
            .await?
            .ok_or_else(|| AdminError::OrderNotFound(id.to_string()))
    }

    async fn with_delivery(&self, order: Order) -> Result<OrderAndDelivery, AdminError> {
        let delivery = self.store.delivery(order.id).await?;
        let order = self.redacted(vec![order]).await?.remove(0);
        Ok(OrderAndDelivery { order, delivery })
    }

    /// Delivers now, in its own task so an impatient caller cannot cut a grant short; a failure
    /// is logged: the order is due and the sweeper retries it.
    async fn deliver_now(&self, order: OrderId) {
        let Some(trigger) = self.delivery.clone() else {
            return;
        };
        let task = tokio::spawn(async move { trigger.deliver_now(order).await });
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(order_id = %order, error = %e, "delivery after an operator's action failed; the sweeper retries");
            }
            Err(e) => tracing::error!(order_id = %order, error = %e, "delivery task failed"),
        }
    }
}
