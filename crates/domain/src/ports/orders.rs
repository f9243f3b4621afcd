//! Orders: creating one (idempotent per app, user and key) and plain reads.

use async_trait::async_trait;

use crate::ids::{AppId, OrderId, UserId};
use crate::order::{NewOrder, Order};
use crate::ports::StorageError;

/// Result of inserting an order.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    /// A new order was stored.
    Created(Order),
    /// An order with the same idempotency key already existed and is returned instead.
    Existing(Order),
}

/// Orders: creation and plain reads.
#[async_trait]
pub trait OrderRepository: Send + Sync {
    /// Stores a new order in state CREATED. An idempotency key already used by the same app and
    /// user returns the existing order.
    async fn create_order(&self, order: NewOrder) -> Result<CreateOutcome, StorageError>;

    /// Reads one order.
    async fn get_order(&self, id: OrderId) -> Result<Option<Order>, StorageError>;

    /// Counts a user's orders still in state CREATED.
    async fn count_unpaid_orders(&self, app: &AppId, user: &UserId) -> Result<u64, StorageError>;
}
