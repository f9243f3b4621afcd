//! Reading orders: the stuck-first listing, lookup by any id, and an order's history.

use super::paging::{MAX_PAGE_SIZE, Page, PageToken, SEGMENTS, segment_of};
use super::{AdminError, Administration, invalid, mask_token};
use crate::admin::{
    AdminStore, HistoryEvent, IdKind, KeysetPosition, OrderFilter, StorePurchaseView,
};
use crate::delivery::{DeliveryRecord, DeliveryStore};
use crate::ids::OrderId;
use crate::order::{Order, OrderState};
use crate::ports::OrderRepository;

const MAX_LOOKUP_ID_LEN: usize = 1_024;

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

impl<S: AdminStore + OrderRepository + DeliveryStore> Administration<S> {
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
}
