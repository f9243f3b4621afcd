//! Manual compensation (补单): force-grant an existing order or grant a product through a new
//! manual order, once per idempotency key.

use std::collections::BTreeMap;

use serde_json::json;

use super::{Accountability, AdminError, Administration, OrderAndDelivery, invalid};
use crate::admin::{AdminStore, CompensationRecord, CompensationTarget, PriorCompensation};
use crate::delivery::DeliveryStore;
use crate::ids::{AppId, OrderId, ProductId, UserId};
use crate::order::{NewOrder, OrderState, Platform};
use crate::ports::OrderRepository;

const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

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

impl<S: AdminStore + OrderRepository + DeliveryStore> Administration<S> {
    /// Manual compensation (补单): force-grants an existing order, or grants a product to a user
    /// through a new manual order. The same idempotency key returns the first outcome.
    #[tracing::instrument(name = "admin.compensate", skip_all, fields(operator = %command.who.operator()), err)]
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
}
