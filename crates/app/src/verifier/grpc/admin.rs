//! `iap.v1.AdminService`: wire → operators' use case → wire. Errors go through
//! `iap_runtime::status`; purchase tokens never leave in a response.

use std::sync::Arc;

use chrono::Utc;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use iap_domain::admin::{HistoryEvent, InboxEntry, OrderFilter, StorePurchaseView};
use iap_domain::unclaimed::{UnclaimedFilter, UnclaimedPurchase, UnclaimedState};
use iap_domain::usecases::admin::{
    Accountability, AdminError, Administration, Compensate, CompensationGrant, ListOrders,
    OrderAndDelivery, mask_token, page_size, parse_order_id,
};
use iap_domain::usecases::unclaimed::{
    ClaimUnclaimed, UnclaimedError, UnclaimedPurchases, parse_unclaimed_id,
};
use iap_domain::{AppId, Platform, ProductId, UserId};
use iap_proto::v1 as pb;
use iap_proto::v1::admin_service_server::{AdminService, AdminServiceServer};
use iap_runtime::auth::BearerCheck;
use iap_runtime::status::IntoStatus;
use iap_runtime::wire;
use iap_storage::Storage;

/// The handler: the use case behind the admin bearer check.
#[derive(Debug, Clone)]
pub(crate) struct AdminHandler {
    admin: Arc<Administration<Storage>>,
    unclaimed: Arc<UnclaimedPurchases<Storage>>,
}

pub(crate) fn admin_service(
    admin: Arc<Administration<Storage>>,
    unclaimed: Arc<UnclaimedPurchases<Storage>>,
    check: BearerCheck,
) -> InterceptedService<AdminServiceServer<AdminHandler>, BearerCheck> {
    AdminServiceServer::with_interceptor(AdminHandler { admin, unclaimed }, check)
}

fn status(e: AdminError) -> Status {
    e.into_status()
}

fn unclaimed_status(e: UnclaimedError) -> Status {
    e.into_status()
}

fn unclaimed(p: UnclaimedPurchase) -> pb::UnclaimedPurchase {
    let state = match p.state() {
        UnclaimedState::Open => pb::UnclaimedPurchaseState::Open,
        UnclaimedState::Claimed => pb::UnclaimedPurchaseState::Claimed,
        UnclaimedState::Refunded => pb::UnclaimedPurchaseState::Refunded,
    };
    let (claimed_user_id, claimed_at, claimed_order_id, claimed_by_operator, claim_reason) =
        match p.claim {
            Some(c) => (
                c.user_id.to_string(),
                Some(wire::timestamp(c.claimed_at)),
                c.order_id.to_string(),
                c.operator.unwrap_or_default(),
                c.reason.unwrap_or_default(),
            ),
            None => Default::default(),
        };
    pb::UnclaimedPurchase {
        id: p.id.to_string(),
        platform: wire::platform(p.platform).into(),
        store_transaction_id: p.store_transaction_id,
        original_transaction_id: p.original_transaction_id.unwrap_or_default(),
        store_order_id: p.store_order_id.unwrap_or_default(),
        app_id: p.app_id.to_string(),
        product_id: p.product_id.to_string(),
        quantity: i32::try_from(p.quantity).unwrap_or(i32::MAX),
        environment: wire::environment(p.environment).into(),
        purchased_at: p.purchased_at.map(wire::timestamp),
        source: p.source,
        first_seen_at: Some(wire::timestamp(p.first_seen_at)),
        last_seen_at: Some(wire::timestamp(p.last_seen_at)),
        state: state.into(),
        refunded_at: p.refunded_at.map(wire::timestamp),
        claimed_user_id,
        claimed_at,
        claimed_order_id,
        claimed_by_operator,
        claim_reason,
    }
}

fn optional<T>(
    raw: String,
    parse: impl FnOnce(String) -> Result<T, iap_domain::IdError>,
) -> Result<Option<T>, Status> {
    if raw.is_empty() {
        return Ok(None);
    }
    parse(raw)
        .map(Some)
        .map_err(|e| status(AdminError::from(e)))
}

fn platform_filter(raw: i32) -> Result<Option<Platform>, Status> {
    if raw == 0 {
        return Ok(None);
    }
    wire::platform_from_wire(raw).map(Some).ok_or_else(|| {
        status(AdminError::InvalidArgument {
            field: "platform",
            problem: "is not a known platform".into(),
        })
    })
}

fn reply(result: &OrderAndDelivery) -> (Option<pb::Order>, Option<pb::Delivery>) {
    (
        Some(wire::order(&result.order)),
        result.delivery.as_ref().map(wire::delivery),
    )
}

fn event(e: HistoryEvent) -> pb::OrderEvent {
    pb::OrderEvent {
        at: Some(wire::timestamp(e.at)),
        kind: e.kind,
        detail: e.detail,
        actor: e.actor,
    }
}

fn store_transaction(p: StorePurchaseView) -> pb::StoreTransaction {
    pb::StoreTransaction {
        platform: wire::platform(p.platform).into(),
        store_transaction_id: p.store_transaction_id,
        original_transaction_id: p.original_transaction_id.unwrap_or_default(),
        store_order_id: p.store_order_id.unwrap_or_default(),
        product_id: p.product_id,
        quantity: i32::try_from(p.quantity).unwrap_or(i32::MAX),
        environment: wire::environment(p.environment).into(),
        purchased_at: p.purchased_at.map(wire::timestamp),
        expires_at: p.expires_at.map(wire::timestamp),
        revoked_at: p.revoked_at.map(wire::timestamp),
        price: p.price.as_ref().map(wire::money),
        user_id: p.user_id,
    }
}

fn notification(n: InboxEntry) -> pb::StoredNotification {
    // Google and Huawei file notifications under the purchase token: shown masked.
    let subject = match (n.platform, n.subject) {
        (_, None) => String::new(),
        (Platform::Apple, Some(s)) => s,
        (Platform::Google | Platform::Huawei, Some(s)) => mask_token(&s),
    };
    pb::StoredNotification {
        id: n.id,
        platform: wire::platform(n.platform).into(),
        notification_id: n.notification_id,
        notification_type: n.notification_type,
        received_at: Some(wire::timestamp(n.received_at)),
        processed_at: n.processed_at.map(wire::timestamp),
        attempts: i32::try_from(n.attempts).unwrap_or(i32::MAX),
        last_error: n.last_error.unwrap_or_default(),
        subject,
        rejected_reason: n.rejected_reason.unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl AdminService for AdminHandler {
    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let r = request.into_inner();
        let mut states = Vec::with_capacity(r.states.len());
        for raw in r.states {
            states.push(wire::order_state_from_wire(raw).ok_or_else(|| {
                status(AdminError::InvalidArgument {
                    field: "states",
                    problem: "holds an unknown or unspecified state".into(),
                })
            })?);
        }
        if r.min_age_seconds < 0 {
            return Err(status(AdminError::InvalidArgument {
                field: "min_age_seconds",
                problem: "must not be negative".into(),
            }));
        }
        let updated_before = (r.min_age_seconds > 0)
            .then(|| Utc::now() - chrono::Duration::seconds(r.min_age_seconds));
        let command = ListOrders {
            filter: OrderFilter {
                states,
                platform: platform_filter(r.platform)?,
                app_id: optional(r.app_id, AppId::parse)?,
                user_id: optional(r.user_id, UserId::parse)?,
                updated_before,
            },
            page_size: page_size(r.page_size).map_err(status)?,
            page_token: r.page_token,
        };
        let page = self.admin.list_orders(command).await.map_err(status)?;
        Ok(Response::new(pb::ListOrdersResponse {
            orders: page.items.iter().map(wire::order).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn lookup_order(
        &self,
        request: Request<pb::LookupOrderRequest>,
    ) -> Result<Response<pb::LookupOrderResponse>, Status> {
        let id = request.into_inner().id;
        let matches = match self.admin.lookup(&id).await {
            Ok(matches) => matches,
            // No order carries it; a kept unclaimed purchase may.
            Err(AdminError::OrderNotFound(detail)) => {
                let kept = self.unclaimed.lookup(&id).await.map_err(unclaimed_status)?;
                if kept.is_empty() {
                    return Err(status(AdminError::OrderNotFound(detail)));
                }
                return Ok(Response::new(pb::LookupOrderResponse {
                    matches: Vec::new(),
                    unclaimed: kept.into_iter().map(unclaimed).collect(),
                }));
            }
            Err(e) => return Err(status(e)),
        };
        let kept = self.unclaimed.lookup(&id).await.map_err(unclaimed_status)?;
        Ok(Response::new(pb::LookupOrderResponse {
            matches: matches
                .into_iter()
                .map(|m| pb::LookupMatch {
                    order: Some(wire::order(&m.order)),
                    matched_by: m.matched_by.as_str().to_owned(),
                })
                .collect(),
            unclaimed: kept.into_iter().map(unclaimed).collect(),
        }))
    }

    async fn get_order_history(
        &self,
        request: Request<pb::GetOrderHistoryRequest>,
    ) -> Result<Response<pb::GetOrderHistoryResponse>, Status> {
        let id = parse_order_id(&request.into_inner().order_id).map_err(status)?;
        let history = self.admin.history(id).await.map_err(status)?;
        Ok(Response::new(pb::GetOrderHistoryResponse {
            order: Some(wire::order(&history.order)),
            delivery: history.delivery.as_ref().map(wire::delivery),
            events: history.events.into_iter().map(event).collect(),
            store_transaction: history.store_purchase.map(store_transaction),
        }))
    }

    async fn redeliver_order(
        &self,
        request: Request<pb::RedeliverOrderRequest>,
    ) -> Result<Response<pb::RedeliverOrderResponse>, Status> {
        let r = request.into_inner();
        let who = Accountability::parse(&r.operator, &r.reason).map_err(status)?;
        let id = parse_order_id(&r.order_id).map_err(status)?;
        let (order, delivery) = reply(&self.admin.redeliver(id, &who).await.map_err(status)?);
        Ok(Response::new(pb::RedeliverOrderResponse {
            order,
            delivery,
        }))
    }

    async fn compensate_order(
        &self,
        request: Request<pb::CompensateOrderRequest>,
    ) -> Result<Response<pb::CompensateOrderResponse>, Status> {
        let r = request.into_inner();
        let who = Accountability::parse(&r.operator, &r.reason).map_err(status)?;
        let names_product =
            !(r.app_id.is_empty() && r.user_id.is_empty() && r.product_id.is_empty());
        let grant = match (r.order_id.is_empty(), names_product) {
            (false, true) => {
                return Err(status(AdminError::InvalidArgument {
                    field: "order_id",
                    problem: "give either order_id or app_id/user_id/product_id, not both".into(),
                }));
            }
            (false, false) => {
                CompensationGrant::Order(parse_order_id(&r.order_id).map_err(status)?)
            }
            (true, _) => {
                let platform = wire::platform_from_wire(r.platform).ok_or_else(|| {
                    status(AdminError::InvalidArgument {
                        field: "platform",
                        problem: "must be PLATFORM_APPLE, PLATFORM_GOOGLE or PLATFORM_HUAWEI \
                                  (the store the order is filed under)"
                            .into(),
                    })
                })?;
                let quantity = match r.quantity {
                    0 => 1,
                    n => u32::try_from(n).map_err(|_| {
                        status(AdminError::InvalidArgument {
                            field: "quantity",
                            problem: "must not be negative".into(),
                        })
                    })?,
                };
                CompensationGrant::Product {
                    app_id: AppId::parse(r.app_id).map_err(|e| status(e.into()))?,
                    user_id: UserId::parse(r.user_id).map_err(|e| status(e.into()))?,
                    product_id: ProductId::parse(r.product_id).map_err(|e| status(e.into()))?,
                    platform,
                    quantity,
                }
            }
        };
        let command = Compensate::parse(who, &r.idempotency_key, grant).map_err(status)?;
        let outcome = self.admin.compensate(command).await.map_err(status)?;
        let (order, delivery) = reply(&outcome.result);
        Ok(Response::new(pb::CompensateOrderResponse {
            order,
            delivery,
            duplicate: outcome.duplicate,
        }))
    }

    async fn revoke_order(
        &self,
        request: Request<pb::RevokeOrderRequest>,
    ) -> Result<Response<pb::RevokeOrderResponse>, Status> {
        let r = request.into_inner();
        let who = Accountability::parse(&r.operator, &r.reason).map_err(status)?;
        let id = parse_order_id(&r.order_id).map_err(status)?;
        let (order, delivery) = reply(&self.admin.revoke(id, &who).await.map_err(status)?);
        Ok(Response::new(pb::RevokeOrderResponse { order, delivery }))
    }

    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        let r = request.into_inner();
        let page = self
            .admin
            .list_notifications(
                platform_filter(r.platform)?,
                r.only_unprocessed,
                page_size(r.page_size).map_err(status)?,
                &r.page_token,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListNotificationsResponse {
            notifications: page.items.into_iter().map(notification).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn replay_notification(
        &self,
        request: Request<pb::ReplayNotificationRequest>,
    ) -> Result<Response<pb::ReplayNotificationResponse>, Status> {
        let r = request.into_inner();
        let entry = self
            .admin
            .replay_notification(&r.id, &r.operator, &r.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ReplayNotificationResponse {
            notification: Some(notification(entry)),
        }))
    }

    async fn get_stats(
        &self,
        request: Request<pb::GetStatsRequest>,
    ) -> Result<Response<pb::GetStatsResponse>, Status> {
        let app = optional(request.into_inner().app_id, AppId::parse)?;
        let stats = self.admin.stats(app.as_ref()).await.map_err(status)?;
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        Ok(Response::new(pb::GetStatsResponse {
            orders_by_state: stats
                .counts
                .by_state
                .iter()
                .map(|(state, platform, n)| pb::StateCount {
                    state: wire::order_state(*state).into(),
                    platform: wire::platform(*platform).into(),
                    count: count(*n),
                })
                .collect(),
            oldest_undelivered_age_seconds: stats.oldest_undelivered_age.num_seconds(),
            oldest_unconfirmed_age_seconds: stats.oldest_unconfirmed_age.num_seconds(),
            dead_orders: count(stats.dead_orders),
            unprocessed_notifications: count(stats.counts.unprocessed_notifications),
            active_subscriptions: count(stats.counts.active_subscriptions),
        }))
    }
    async fn list_unclaimed_purchases(
        &self,
        request: Request<pb::ListUnclaimedPurchasesRequest>,
    ) -> Result<Response<pb::ListUnclaimedPurchasesResponse>, Status> {
        let r = request.into_inner();
        let filter = UnclaimedFilter {
            platform: platform_filter(r.platform)?,
            app_id: optional(r.app_id, AppId::parse)?,
            include_settled: r.include_settled,
        };
        let page = self
            .unclaimed
            .list(
                filter,
                page_size(r.page_size).map_err(status)?,
                &r.page_token,
            )
            .await
            .map_err(unclaimed_status)?;
        Ok(Response::new(pb::ListUnclaimedPurchasesResponse {
            purchases: page.items.into_iter().map(unclaimed).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn claim_unclaimed_purchase(
        &self,
        request: Request<pb::ClaimUnclaimedPurchaseRequest>,
    ) -> Result<Response<pb::ClaimUnclaimedPurchaseResponse>, Status> {
        let r = request.into_inner();
        let who = Accountability::parse(&r.operator, &r.reason).map_err(status)?;
        let command = ClaimUnclaimed {
            id: parse_unclaimed_id(&r.id).map_err(unclaimed_status)?,
            user_id: UserId::parse(r.user_id).map_err(|e| status(e.into()))?,
            who,
        };
        let claimed = self
            .unclaimed
            .claim(command)
            .await
            .map_err(unclaimed_status)?;
        Ok(Response::new(pb::ClaimUnclaimedPurchaseResponse {
            purchase: Some(unclaimed(claimed.purchase)),
            order: Some(wire::order(&claimed.order)),
        }))
    }
}
