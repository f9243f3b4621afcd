//! Operations for support engineers: list and find orders, read an order's history, redeliver,
//! compensate (补单), revoke, look at and replay store notifications, and the counts that show
//! lost orders. Every manual change names an operator and a reason and is written to the audit
//! log in the same commit as the change; a compensation is idempotent per key.
//!
//! Grants and revocations go through the delivery use case (in process in `iapd`, over gRPC to
//! `iap-delivery` otherwise), so an operator's grant is fenced and deduplicated exactly like an
//! automatic one: same grant id, same claim, same attempt counter.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::json;

use crate::admin::{
    AdminStore, AuditEntry, CompensationRecord, CompensationTarget, HistoryEvent, IdKind,
    InboxEntry, KeysetPosition, OrderFilter, OrderRevoker, OrderStats, PriorCompensation,
    RevokeFailure, SortDirection, StorePurchaseView,
};
use crate::catalog::Catalog;
use crate::delivery::{DeliveryRecord, DeliveryStore, DeliveryTrigger, RevokeReason};
use crate::ids::{AppId, IdError, OrderId, ProductId, UserId};
use crate::order::{NewOrder, Order, OrderState, Platform};
use crate::ports::{OrderRepository, StorageError};

/// Largest page of a listing.
pub const MAX_PAGE_SIZE: u32 = 500;
/// Page size when the caller gives none.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_OPERATOR_LEN: usize = 128;
const MAX_REASON_LEN: usize = 2_000;
const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
const MAX_LOOKUP_ID_LEN: usize = 1_024;

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

/// Who acts and why: required on every call that changes something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accountability {
    operator: String,
    reason: String,
}

impl Accountability {
    /// Checks both are present, single-line where it matters, and of sane length.
    pub fn parse(operator: &str, reason: &str) -> Result<Self, AdminError> {
        Ok(Self {
            operator: Self::parse_operator(operator)?,
            reason: Self::parse_reason(reason)?,
        })
    }

    fn parse_operator(operator: &str) -> Result<String, AdminError> {
        let operator = operator.trim();
        if operator.is_empty() {
            return Err(invalid("operator", "is required (who is acting)"));
        }
        if operator.len() > MAX_OPERATOR_LEN || operator.chars().any(char::is_control) {
            return Err(invalid(
                "operator",
                format!("must be one line of at most {MAX_OPERATOR_LEN} bytes"),
            ));
        }
        Ok(operator.to_owned())
    }

    fn parse_reason(reason: &str) -> Result<String, AdminError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(invalid(
                "reason",
                "is required (why; a ticket number will do)",
            ));
        }
        if reason.len() > MAX_REASON_LEN {
            return Err(invalid(
                "reason",
                format!("must be at most {MAX_REASON_LEN} bytes"),
            ));
        }
        Ok(reason.to_owned())
    }

    /// Who acts.
    pub fn operator(&self) -> &str {
        &self.operator
    }

    /// Why.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub(crate) fn audit(
        &self,
        action: &'static str,
        order: Option<OrderId>,
        detail: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            operator: self.operator.clone(),
            action,
            order_id: order,
            reason: self.reason.clone(),
            detail,
            idempotency_key: None,
        }
    }
}

/// Parses an order id given by an operator.
pub fn parse_order_id(raw: &str) -> Result<OrderId, AdminError> {
    if raw.trim().is_empty() {
        return Err(invalid("order_id", "is required"));
    }
    OrderId::parse(raw).map_err(|_| invalid("order_id", "must be an order id (UUID)"))
}

/// Page size from the wire: 0 is the default, otherwise 1..=MAX_PAGE_SIZE.
pub fn page_size(raw: i32) -> Result<u32, AdminError> {
    match raw {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => Err(invalid("page_size", "must not be negative")),
        n => {
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            if n > MAX_PAGE_SIZE {
                Err(invalid(
                    "page_size",
                    format!("must be at most {MAX_PAGE_SIZE}"),
                ))
            } else {
                Ok(n)
            }
        }
    }
}

/// `ListOrders`.
#[derive(Debug, Clone, Default)]
pub struct ListOrders {
    /// Filters.
    pub filter: OrderFilter,
    /// Rows per page.
    pub page_size: u32,
    /// The previous page's token, empty for the first page.
    pub page_token: String,
}

/// A page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// Rows.
    pub items: Vec<T>,
    /// Token of the next page; empty when there is none.
    pub next_page_token: String,
}

/// The listing segments, in order: stuck orders first. Lost orders are what operators look for,
/// so the longest-waiting paid-but-undelivered ones lead, then the DEAD ones (oldest first), then
/// everything else, newest first.
const SEGMENTS: [(&[OrderState], SortDirection); 3] = [
    (
        &[OrderState::Paid, OrderState::Delivering],
        SortDirection::OldestFirst,
    ),
    (&[OrderState::Dead], SortDirection::OldestFirst),
    (
        &[
            OrderState::Created,
            OrderState::Delivered,
            OrderState::Confirmed,
            OrderState::Rejected,
            OrderState::Refunded,
            OrderState::Revoked,
        ],
        SortDirection::NewestFirst,
    ),
];

fn segment_of(state: OrderState) -> usize {
    SEGMENTS
        .iter()
        .position(|(states, _)| states.contains(&state))
        .unwrap_or(SEGMENTS.len() - 1)
}

/// A listing position, written as an opaque token: `<kind>:<segment>:<micros>:<uuid>` in hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PageToken {
    segment: usize,
    position: KeysetPosition,
}

impl PageToken {
    fn encode(self, kind: &str) -> String {
        hex::encode(format!(
            "{kind}:{}:{}:{}",
            self.segment,
            self.position.at.timestamp_micros(),
            self.position.id
        ))
    }

    fn decode(kind: &str, token: &str) -> Result<Option<Self>, AdminError> {
        if token.is_empty() {
            return Ok(None);
        }
        let bad = || invalid("page_token", "is not a token from a previous page");
        let text = hex::decode(token).map_err(|_| bad())?;
        let text = String::from_utf8(text).map_err(|_| bad())?;
        let mut parts = text.split(':');
        if parts.next() != Some(kind) {
            return Err(bad());
        }
        let segment: usize = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let micros: i64 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let id = parts
            .next()
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .ok_or_else(bad)?;
        let at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
        if segment >= SEGMENTS.len() || parts.next().is_some() {
            return Err(bad());
        }
        Ok(Some(Self {
            segment,
            position: KeysetPosition { at, id },
        }))
    }
}

/// One match of `LookupOrder`.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupMatch {
    /// The order.
    pub order: Order,
    /// Which id matched.
    pub matched_by: IdKind,
}

/// `GetOrderHistory`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderHistory {
    /// The order now.
    pub order: Order,
    /// Its grant record.
    pub delivery: Option<DeliveryRecord>,
    /// Its story, oldest first.
    pub events: Vec<HistoryEvent>,
    /// The purchase that paid it.
    pub store_purchase: Option<StorePurchaseView>,
}

/// An order and its grant record after an action.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderAndDelivery {
    /// The order.
    pub order: Order,
    /// Its grant record.
    pub delivery: Option<DeliveryRecord>,
}

/// `CompensateOrder`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compensate {
    who: Accountability,
    idempotency_key: String,
    grant: CompensationGrant,
}

/// What a compensation grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompensationGrant {
    /// Force-grant an existing order.
    Order(OrderId),
    /// Grant a product to a user without a purchase, as a new manual order.
    Product {
        /// App.
        app_id: AppId,
        /// User.
        user_id: UserId,
        /// Product.
        product_id: ProductId,
        /// Store the order is filed under.
        platform: Platform,
        /// Units (at least 1).
        quantity: u32,
    },
}

impl CompensationGrant {
    /// The request as stored in the audit entry, to recognise a reused key.
    fn fingerprint(&self) -> serde_json::Value {
        match self {
            CompensationGrant::Order(id) => json!({ "order_id": id.to_string() }),
            CompensationGrant::Product {
                app_id,
                user_id,
                product_id,
                platform,
                quantity,
            } => json!({
                "app_id": app_id.as_str(),
                "user_id": user_id.as_str(),
                "product_id": product_id.as_str(),
                "platform": platform.as_str(),
                "quantity": quantity,
            }),
        }
    }
}

impl Compensate {
    /// Validates a compensation request: operator, reason and key are required; either an order
    /// id, or app, user, product and platform (quantity 0 is read as 1).
    pub fn parse(
        who: Accountability,
        idempotency_key: &str,
        grant: CompensationGrant,
    ) -> Result<Self, AdminError> {
        let key = idempotency_key.trim();
        if key.is_empty() {
            return Err(invalid(
                "idempotency_key",
                "is required (e.g. the ticket id): the same key never grants twice",
            ));
        }
        if key.len() > MAX_IDEMPOTENCY_KEY_LEN || key.chars().any(char::is_control) {
            return Err(invalid(
                "idempotency_key",
                format!("must be one line of at most {MAX_IDEMPOTENCY_KEY_LEN} bytes"),
            ));
        }
        Ok(Self {
            who,
            idempotency_key: key.to_owned(),
            grant,
        })
    }
}

/// `CompensateOrder`'s result.
#[derive(Debug, Clone, PartialEq)]
pub struct CompensationOutcome {
    /// The order granted and its grant record.
    pub result: OrderAndDelivery,
    /// The key had been used before; this call changed nothing.
    pub duplicate: bool,
}

/// `GetStats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminStats {
    /// The raw counts.
    pub counts: OrderStats,
    /// Age of the oldest paid-but-undelivered order (zero when none).
    pub oldest_undelivered_age: chrono::Duration,
    /// Age of the oldest delivered-but-unconfirmed order (zero when none).
    pub oldest_unconfirmed_age: chrono::Duration,
    /// DEAD orders.
    pub dead_orders: u64,
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

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
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

    /// Orders as operators may see them: a store transaction id that is a purchase token (as
    /// Google's often is) is masked.
    async fn redacted(&self, mut orders: Vec<Order>) -> Result<Vec<Order>, AdminError> {
        let ids: Vec<OrderId> = orders.iter().map(|o| o.id).collect();
        let tokens = self.store.purchase_tokens(&ids).await?;
        for order in &mut orders {
            if let Some(id) = &mut order.store_transaction_id
                && tokens.contains(id)
            {
                *id = mask_token(id);
            }
        }
        Ok(orders)
    }

    /// Lists orders, stuck ones first (see [`SEGMENTS`]), one keyset page at a time.
    #[tracing::instrument(name = "admin.list_orders", skip_all, err)]
    pub async fn list_orders(&self, request: ListOrders) -> Result<Page<Order>, AdminError> {
        let limit = request.page_size.clamp(1, MAX_PAGE_SIZE);
        let start = PageToken::decode("orders", &request.page_token)?;
        let first_segment = start.map_or(0, |t| t.segment);
        let mut items: Vec<Order> = Vec::new();
        for (index, (states, direction)) in SEGMENTS.iter().enumerate().skip(first_segment) {
            let states: Vec<OrderState> = states
                .iter()
                .copied()
                .filter(|s| request.filter.states.is_empty() || request.filter.states.contains(s))
                .collect();
            if states.is_empty() {
                continue;
            }
            let after = start.filter(|t| t.segment == index).map(|t| t.position);
            let wanted = limit - u32::try_from(items.len()).unwrap_or(limit);
            // One row more than the page holds tells whether another page follows.
            let rows = self
                .store
                .list_orders(&request.filter, &states, *direction, after, wanted + 1)
                .await?;
            items.extend(rows);
            if items.len() > limit as usize {
                items.truncate(limit as usize);
                let last = &items[items.len() - 1];
                let token = PageToken {
                    segment: segment_of(last.state),
                    position: KeysetPosition {
                        at: last.updated_at,
                        id: last.id.as_uuid(),
                    },
                };
                return Ok(Page {
                    items: self.redacted(items).await?,
                    next_page_token: token.encode("orders"),
                });
            }
        }
        Ok(Page {
            items: self.redacted(items).await?,
            next_page_token: String::new(),
        })
    }

    /// Finds orders by any id: our order id, or any store id of the purchase that paid them.
    #[tracing::instrument(name = "admin.lookup_order", skip_all, err)]
    pub async fn lookup(&self, id: &str) -> Result<Vec<LookupMatch>, AdminError> {
        let id = id.trim();
        if id.is_empty() {
            return Err(invalid("id", "is required"));
        }
        if id.len() > MAX_LOOKUP_ID_LEN {
            return Err(invalid(
                "id",
                format!("must be at most {MAX_LOOKUP_ID_LEN} bytes"),
            ));
        }
        let mut matches = Vec::new();
        if let Ok(order_id) = OrderId::parse(id)
            && let Some(order) = self.store.get_order(order_id).await?
        {
            matches.push(LookupMatch {
                order,
                matched_by: IdKind::OrderId,
            });
        }
        for (order_id, kind) in self.store.find_by_store_id(id).await? {
            if matches.iter().any(|m| m.order.id == order_id) {
                continue;
            }
            if let Some(order) = self.store.get_order(order_id).await? {
                matches.push(LookupMatch {
                    order,
                    matched_by: kind,
                });
            }
        }
        let orders = self
            .redacted(matches.iter().map(|m| m.order.clone()).collect())
            .await?;
        for (found, order) in matches.iter_mut().zip(orders) {
            found.order = order;
        }
        if matches.is_empty() {
            return Err(AdminError::OrderNotFound(
                "carries this id (order id, store transaction id, original transaction id, \
                 purchase token or store order id)"
                    .to_owned(),
            ));
        }
        Ok(matches)
    }

    /// An order's story: creation, verification, every recorded step, notifications about its
    /// purchase and operators' actions, oldest first.
    #[tracing::instrument(name = "admin.order_history", skip(self), err)]
    pub async fn history(&self, id: OrderId) -> Result<OrderHistory, AdminError> {
        let order = self.order(id).await?;
        let delivery = self.store.delivery(id).await?;
        let store_purchase = self.store.store_purchase(&order).await?;
        let mut events = vec![HistoryEvent {
            at: order.created_at,
            kind: "order.created".to_owned(),
            detail: format!(
                "{} × {} on {}{}",
                order.quantity,
                order.product_id,
                order.platform,
                if order.manual { " (manual)" } else { "" }
            ),
            actor: String::new(),
        }];
        if let Some(purchase) = &store_purchase {
            events.push(HistoryEvent {
                at: purchase.verified_at,
                kind: "purchase.verified".to_owned(),
                detail: format!(
                    "store transaction {} ({}) for user {}",
                    purchase.store_transaction_id, purchase.environment, purchase.user_id
                ),
                actor: "verifier".to_owned(),
            });
            for n in self
                .store
                .notifications_about(&purchase.notification_subjects)
                .await?
            {
                events.push(HistoryEvent {
                    at: n.received_at,
                    kind: "notification.received".to_owned(),
                    detail: format!("{} {} (id {})", n.platform, n.notification_type, n.id),
                    actor: n.platform.as_str().to_owned(),
                });
                if let Some(at) = n.processed_at {
                    events.push(HistoryEvent {
                        at,
                        kind: "notification.applied".to_owned(),
                        detail: format!(
                            "{}: {}",
                            n.notification_type,
                            n.outcome.as_deref().unwrap_or("processed")
                        ),
                        actor: "notifications".to_owned(),
                    });
                }
            }
        }
        events.extend(self.store.order_events(id).await?);
        events.sort_by_key(|e| e.at);
        // Events record the charge id, which for Google is often the purchase token.
        let tokens = self.store.purchase_tokens(&[id]).await?;
        for token in &tokens {
            let masked = mask_token(token);
            for event in &mut events {
                if event.detail.contains(token.as_str()) {
                    event.detail = event.detail.replace(token.as_str(), &masked);
                }
            }
        }
        let mut store_purchase = store_purchase;
        if let Some(purchase) = &mut store_purchase
            && tokens.contains(&purchase.store_transaction_id)
        {
            purchase.store_transaction_id = mask_token(&purchase.store_transaction_id);
        }
        let order = self.redacted(vec![order]).await?.remove(0);
        Ok(OrderHistory {
            order,
            delivery,
            events,
            store_purchase,
        })
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

    /// Puts a DEAD order (or a paid one stuck in PAID/DELIVERING) back in the queue with the
    /// same grant id and delivers it now. A DEAD order keeps its attempt counter (it is the
    /// fencing token) but starts a fresh series of `delivery.max_attempts` attempts, counted
    /// from `attempts_before_redelivery` (the audit entry says from which attempt).
    #[tracing::instrument(name = "admin.redeliver", skip(self, who), fields(operator = %who.operator), err)]
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

    /// Manual compensation (补单): force-grants an existing order, or grants a product to a user
    /// through a new manual order. The same idempotency key returns the first outcome.
    #[tracing::instrument(name = "admin.compensate", skip_all, fields(operator = %command.who.operator), err)]
    pub async fn compensate(&self, command: Compensate) -> Result<CompensationOutcome, AdminError> {
        let fingerprint = command.grant.fingerprint();
        if let Some(prior) = self
            .store
            .prior_compensation(&command.idempotency_key)
            .await?
        {
            return self.repeated(&command, &fingerprint, prior).await;
        }
        let target = match &command.grant {
            CompensationGrant::Order(id) => {
                let order = self.order(*id).await?;
                // CREATED: paid at the store but never verified; DEAD: attempts exhausted;
                // PAID/DELIVERING: stuck. Delivered orders were granted already, and refunded,
                // revoked or rejected ones keep their grant id out of reach: grant a product.
                let grantable = order.state.awaits_delivery()
                    || (matches!(order.state, OrderState::Created | OrderState::Dead)
                        && order.state.can_become(OrderState::Paid));
                if !grantable {
                    return Err(AdminError::WrongState {
                        reason: "ORDER_NOT_GRANTABLE",
                        order: *id,
                        state: order.state,
                        hint: "only CREATED, PAID, DELIVERING or DEAD orders can be force-granted; \
                               compensate with app_id, user_id and product_id instead",
                    });
                }
                CompensationTarget::ExistingOrder {
                    id: *id,
                    from: order.state,
                    attempt: order.attempt,
                }
            }
            CompensationGrant::Product {
                app_id,
                user_id,
                product_id,
                platform,
                quantity,
            } => {
                let app = self
                    .catalog
                    .app(app_id)
                    .ok_or_else(|| AdminError::UnknownApp(app_id.clone()))?;
                let product =
                    app.product(product_id)
                        .ok_or_else(|| AdminError::UnknownProduct {
                            app: app_id.clone(),
                            product: product_id.clone(),
                        })?;
                if *quantity > product.max_quantity {
                    return Err(invalid(
                        "quantity",
                        format!("must be at most {} for this product", product.max_quantity),
                    ));
                }
                CompensationTarget::NewOrder(NewOrder {
                    id: OrderId::new(),
                    app_id: app_id.clone(),
                    user_id: user_id.clone(),
                    product_id: product_id.clone(),
                    platform: *platform,
                    quantity: *quantity,
                    product_kind: product.kind,
                    expected_price: None,
                    metadata: BTreeMap::from([(
                        "compensation_key".to_owned(),
                        command.idempotency_key.clone(),
                    )]),
                    idempotency_key: None,
                    manual: true,
                })
            }
        };
        let target_order = match &target {
            CompensationTarget::ExistingOrder { id, .. } => *id,
            CompensationTarget::NewOrder(new) => new.id,
        };
        let mut audit = command
            .who
            .audit("compensate", Some(target_order), fingerprint.clone());
        audit.idempotency_key = Some(command.idempotency_key.clone());
        match self.store.record_compensation(&target, &audit).await? {
            CompensationRecord::Recorded(order) => {
                tracing::info!(order_id = %order.id, "compensation recorded");
                self.deliver_now(order.id).await;
                let order = self.order(order.id).await?;
                Ok(CompensationOutcome {
                    result: self.with_delivery(order).await?,
                    duplicate: false,
                })
            }
            // A concurrent call with the same key won.
            CompensationRecord::KeyTaken(prior) => {
                self.repeated(&command, &fingerprint, prior).await
            }
            CompensationRecord::OrderChanged => Err(AdminError::OrderChanged(target_order)),
        }
    }

    /// The answer to a repeated key: the first outcome, as it stands now. The order is nudged
    /// once more in case the first call stopped between its commit and its delivery.
    async fn repeated(
        &self,
        command: &Compensate,
        fingerprint: &serde_json::Value,
        prior: PriorCompensation,
    ) -> Result<CompensationOutcome, AdminError> {
        if &prior.detail != fingerprint {
            return Err(AdminError::IdempotencyKeyReused(
                command.idempotency_key.clone(),
            ));
        }
        let order = self.order(prior.order_id).await?;
        if order.state.awaits_delivery() {
            self.deliver_now(order.id).await;
        }
        let order = self.order(prior.order_id).await?;
        Ok(CompensationOutcome {
            result: self.with_delivery(order).await?,
            duplicate: true,
        })
    }

    /// Takes back the items of an order (RevokeItems with a stable revoke id) and marks it
    /// REVOKED. The request is audited before it is carried out, so an attempt that fails half
    /// way is on record; an order already revoked or refunded is returned as it is.
    #[tracing::instrument(name = "admin.revoke", skip(self, who), fields(operator = %who.operator), err)]
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

    /// Stored notifications, newest first.
    #[tracing::instrument(name = "admin.list_notifications", skip_all, err)]
    pub async fn list_notifications(
        &self,
        platform: Option<Platform>,
        only_unprocessed: bool,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<InboxEntry>, AdminError> {
        let limit = page_size.clamp(1, MAX_PAGE_SIZE);
        let after = PageToken::decode("notifications", page_token)?.map(|t| t.position);
        let mut items = self
            .store
            .list_notifications(platform, only_unprocessed, after, limit + 1)
            .await?;
        let mut next_page_token = String::new();
        if items.len() > limit as usize {
            items.truncate(limit as usize);
            let last = &items[items.len() - 1];
            let id = uuid::Uuid::parse_str(&last.id)
                .map_err(|e| StorageError::Corrupt(format!("notifications.id: {e}")))?;
            next_page_token = PageToken {
                segment: 0,
                position: KeysetPosition {
                    at: last.received_at,
                    id,
                },
            }
            .encode("notifications");
        }
        Ok(Page {
            items,
            next_page_token,
        })
    }

    /// Makes a stored notification due again; the inbox processor handles it as if it had just
    /// arrived. Processing is idempotent (a purchase already recorded is not recorded again, a
    /// revoked order is not revoked twice), so a replay repairs and never doubles.
    #[tracing::instrument(name = "admin.replay_notification", skip(self, operator, reason), err)]
    pub async fn replay_notification(
        &self,
        id: &str,
        operator: &str,
        reason: &str,
    ) -> Result<InboxEntry, AdminError> {
        let operator = Accountability::parse_operator(operator)?;
        // The reason is optional here: replaying changes no order by itself.
        let reason = match reason.trim() {
            "" => "replay requested".to_owned(),
            given => Accountability::parse_reason(given)?,
        };
        let id = id.trim();
        if id.is_empty() {
            return Err(invalid("id", "is required (from ListNotifications)"));
        }
        let uuid = uuid::Uuid::parse_str(id)
            .map_err(|_| invalid("id", "must be a stored notification id (UUID)"))?;
        let audit = AuditEntry {
            operator,
            action: "replay_notification",
            order_id: None,
            reason,
            detail: json!({ "notification": uuid.to_string() }),
            idempotency_key: None,
        };
        self.store
            .replay_notification(&uuid.to_string(), &audit)
            .await?
            .ok_or_else(|| AdminError::NotificationNotFound(uuid.to_string()))
    }

    /// Counts and ages that show lost orders.
    #[tracing::instrument(name = "admin.stats", skip_all, err)]
    pub async fn stats(&self, app: Option<&AppId>) -> Result<AdminStats, AdminError> {
        let counts = self.store.order_stats(app).await?;
        let now = now();
        let age = |since: Option<DateTime<Utc>>| {
            since.map_or(chrono::Duration::zero(), |at| {
                (now - at).max(chrono::Duration::zero())
            })
        };
        let dead_orders = counts
            .by_state
            .iter()
            .filter(|(state, _, _)| *state == OrderState::Dead)
            .map(|(_, _, n)| n)
            .sum();
        Ok(AdminStats {
            oldest_undelivered_age: age(counts.oldest_undelivered_since),
            oldest_unconfirmed_age: age(counts.oldest_unconfirmed_since),
            dead_orders,
            counts,
        })
    }
}

/// Shows the start and end of a token, enough to tell two apart, never enough to use one.
pub fn mask_token(token: &str) -> String {
    let chars: Vec<char> = token.chars().collect();
    if chars.len() <= 12 {
        return "…".to_owned();
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_foreign_text() {
        let token = PageToken {
            segment: 1,
            position: KeysetPosition {
                at: DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap(),
                id: uuid::Uuid::now_v7(),
            },
        };
        let text = token.encode("orders");
        assert_eq!(PageToken::decode("orders", &text).unwrap(), Some(token));
        assert!(PageToken::decode("notifications", &text).is_err());
        assert!(PageToken::decode("orders", "zz").is_err());
        assert!(PageToken::decode("orders", &hex::encode("orders:9:1:x")).is_err());
        assert_eq!(PageToken::decode("orders", "").unwrap(), None);
    }

    #[test]
    fn every_state_has_exactly_one_segment() {
        for state in OrderState::ALL {
            let holding = SEGMENTS
                .iter()
                .filter(|(states, _)| states.contains(state))
                .count();
            assert_eq!(holding, 1, "{state}");
        }
    }

    #[test]
    fn operator_and_reason_are_required() {
        assert!(Accountability::parse("alice", "ticket 42").is_ok());
        for (operator, reason, field) in [
            ("", "ticket", "operator"),
            ("  ", "ticket", "operator"),
            ("alice", "", "reason"),
            ("al\nice", "ticket", "operator"),
        ] {
            match Accountability::parse(operator, reason) {
                Err(AdminError::InvalidArgument { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{operator:?}/{reason:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(7).unwrap(), 7);
        assert!(page_size(-1).is_err());
        assert!(page_size(501).is_err());
    }

    #[test]
    fn masked_tokens_keep_neither_middle_nor_short_values() {
        let token = "abcdefghijklmnopqrstuvwxyz.AO-J1Oz";
        let masked = mask_token(token);
        assert_eq!(masked, "abcdef…J1Oz");
        assert_eq!(mask_token("short"), "…");
    }
}
