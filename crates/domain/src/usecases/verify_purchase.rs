//! VerifyPurchase: ask the store whether a purchase is real and paid, apply the app's policy
//! (sandbox, replay), bind it to one of our orders, and commit PAID — so that nothing external
//! happens before the commit and the client learns whether to finish the store transaction.

use std::collections::HashMap;
use std::sync::Arc;

use crate::catalog::{AppPolicy, Catalog, ProductPolicy};
use crate::ids::{AppId, OrderId, ProductId, UserId};
use chrono::Utc;

use crate::order::{
    BindingReason, Environment, NewOrder, Order, OrderState, Platform, ProductKind, RejectReason,
};
use crate::ports::{
    MarkOutcome, OrderRepository, PaymentLedger, PaymentTarget, PaymentToRecord, PurchaseVerifier,
    RecordOutcome, RecordedPurchase, RefundMark, StorageError, StoreError, VerifyContext,
};
use crate::purchase::{PurchaseProof, PurchaseStatus, VerifiedPurchase};
use crate::subscriptions::{
    NewSubscription, SubscriptionRef, SubscriptionSnapshot, SubscriptionState, next_check,
    subscription_key,
};

/// A VerifyPurchase request.
#[derive(Debug, Clone)]
pub struct VerifyPurchase {
    /// App.
    pub app_id: AppId,
    /// The player redeeming the purchase.
    pub user_id: UserId,
    /// Our order the caller believes this pays, if it knows.
    pub order_id: Option<OrderId>,
    /// The store's proof.
    pub proof: PurchaseProof,
}

/// Who redeems a purchase: the caller of VerifyPurchase, or the owner of a subscription whose
/// renewal the store reported.
#[derive(Debug, Clone)]
struct Buyer {
    app_id: AppId,
    user_id: UserId,
    order_id: Option<OrderId>,
}

/// A purchase accepted and recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The paid order.
    pub order: Order,
    /// The client may finish/consume the store transaction now (the payment is committed).
    pub finish_transaction: bool,
    /// This store purchase had been recorded before (a retry): nothing new was written.
    pub already_recorded: bool,
    /// A sandbox or test purchase (never revenue).
    pub sandbox: bool,
    /// How the purchase was bound to the order.
    pub binding_reason: BindingReason,
    /// A free trial taken again by the same user or store account in the same subscription
    /// group (only when the app flags repeated trials). Granted anyway: the store charges for
    /// the period after the trial, so refusing would lose a paid order.
    pub repeat_trial: bool,
}

/// Why VerifyPurchase did not record a payment.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The app is not configured.
    #[error("unknown app {0}")]
    UnknownApp(AppId),
    /// No verifier is configured for this store and app.
    #[error("{0} purchases are not configured for this deployment")]
    StoreNotConfigured(Platform),
    /// The purchase is refused for good (or until the store changes its mind, for PENDING).
    #[error("{reason} ({code}): {detail}")]
    Rejected {
        /// Machine-readable reason.
        reason: RejectReason,
        /// Finer machine-readable cause.
        code: &'static str,
        /// Human detail, without secrets.
        detail: String,
    },
    /// The store could not answer; retry later.
    #[error("store unavailable: {detail}")]
    StoreUnavailable {
        /// Human detail.
        detail: String,
        /// The store's advice.
        retry_after: Option<std::time::Duration>,
    },
    /// Our credentials or keys for the store are wrong.
    #[error("store misconfigured: {0}")]
    StoreMisconfigured(String),
    /// A store identifier in the proof is outside its store's format; nothing was asked or
    /// written.
    #[error(transparent)]
    InvalidIdentifier(#[from] crate::store_ids::StoreIdError),
    /// Storage failed; nothing was committed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl VerifyError {
    fn rejected(reason: RejectReason, code: &'static str, detail: impl Into<String>) -> Self {
        VerifyError::Rejected {
            reason,
            code,
            detail: detail.into(),
        }
    }

    /// Whether the client may finish the store transaction after this error.
    pub fn finish_transaction(&self) -> bool {
        match self {
            VerifyError::Rejected { reason, .. } => reason.finishes_transaction(),
            _ => false,
        }
    }
}

impl From<StoreError> for VerifyError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Rejected {
                reason,
                code,
                detail,
            } => VerifyError::Rejected {
                reason,
                code,
                detail,
            },
            StoreError::Unavailable {
                detail,
                retry_after,
            } => VerifyError::StoreUnavailable {
                detail,
                retry_after,
            },
            StoreError::Misconfigured(detail) => VerifyError::StoreMisconfigured(detail),
        }
    }
}

/// The verification use case, over a store of orders and payments.
pub struct PurchaseVerification<S> {
    catalog: Arc<Catalog>,
    verifiers: HashMap<Platform, Arc<dyn PurchaseVerifier>>,
    store: S,
}

impl<S> std::fmt::Debug for PurchaseVerification<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PurchaseVerification")
            .field("platforms", &self.verifiers.keys())
            .finish_non_exhaustive()
    }
}

impl<S: OrderRepository + PaymentLedger> PurchaseVerification<S> {
    /// Wires the use case.
    pub fn new(catalog: Arc<Catalog>, verifiers: Vec<Arc<dyn PurchaseVerifier>>, store: S) -> Self {
        let verifiers = verifiers.into_iter().map(|v| (v.platform(), v)).collect();
        Self {
            catalog,
            verifiers,
            store,
        }
    }

    /// The app's policy, the store's verifier, and the context the store check needs (the
    /// catalog entry of the product the proof names, when it names one).
    #[allow(
        clippy::type_complexity,
        reason = "a private triple, named where destructured"
    )]
    fn store_check<'a>(
        &'a self,
        app_id: &'a AppId,
        proof: &PurchaseProof,
    ) -> Result<
        (
            &'a AppPolicy,
            &'a Arc<dyn PurchaseVerifier>,
            VerifyContext<'a>,
        ),
        VerifyError,
    > {
        // Identifiers first: a value outside the store's format reaches no store, no lookup and
        // no log line.
        crate::store_ids::check_proof(proof)?;
        let platform = proof.platform();
        let app = self
            .catalog
            .app(app_id)
            .ok_or_else(|| VerifyError::UnknownApp(app_id.clone()))?;
        let verifier = self
            .verifiers
            .get(&platform)
            .filter(|v| v.serves(app_id))
            .ok_or(VerifyError::StoreNotConfigured(platform))?;
        let product = match proof {
            PurchaseProof::Google { product_id, .. } | PurchaseProof::Huawei { product_id, .. } => {
                Some(
                    app.product(product_id)
                        .ok_or_else(|| unknown_product(product_id))?,
                )
            }
            _ => None,
        };
        Ok((
            app,
            verifier,
            VerifyContext {
                app_id,
                product,
                ledger: Some(&self.store),
            },
        ))
    }

    /// Asks the store about a purchase without recording anything: who it is bound to (the
    /// carried order id) before deciding whose it is. Store notifications use it.
    pub async fn inspect(
        &self,
        app_id: &AppId,
        proof: &PurchaseProof,
    ) -> Result<VerifiedPurchase, VerifyError> {
        let (_, verifier, ctx) = self.store_check(app_id, proof)?;
        Ok(verifier.verify(ctx, proof).await?)
    }

    /// Asks the store for a subscription's current state.
    pub async fn subscription_snapshot(
        &self,
        subscription: &SubscriptionRef,
    ) -> Result<SubscriptionSnapshot, VerifyError> {
        let verifier = self
            .verifiers
            .get(&subscription.platform)
            .filter(|v| v.serves(&subscription.app_id))
            .ok_or(VerifyError::StoreNotConfigured(subscription.platform))?;
        Ok(verifier.subscription(subscription).await?)
    }

    /// Records a period the store reported for a subscription's owner (a renewal found by a
    /// refresh), under the same policy, replay fence and binding as a client's purchase.
    pub async fn record_reported(
        &self,
        app_id: &AppId,
        user_id: &UserId,
        purchase: VerifiedPurchase,
    ) -> Result<Verified, VerifyError> {
        let app = self
            .catalog
            .app(app_id)
            .ok_or_else(|| VerifyError::UnknownApp(app_id.clone()))?;
        let buyer = Buyer {
            app_id: app_id.clone(),
            user_id: user_id.clone(),
            order_id: None,
        };
        self.accept(app, &buyer, purchase).await
    }

    /// The payment of a purchase kept unclaimed, claimed for `user_id` by an operator: the same
    /// store and policy checks as a client's purchase (paid, not expired, in the catalog, sandbox
    /// only for allow-listed users), always a new order for that user, bound as claimed. The
    /// caller commits it with the claim (see [`crate::unclaimed::UnclaimedStore`]); the replay
    /// fence there stops a purchase redeemed meanwhile.
    pub fn claim_payment(
        &self,
        app_id: &AppId,
        user_id: &UserId,
        purchase: VerifiedPurchase,
    ) -> Result<PaymentToRecord, VerifyError> {
        let app = self
            .catalog
            .app(app_id)
            .ok_or_else(|| VerifyError::UnknownApp(app_id.clone()))?;
        let policy = admit(app, user_id, &purchase)?;
        let buyer = Buyer {
            app_id: app_id.clone(),
            user_id: user_id.clone(),
            order_id: None,
        };
        let order = new_order(&buyer, &purchase, policy.kind);
        Ok(payment(
            &buyer,
            policy,
            PaymentTarget::NewOrder(order),
            BindingReason::ClaimedByOperator,
            purchase,
        ))
    }

    /// Verifies and records one purchase. Its span (and so the line logging a rejection) names
    /// the order and, once the store answered, the store's transaction id, masked: enough for
    /// support to tie the line to a ticket, never a usable token.
    #[tracing::instrument(name = "verify_purchase", skip_all, fields(app_id = %cmd.app_id, platform = %cmd.proof.platform(), order_id = cmd.order_id.map(tracing::field::display), store_transaction_id), err(level = "info", Display))]
    pub async fn verify(&self, cmd: VerifyPurchase) -> Result<Verified, VerifyError> {
        let platform = cmd.proof.platform();
        let (app, verifier, ctx) = match self.store_check(&cmd.app_id, &cmd.proof) {
            Ok(checked) => checked,
            Err(e) => {
                if matches!(e, VerifyError::InvalidIdentifier(_)) {
                    count_result(platform, &e);
                }
                return Err(e);
            }
        };
        let purchase = verifier.verify(ctx, &cmd.proof).await;
        let purchase = match purchase {
            Ok(purchase) => purchase,
            Err(e) => {
                let e = VerifyError::from(e);
                count_result(platform, &e);
                return Err(e);
            }
        };
        tracing::Span::current().record(
            "store_transaction_id",
            tracing::field::display(crate::usecases::admin::mask_token(
                &purchase.store_transaction_id,
            )),
        );
        let buyer = Buyer {
            app_id: cmd.app_id.clone(),
            user_id: cmd.user_id.clone(),
            order_id: cmd.order_id,
        };
        let result = self.accept(app, &buyer, purchase).await;
        count_outcome(platform, &result);
        result
    }

    /// Records a purchase the store has just answered for (a store notification asked it to
    /// find whose the purchase is), for `user_id`, under the same policy, replay fence and
    /// binding as [`Self::verify`], without asking the store a second time.
    pub async fn record_inspected(
        &self,
        app_id: &AppId,
        user_id: &UserId,
        purchase: VerifiedPurchase,
    ) -> Result<Verified, VerifyError> {
        let platform = purchase.platform;
        let result = self.record_reported(app_id, user_id, purchase).await;
        count_outcome(platform, &result);
        result
    }

    /// The store itself says this purchase was refunded (Apple's current signed transaction
    /// carries `revocationDate`; a store API answered refunded). Its older proofs still look
    /// paid — the signed transaction the client kept has no revocation — so the refund is
    /// marked under the charge's ids, and a later redemption of any of them is refused even if
    /// the store's refund notification never reaches us. A purchase already redeemed here is
    /// left to the refund notification or reconciliation, which revoke it.
    async fn mark_refunded(&self, purchase: &VerifiedPurchase) -> Result<(), VerifyError> {
        let mut store_keys = vec![purchase.store_transaction_id.clone()];
        store_keys.extend(purchase.store_order_id.clone());
        // A subscription's token names every period: only a one-time token is the charge's.
        if !purchase.kind.is_some_and(ProductKind::is_subscription) {
            store_keys.extend(purchase.purchase_token.clone());
        }
        store_keys.sort();
        store_keys.dedup();
        let mark = RefundMark {
            platform: purchase.platform,
            store_keys,
            revoked: false,
            source: "store verification".into(),
        };
        if let MarkOutcome::Marked = self.store.mark_refund(mark).await? {
            metrics::counter!("iap_refund_marks_total", "store" => purchase.platform.as_str(), "source" => "verification")
                .increment(1);
        }
        Ok(())
    }

    async fn accept(
        &self,
        app: &AppPolicy,
        cmd: &Buyer,
        purchase: VerifiedPurchase,
    ) -> Result<Verified, VerifyError> {
        if let PurchaseStatus::Refunded { .. } = purchase.status {
            self.mark_refunded(&purchase).await?;
        }
        let policy = admit(app, &cmd.user_id, &purchase)?;
        let sandbox = purchase.environment == Environment::Sandbox;

        // The replay fence: a store purchase pays one order, for the first user who redeemed it.
        if let Some(done) = self
            .store
            .find_purchase(purchase.platform, &purchase.store_transaction_id)
            .await?
        {
            return self.replay(app, cmd, done, sandbox).await;
        }
        // A Google one-time purchase recorded before the replay key became Google's order id was
        // keyed by its token (one token names one such purchase; subscription renewals share a
        // token, so they are not looked up this way).
        if purchase.platform == Platform::Google
            && !policy.kind.is_subscription()
            && let Some(token) = purchase
                .purchase_token
                .as_deref()
                .filter(|t| *t != purchase.store_transaction_id)
            && let Some(done) = self.store.find_purchase(Platform::Google, token).await?
        {
            return self.replay(app, cmd, done, sandbox).await;
        }

        // The store's quantity is what was paid, whatever the catalog allows one order to ask
        // for: it is granted, and a quantity above the catalog's limit is counted.
        if purchase.quantity > policy.max_quantity {
            metrics::counter!("iap_paid_quantity_over_max_total", "store" => purchase.platform.as_str())
                .increment(1);
        }
        let Binding {
            target,
            reason: binding_reason,
            owner,
        } = self.bind(app, cmd, &purchase, policy.kind).await?;
        if owner.user_id != cmd.user_id {
            // The owner's own sandbox allowance decides, not the caller's.
            admit(app, &owner.user_id, &purchase)?;
        }
        let finish_withheld = purchase.finish_withheld;
        let payment = payment(&owner, policy, target, binding_reason, purchase);
        let platform = payment.purchase.platform;
        let outcome = match self.store.record_payment(payment.clone()).await? {
            RecordOutcome::OrderNoLongerUnpaid => {
                // Paid by another purchase (or compensated by support) between our read and
                // our write: bound once more, to what the order is now; a payment that still
                // finds no free order gets one of its own rather than being lost.
                let rebound = self.bind(app, cmd, &payment.purchase, policy.kind).await?;
                let (target, binding_reason) = match rebound.target {
                    PaymentTarget::CompensatedOrder { id, top_up } => (
                        PaymentTarget::CompensatedOrder { id, top_up },
                        rebound.reason,
                    ),
                    _ => (
                        PaymentTarget::NewOrder(new_order(&owner, &payment.purchase, policy.kind)),
                        BindingReason::BoundOrderAlreadyPaid,
                    ),
                };
                let retry = PaymentToRecord {
                    target,
                    binding_reason,
                    ..payment.clone()
                };
                match self.store.record_payment(retry).await? {
                    // The compensation was taken by a racing purchase of its own.
                    RecordOutcome::OrderNoLongerUnpaid => {
                        let last = PaymentToRecord {
                            target: PaymentTarget::NewOrder(new_order(
                                &owner,
                                &payment.purchase,
                                policy.kind,
                            )),
                            binding_reason: BindingReason::BoundOrderAlreadyPaid,
                            ..payment
                        };
                        self.store.record_payment(last).await?
                    }
                    outcome => outcome,
                }
            }
            outcome => outcome,
        };
        if owner.user_id != cmd.user_id
            && let RecordOutcome::Recorded { .. } | RecordOutcome::AlreadyRecorded(_) = &outcome
        {
            // Recorded (and delivered) for the user the store's binding names; the caller
            // gets no order of another user, only the word that the purchase is taken care of.
            metrics::counter!("iap_recorded_for_owner_total", "store" => platform.as_str())
                .increment(1);
            return Err(recorded_for_owner(binding_reason));
        }
        match outcome {
            RecordOutcome::Recorded {
                order,
                repeat_trial,
            } => {
                crate::crash_point!("verify::after_commit");
                let repeat_trial = repeat_trial && app.flag_repeat_trials;
                if repeat_trial {
                    metrics::counter!("iap_repeat_trials_total", "store" => order.platform.as_str())
                        .increment(1);
                }
                Ok(Verified {
                    binding_reason: order.binding_reason.unwrap_or(binding_reason),
                    order: *order,
                    finish_transaction: !finish_withheld,
                    already_recorded: false,
                    sandbox,
                    repeat_trial,
                })
            }
            RecordOutcome::AlreadyRecorded(done) => self.replay(app, cmd, done, sandbox).await,
            RecordOutcome::RefundedBeforeRedemption { revoked } => {
                metrics::counter!("iap_refunded_before_redemption_total", "store" => platform.as_str())
                    .increment(1);
                Err(refunded_before_redemption(revoked))
            }
            RecordOutcome::OrderNoLongerUnpaid => Err(VerifyError::Storage(StorageError::Other(
                "a new order cannot be already paid".into(),
            ))),
        }
    }

    /// The same user retrying gets the existing order back; anyone else is refused.
    async fn replay(
        &self,
        app: &AppPolicy,
        cmd: &Buyer,
        done: RecordedPurchase,
        sandbox: bool,
    ) -> Result<Verified, VerifyError> {
        let order_id = done.order_id;
        if done.user_id != cmd.user_id {
            return Err(VerifyError::rejected(
                RejectReason::ReplayedForOtherUser,
                "replayed_for_other_user",
                "this store purchase was already redeemed by another user",
            ));
        }
        let order = self.store.get_order(order_id).await?.ok_or_else(|| {
            StorageError::Corrupt(format!("store purchase points at missing order {order_id}"))
        })?;
        let binding_reason = order.binding_reason.unwrap_or(BindingReason::CallerOrderId);
        Ok(Verified {
            order,
            finish_transaction: true,
            already_recorded: true,
            sandbox,
            binding_reason,
            repeat_trial: done.repeat_trial && app.flag_repeat_trials,
        })
    }

    /// Chooses whose purchase this is and the order it pays: the subscription's owner for a
    /// later period; else the user of the order the purchase carries (the store's binding,
    /// made at purchase time: a player who switched game accounts since still gets it on the
    /// account that paid) and that order when it fits; else the caller, with the caller's order
    /// when it fits, the oldest matching unpaid one, support's compensation, or a new one.
    /// The caller's order id is a hint: one that does not fit the purchase (another user's,
    /// another product's) is passed over, never a reason to lose a paid purchase.
    async fn bind(
        &self,
        app: &AppPolicy,
        cmd: &Buyer,
        purchase: &VerifiedPurchase,
        kind: crate::order::ProductKind,
    ) -> Result<Binding, VerifyError> {
        // A later period of a subscription we know is its owner's renewal, whatever order the
        // purchase carries (Apple repeats the first order's appAccountToken on every renewal).
        if kind == ProductKind::AutoRenewable
            && let Some(owner) = self
                .store
                .find_subscription_owner(purchase.platform, &subscription_key(purchase))
                .await?
        {
            if owner.app_id != cmd.app_id {
                return Err(VerifyError::rejected(
                    RejectReason::ReplayedForOtherUser,
                    "subscription_of_another_app",
                    "this subscription belongs to another app",
                ));
            }
            let owner = Buyer {
                app_id: owner.app_id,
                user_id: owner.user_id,
                order_id: None,
            };
            return Ok(Binding {
                target: PaymentTarget::NewOrder(new_order(&owner, purchase, kind)),
                reason: BindingReason::SubscriptionRenewal,
                owner,
            });
        }
        let carried = match purchase
            .carried_order_id
            .as_deref()
            .and_then(|id| OrderId::parse(id).ok())
        {
            Some(id) => self.store.get_order(id).await?,
            None => None,
        }
        // An order of another app or store is no binding of this purchase.
        .filter(|o| o.app_id == cmd.app_id && o.platform == purchase.platform);
        let owner = match &carried {
            Some(order) if order.user_id != cmd.user_id => {
                tracing::info!(order_id = %order.id, "the purchase carries another user's order: recorded for that user");
                Buyer {
                    app_id: order.app_id.clone(),
                    user_id: order.user_id.clone(),
                    order_id: None,
                }
            }
            _ => cmd.clone(),
        };
        let hinted = match owner.order_id {
            Some(id) if carried.as_ref().is_none_or(|o| o.id != id) => {
                self.store.get_order(id).await?
            }
            _ => None,
        };
        for (candidate, reason) in [
            (carried, BindingReason::PurchaseCarriedOrderId),
            (hinted, BindingReason::CallerOrderId),
        ] {
            let Some(order) = candidate else { continue };
            if order.app_id != owner.app_id
                || order.user_id != owner.user_id
                || order.platform != purchase.platform
                || order.product_id != purchase.product_id
            {
                tracing::info!(order_id = %order.id, binding = %reason, "the order does not fit the purchase (another user, store or product): passed over");
                continue;
            }
            check_price(&order, purchase)?;
            let (target, reason) = if order.state == OrderState::Created {
                (
                    PaymentTarget::ExistingOrder(order.id),
                    paid_as_asked(&order, purchase, reason),
                )
            } else if is_open_compensation(&order) {
                compensated(&owner, &order, purchase, kind)
            } else {
                (
                    PaymentTarget::NewOrder(new_order(&owner, purchase, kind)),
                    BindingReason::BoundOrderAlreadyPaid,
                )
            };
            return Ok(Binding {
                target,
                reason,
                owner,
            });
        }
        let (target, reason) = self.match_open(app, &owner, purchase, kind).await?;
        Ok(Binding {
            target,
            reason,
            owner,
        })
    }

    /// The owner's oldest matching unpaid order, else support's open compensation of the
    /// product, else a new order.
    async fn match_open(
        &self,
        app: &AppPolicy,
        owner: &Buyer,
        purchase: &VerifiedPurchase,
        kind: ProductKind,
    ) -> Result<(PaymentTarget, BindingReason), VerifyError> {
        let unpaid = self
            .store
            .oldest_unpaid_order(
                &owner.app_id,
                &owner.user_id,
                &purchase.product_id,
                purchase.platform,
            )
            .await?;
        // Only a compatible order is matched: one expecting another price is left alone.
        if let Some(order) = unpaid.filter(|o| check_price(o, purchase).is_ok()) {
            return Ok((
                PaymentTarget::ExistingOrder(order.id),
                paid_as_asked(&order, purchase, BindingReason::MatchedUnpaidOrder),
            ));
        }
        // Support may have granted this purchase by hand (补单) while it was lost: the player
        // reported it, the store's proof arrives later without an order id.
        if !kind.is_subscription() && !app.compensation_match_window.is_zero() {
            let since = Utc::now()
                - chrono::Duration::from_std(app.compensation_match_window).unwrap_or_default();
            if let Some(order) = self
                .store
                .open_compensation(
                    &owner.app_id,
                    &owner.user_id,
                    &purchase.product_id,
                    purchase.platform,
                    since,
                )
                .await?
            {
                return Ok(compensated(owner, &order, purchase, kind));
            }
        }
        Ok((
            PaymentTarget::NewOrder(new_order(owner, purchase, kind)),
            BindingReason::CreatedAtVerification,
        ))
    }
}

/// Whose purchase it is and what it pays.
struct Binding {
    target: PaymentTarget,
    reason: BindingReason,
    /// The user the purchase is recorded for: the caller, or the owner the store's binding
    /// names (the user of the carried order, the subscription's owner).
    owner: Buyer,
}

/// The order is paid with the quantity the store was paid for, never its own figure; when they
/// differ, the binding says so.
fn paid_as_asked(
    order: &Order,
    purchase: &VerifiedPurchase,
    reason: BindingReason,
) -> BindingReason {
    if order.quantity == purchase.quantity.max(1) {
        return reason;
    }
    metrics::counter!("iap_paid_quantity_differs_total", "store" => purchase.platform.as_str())
        .increment(1);
    BindingReason::PaidQuantityDiffers
}

/// A grant support made by hand that no store purchase has been recorded against yet.
fn is_open_compensation(order: &Order) -> bool {
    order.manual
        && order.store_transaction_id.is_none()
        && matches!(
            order.state,
            OrderState::Paid
                | OrderState::Delivering
                | OrderState::Delivered
                | OrderState::Confirmed
                | OrderState::Dead
        )
}

/// The purchase is recorded against support's compensation; units paid beyond what it granted
/// go to a new order.
fn compensated(
    cmd: &Buyer,
    order: &Order,
    purchase: &VerifiedPurchase,
    kind: ProductKind,
) -> (PaymentTarget, BindingReason) {
    let paid = purchase.quantity.max(1);
    metrics::counter!("iap_compensations_matched_total", "store" => purchase.platform.as_str())
        .increment(1);
    let top_up = (paid > order.quantity).then(|| NewOrder {
        quantity: paid - order.quantity,
        ..new_order(cmd, purchase, kind)
    });
    let reason = if top_up.is_some() {
        BindingReason::CompensationTopUp
    } else {
        BindingReason::CompensationMatched
    };
    (
        PaymentTarget::CompensatedOrder {
            id: order.id,
            top_up,
        },
        reason,
    )
}

/// The payment to commit for `cmd`'s user: with the trial it uses and, for an auto-renewable
/// subscription's first period, the subscription row to create.
fn payment(
    cmd: &Buyer,
    policy: &ProductPolicy,
    target: PaymentTarget,
    binding_reason: BindingReason,
    purchase: VerifiedPurchase,
) -> PaymentToRecord {
    let trial_group = purchase.is_trial.then(|| {
        policy
            .subscription_group
            .clone()
            .or_else(|| purchase.subscription_group.clone())
            .unwrap_or_else(|| purchase.product_id.to_string())
    });
    let subscription = (policy.kind == ProductKind::AutoRenewable
        && binding_reason != BindingReason::SubscriptionRenewal)
        .then(|| {
            let state = purchase
                .subscription_status
                .map_or(SubscriptionState::Active, SubscriptionState::from);
            NewSubscription {
                key: subscription_key(&purchase),
                state,
                next_check_at: next_check(state, purchase.expires_at, None, Utc::now()),
            }
        });
    PaymentToRecord {
        target,
        purchase,
        app_id: cmd.app_id.clone(),
        user_id: cmd.user_id.clone(),
        binding_reason,
        trial_group,
        subscription,
    }
}

/// The store's word and the app's policy on a purchase, whoever redeems it: a catalog product,
/// paid, not expired, and sandbox only for allow-listed users.
fn admit<'a>(
    app: &'a AppPolicy,
    user_id: &UserId,
    purchase: &VerifiedPurchase,
) -> Result<&'a ProductPolicy, VerifyError> {
    let policy = app
        .product(&purchase.product_id)
        .ok_or_else(|| unknown_product(&purchase.product_id))?;
    match &purchase.status {
        PurchaseStatus::Purchased => {}
        PurchaseStatus::Pending => {
            return Err(VerifyError::rejected(
                RejectReason::Pending,
                "payment_pending",
                "the payment is not complete yet",
            ));
        }
        PurchaseStatus::Cancelled => {
            return Err(VerifyError::rejected(
                RejectReason::NotPaid,
                "cancelled",
                "the purchase was cancelled before payment",
            ));
        }
        PurchaseStatus::Refunded { .. } => {
            return Err(VerifyError::rejected(
                RejectReason::Refunded,
                "refunded",
                "the purchase was refunded or revoked",
            ));
        }
    }
    if purchase
        .expires_at
        .is_some_and(|end| end <= chrono::Utc::now())
    {
        return Err(VerifyError::rejected(
            RejectReason::Expired,
            "subscription_expired",
            "the subscription period has ended",
        ));
    }
    let sandbox = purchase.environment == Environment::Sandbox;
    if sandbox && !app.sandbox.allows(user_id) {
        return Err(VerifyError::rejected(
            RejectReason::SandboxNotAllowed,
            "sandbox_not_allowed",
            "sandbox purchases are not accepted for this user",
        ));
    }
    Ok(policy)
}

/// The price the store charged must be the one the order expected, when both are known
/// (Huawei reports it on every purchase; the game sets it at CreateOrder).
fn check_price(order: &Order, purchase: &VerifiedPurchase) -> Result<(), VerifyError> {
    let (Some(expected), Some(paid)) = (&order.expected_price, &purchase.price) else {
        return Ok(());
    };
    if expected.currency.eq_ignore_ascii_case(&paid.currency)
        && expected.amount_micros == paid.amount_micros
    {
        return Ok(());
    }
    Err(VerifyError::rejected(
        RejectReason::PriceMismatch,
        "price_mismatch",
        format!(
            "order {} expects {} micros {}, the store charged {} micros {}",
            order.id, expected.amount_micros, expected.currency, paid.amount_micros, paid.currency
        ),
    ))
}

/// The store took this purchase back before it reached us: the client may finish it (there is
/// nothing to deliver), and nothing is granted.
fn refunded_before_redemption(revoked: bool) -> VerifyError {
    let what = if revoked { "revoked" } else { "refunded" };
    VerifyError::rejected(
        RejectReason::Refunded,
        "refunded_before_redemption",
        format!("the store {what} this purchase before it was redeemed"),
    )
}

/// A paid purchase recorded for the user the store's binding names, not for the caller: the
/// player switched game accounts since (the carried order is another user's), or the
/// subscription is another user's. Recorded, so the client may finish it.
fn recorded_for_owner(binding: BindingReason) -> VerifyError {
    if binding == BindingReason::SubscriptionRenewal {
        return VerifyError::rejected(
            RejectReason::ReplayedForOtherUser,
            "subscription_of_another_user",
            "this subscription belongs to another user: the period is recorded for its owner",
        );
    }
    VerifyError::rejected(
        RejectReason::OrderMismatch,
        "recorded_for_order_owner",
        "the purchase carries an order of another user: it is recorded and granted to that user",
    )
}

fn unknown_product(product: &ProductId) -> VerifyError {
    VerifyError::rejected(
        RejectReason::UnknownProduct,
        "unknown_product",
        format!("product {product} is not in the catalog"),
    )
}

fn new_order(
    cmd: &Buyer,
    purchase: &VerifiedPurchase,
    kind: crate::order::ProductKind,
) -> NewOrder {
    NewOrder {
        id: OrderId::new(),
        app_id: cmd.app_id.clone(),
        user_id: cmd.user_id.clone(),
        product_id: purchase.product_id.clone(),
        platform: purchase.platform,
        quantity: purchase.quantity.max(1),
        product_kind: kind,
        expected_price: None,
        metadata: Default::default(),
        idempotency_key: None,
        manual: false,
    }
}

/// Counts a verification's outcome in `iap_verifications_total` (and names its order in the
/// current span).
fn count_outcome(platform: Platform, result: &Result<Verified, VerifyError>) {
    match result {
        Ok(v) => {
            tracing::Span::current().record("order_id", tracing::field::display(v.order.id));
            let outcome = if v.already_recorded {
                "already_recorded"
            } else {
                "recorded"
            };
            metrics::counter!("iap_verifications_total", "store" => platform.as_str(), "result" => outcome).increment(1);
        }
        Err(e) => count_result(platform, e),
    }
}

fn count_result(platform: Platform, err: &VerifyError) {
    let result = match err {
        VerifyError::Rejected { reason, .. } => reason.as_str(),
        VerifyError::StoreUnavailable { .. } => "STORE_UNAVAILABLE",
        VerifyError::StoreMisconfigured(_) | VerifyError::StoreNotConfigured(_) => {
            // Our settings refuse purchases that may be real: an alert, not a statistic.
            metrics::counter!("iap_store_misconfigured_total", "store" => platform.as_str())
                .increment(1);
            "STORE_MISCONFIGURED"
        }
        VerifyError::UnknownApp(_) => "UNKNOWN_APP",
        VerifyError::InvalidIdentifier(_) => "IDENTIFIER_INVALID",
        VerifyError::Storage(_) => "STORAGE_ERROR",
    };
    metrics::counter!("iap_verifications_total", "store" => platform.as_str(), "result" => result)
        .increment(1);
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use chrono::Utc;

    use super::*;
    use crate::catalog::{ProductPolicy, SandboxPolicy};
    use crate::order::ProductKind;
    use crate::ports::{CreateOutcome, MarkOutcome, RecordedPurchase, RefundMark};

    /// Orders and payments in memory, with the same conditional-update rules as the database.
    #[derive(Default)]
    struct Memory {
        orders: Mutex<Vec<Order>>,
        purchases: Mutex<Vec<(Platform, String, RecordedPurchase)>>,
        /// (group, user, store account) of every trial taken.
        trials: Mutex<Vec<(String, UserId, Option<String>)>>,
        /// Refund marks: (store, key, revoked).
        marks: Mutex<Vec<(Platform, String, bool)>>,
    }

    #[async_trait]
    impl OrderRepository for Memory {
        async fn create_order(&self, order: NewOrder) -> Result<CreateOutcome, StorageError> {
            let order = order.into_order(Utc::now());
            self.orders.lock().unwrap().push(order.clone());
            Ok(CreateOutcome::Created(order))
        }
        async fn get_order(&self, id: OrderId) -> Result<Option<Order>, StorageError> {
            Ok(self
                .orders
                .lock()
                .unwrap()
                .iter()
                .find(|o| o.id == id)
                .cloned())
        }
        async fn count_unpaid_orders(&self, _: &AppId, _: &UserId) -> Result<u64, StorageError> {
            Ok(0)
        }
    }

    #[async_trait]
    impl PaymentLedger for Memory {
        async fn find_purchase(
            &self,
            platform: Platform,
            id: &str,
        ) -> Result<Option<RecordedPurchase>, StorageError> {
            let purchases = self.purchases.lock().unwrap();
            Ok(purchases
                .iter()
                .find(|(p, i, _)| *p == platform && i == id)
                .map(|(_, _, r)| r.clone()))
        }
        async fn oldest_unpaid_order(
            &self,
            app: &AppId,
            user: &UserId,
            product: &ProductId,
            platform: Platform,
        ) -> Result<Option<Order>, StorageError> {
            let orders = self.orders.lock().unwrap();
            Ok(orders
                .iter()
                .find(|o| {
                    o.state == OrderState::Created
                        && &o.app_id == app
                        && &o.user_id == user
                        && &o.product_id == product
                        && o.platform == platform
                })
                .cloned())
        }
        async fn open_compensation(
            &self,
            app: &AppId,
            user: &UserId,
            product: &ProductId,
            platform: Platform,
            since: chrono::DateTime<Utc>,
        ) -> Result<Option<Order>, StorageError> {
            let orders = self.orders.lock().unwrap();
            Ok(orders
                .iter()
                .find(|o| {
                    super::is_open_compensation(o)
                        && o.created_at >= since
                        && &o.app_id == app
                        && &o.user_id == user
                        && &o.product_id == product
                        && o.platform == platform
                })
                .cloned())
        }
        async fn mark_refund(&self, mark: RefundMark) -> Result<MarkOutcome, StorageError> {
            Ok(self.mark(mark))
        }
        async fn record_payment(&self, p: PaymentToRecord) -> Result<RecordOutcome, StorageError> {
            let mut purchases = self.purchases.lock().unwrap();
            let key = (p.purchase.platform, p.purchase.store_transaction_id.clone());
            let identities = [
                Some(&p.purchase.store_transaction_id),
                p.purchase.purchase_token.as_ref(),
            ];
            if let Some((_, _, revoked)) = self
                .marks
                .lock()
                .unwrap()
                .iter()
                .find(|(pl, k, _)| *pl == p.purchase.platform && identities.contains(&Some(k)))
            {
                return Ok(RecordOutcome::RefundedBeforeRedemption { revoked: *revoked });
            }
            if let Some((_, _, done)) = purchases
                .iter()
                .find(|(pl, id, _)| (*pl, id.clone()) == key)
            {
                return Ok(RecordOutcome::AlreadyRecorded(done.clone()));
            }
            let mut orders = self.orders.lock().unwrap();
            let order = match p.target {
                PaymentTarget::ExistingOrder(id) => {
                    let Some(order) = orders
                        .iter_mut()
                        .find(|o| o.id == id && o.state == OrderState::Created)
                    else {
                        return Ok(RecordOutcome::OrderNoLongerUnpaid);
                    };
                    order.quantity = p.purchase.quantity.max(1);
                    order
                }
                PaymentTarget::NewOrder(new) => {
                    orders.push(new.into_order(Utc::now()));
                    orders.last_mut().unwrap()
                }
                PaymentTarget::CompensatedOrder { id, top_up } => {
                    let Some(order) = orders
                        .iter_mut()
                        .find(|o| o.id == id && super::is_open_compensation(o))
                    else {
                        return Ok(RecordOutcome::OrderNoLongerUnpaid);
                    };
                    order.store_transaction_id = Some(p.purchase.store_transaction_id.clone());
                    match top_up {
                        Some(new) => {
                            orders.push(new.into_order(Utc::now()));
                            orders.last_mut().unwrap()
                        }
                        None => order,
                    }
                }
            };
            if order.state == OrderState::Created {
                order.state = OrderState::Paid;
            }
            order.binding_reason = Some(p.binding_reason);
            order.store_transaction_id = Some(p.purchase.store_transaction_id.clone());
            let mut repeat_trial = false;
            if let Some(group) = p.trial_group {
                let account = p.purchase.store_account_id.clone();
                let mut trials = self.trials.lock().unwrap();
                repeat_trial = trials.iter().any(|(g, u, a)| {
                    *g == group && (*u == p.user_id || (a.is_some() && *a == account))
                });
                trials.push((group, p.user_id.clone(), account));
            }
            purchases.push((
                key.0,
                key.1,
                RecordedPurchase {
                    order_id: order.id,
                    app_id: p.app_id,
                    user_id: p.user_id,
                    repeat_trial,
                },
            ));
            Ok(RecordOutcome::Recorded {
                order: Box::new(order.clone()),
                repeat_trial,
            })
        }
    }

    impl Memory {
        fn mark(&self, mark: RefundMark) -> MarkOutcome {
            let purchases = self.purchases.lock().unwrap();
            if let Some((_, _, done)) = purchases
                .iter()
                .find(|(pl, id, _)| *pl == mark.platform && mark.store_keys.contains(id))
            {
                return MarkOutcome::Redeemed(done.clone());
            }
            let mut marks = self.marks.lock().unwrap();
            for key in mark.store_keys {
                marks.push((mark.platform, key, mark.revoked));
            }
            MarkOutcome::Marked
        }
    }

    struct Fixed(Mutex<Result<VerifiedPurchase, StoreError>>);

    #[async_trait]
    impl PurchaseVerifier for Fixed {
        fn platform(&self) -> Platform {
            Platform::Google
        }
        async fn verify(
            &self,
            _: VerifyContext<'_>,
            _: &PurchaseProof,
        ) -> Result<VerifiedPurchase, StoreError> {
            match &*self.0.lock().unwrap() {
                Ok(p) => Ok(p.clone()),
                Err(StoreError::Unavailable {
                    detail,
                    retry_after,
                }) => Err(StoreError::Unavailable {
                    detail: detail.clone(),
                    retry_after: *retry_after,
                }),
                Err(e) => Err(StoreError::Misconfigured(e.to_string())),
            }
        }
    }

    fn app() -> AppId {
        AppId::parse("com.example.game").unwrap()
    }
    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }
    fn gems() -> ProductId {
        ProductId::parse("gems_100").unwrap()
    }

    fn catalog() -> Arc<Catalog> {
        let policy = ProductPolicy {
            kind: ProductKind::Consumable,
            max_quantity: 10,
            subscription_group: None,
        };
        Arc::new(Catalog::new([AppPolicy {
            app_id: app(),
            products: [(gems(), policy)].into(),
            sandbox: SandboxPolicy {
                allow_all: false,
                allowed_users: HashSet::from([user("qa")]),
            },
            flag_repeat_trials: true,
            max_open_orders_per_user: 0,
            compensation_match_window: std::time::Duration::from_secs(3 * 24 * 3600),
        }]))
    }

    fn purchase(token: &str, carried: Option<OrderId>) -> VerifiedPurchase {
        VerifiedPurchase {
            platform: Platform::Google,
            environment: Environment::Production,
            store_transaction_id: token.to_owned(),
            original_transaction_id: None,
            purchase_token: Some(token.to_owned()),
            store_order_id: Some("GPA.1".into()),
            product_id: gems(),
            quantity: 1,
            status: PurchaseStatus::Purchased,
            purchased_at: None,
            expires_at: None,
            carried_order_id: carried.map(|id| id.to_string()),
            store_account_id: None,
            is_trial: false,
            price: None,
            kind: None,
            linked_purchase_token: None,
            acknowledged: None,
            consumed: None,
            subscription_status: None,
            subscription_group: None,
            raw: serde_json::Value::Null,
            finish_withheld: false,
            latest_receipt: None,
        }
    }

    struct Harness {
        usecase: PurchaseVerification<Arc<Memory>>,
        memory: Arc<Memory>,
        verifier: Arc<Fixed>,
    }

    #[async_trait]
    impl OrderRepository for Arc<Memory> {
        async fn create_order(&self, order: NewOrder) -> Result<CreateOutcome, StorageError> {
            (**self).create_order(order).await
        }
        async fn get_order(&self, id: OrderId) -> Result<Option<Order>, StorageError> {
            (**self).get_order(id).await
        }
        async fn count_unpaid_orders(&self, a: &AppId, u: &UserId) -> Result<u64, StorageError> {
            (**self).count_unpaid_orders(a, u).await
        }
    }

    #[async_trait]
    impl PaymentLedger for Arc<Memory> {
        async fn find_purchase(
            &self,
            p: Platform,
            id: &str,
        ) -> Result<Option<RecordedPurchase>, StorageError> {
            (**self).find_purchase(p, id).await
        }
        async fn oldest_unpaid_order(
            &self,
            a: &AppId,
            u: &UserId,
            pr: &ProductId,
            p: Platform,
        ) -> Result<Option<Order>, StorageError> {
            (**self).oldest_unpaid_order(a, u, pr, p).await
        }
        async fn open_compensation(
            &self,
            a: &AppId,
            u: &UserId,
            pr: &ProductId,
            p: Platform,
            since: chrono::DateTime<Utc>,
        ) -> Result<Option<Order>, StorageError> {
            (**self).open_compensation(a, u, pr, p, since).await
        }
        async fn record_payment(&self, p: PaymentToRecord) -> Result<RecordOutcome, StorageError> {
            (**self).record_payment(p).await
        }
        async fn mark_refund(&self, mark: RefundMark) -> Result<MarkOutcome, StorageError> {
            Ok(self.mark(mark))
        }
    }

    fn harness() -> Harness {
        let memory = Arc::new(Memory::default());
        let verifier = Arc::new(Fixed(Mutex::new(Ok(purchase("tok-1", None)))));
        let usecase = PurchaseVerification::new(catalog(), vec![verifier.clone()], memory.clone());
        Harness {
            usecase,
            memory,
            verifier,
        }
    }

    impl Harness {
        fn store_says(&self, result: Result<VerifiedPurchase, StoreError>) {
            *self.verifier.0.lock().unwrap() = result;
        }
        async fn open_order(&self, who: &str) -> OrderId {
            let new = NewOrder {
                id: OrderId::new(),
                app_id: app(),
                user_id: user(who),
                product_id: gems(),
                platform: Platform::Google,
                quantity: 1,
                product_kind: ProductKind::Consumable,
                expected_price: None,
                metadata: Default::default(),
                idempotency_key: None,
                manual: false,
            };
            let id = new.id;
            self.memory.create_order(new).await.unwrap();
            id
        }
        async fn verify(
            &self,
            who: &str,
            order_id: Option<OrderId>,
        ) -> Result<Verified, VerifyError> {
            let proof = PurchaseProof::Google {
                purchase_token: "t".into(),
                product_id: gems(),
                signed_data: None,
            };
            self.usecase
                .verify(VerifyPurchase {
                    app_id: app(),
                    user_id: user(who),
                    order_id,
                    proof,
                })
                .await
        }
    }

    fn reason(result: Result<Verified, VerifyError>) -> (RejectReason, bool) {
        match result {
            Err(e @ VerifyError::Rejected { .. }) => {
                let finish = e.finish_transaction();
                let VerifyError::Rejected { reason, .. } = e else {
                    unreachable!()
                };
                (reason, finish)
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn carried_order_id_binds_and_replays_are_idempotent_for_the_same_user_only() {
        let h = harness();
        let order = h.open_order("alice").await;
        h.store_says(Ok(purchase("tok-1", Some(order))));
        let first = h.verify("alice", None).await.unwrap();
        assert_eq!(first.order.id, order);
        assert_eq!(first.order.state, OrderState::Paid);
        assert_eq!(first.binding_reason, BindingReason::PurchaseCarriedOrderId);
        assert!(first.finish_transaction && !first.already_recorded);

        let again = h.verify("alice", None).await.unwrap();
        assert_eq!(again.order.id, order);
        assert!(again.already_recorded);

        assert_eq!(
            reason(h.verify("mallory", None).await),
            (RejectReason::ReplayedForOtherUser, true)
        );
    }

    #[tokio::test]
    async fn without_a_carried_id_the_oldest_unpaid_order_is_matched_else_one_is_created() {
        let h = harness();
        let older = h.open_order("bob").await;
        let _newer = h.open_order("bob").await;
        let matched = h.verify("bob", None).await.unwrap();
        assert_eq!(
            (matched.order.id, matched.binding_reason),
            (older, BindingReason::MatchedUnpaidOrder)
        );

        h.store_says(Ok(purchase("tok-2", None)));
        let h2 = harness();
        h2.store_says(Ok(purchase("tok-2", None)));
        let created = h2.verify("carol", None).await.unwrap();
        assert_eq!(created.binding_reason, BindingReason::CreatedAtVerification);
        assert_eq!(created.order.state, OrderState::Paid);
    }

    #[tokio::test]
    async fn an_order_already_paid_gets_the_new_payment_its_own_order() {
        let h = harness();
        let order = h.open_order("dave").await;
        h.store_says(Ok(purchase("tok-a", Some(order))));
        h.verify("dave", None).await.unwrap();
        // A second, different purchase carrying the same order id (the client reused it).
        h.store_says(Ok(purchase("tok-b", Some(order))));
        let second = h.verify("dave", None).await.unwrap();
        assert_ne!(second.order.id, order);
        assert_eq!(second.binding_reason, BindingReason::BoundOrderAlreadyPaid);
    }

    #[tokio::test]
    async fn a_callers_order_that_does_not_fit_the_purchase_is_passed_over_not_refused() {
        let h = harness();
        // Another user's order as the caller's hint: the purchase is the caller's own.
        let theirs = h.open_order("erin").await;
        h.store_says(Ok(purchase("tok-frank", None)));
        let frank = h.verify("frank", Some(theirs)).await.unwrap();
        assert_eq!(frank.order.user_id.as_str(), "frank");
        assert_ne!(frank.order.id, theirs);
        assert!(frank.finish_transaction);
        assert_eq!(
            h.memory.get_order(theirs).await.unwrap().unwrap().state,
            OrderState::Created
        );

        // Seed 004: unfinished purchase A (gems) sent with the newer order B of another product.
        let a = h.open_order("gina").await;
        let b = NewOrder {
            id: OrderId::new(),
            app_id: app(),
            user_id: user("gina"),
            product_id: ProductId::parse("sword").unwrap(),
            platform: Platform::Google,
            quantity: 1,
            product_kind: ProductKind::Consumable,
            expected_price: None,
            metadata: Default::default(),
            idempotency_key: None,
            manual: false,
        };
        let b_id = b.id;
        h.memory.create_order(b).await.unwrap();
        h.store_says(Ok(purchase("tok-a", None)));
        let paid = h.verify("gina", Some(b_id)).await.unwrap();
        assert_eq!(
            (paid.order.id, paid.binding_reason),
            (a, BindingReason::MatchedUnpaidOrder)
        );
        assert_eq!(
            h.memory.get_order(b_id).await.unwrap().unwrap().state,
            OrderState::Created,
            "B stays payable"
        );
    }

    #[tokio::test]
    async fn a_purchase_carrying_another_users_order_is_recorded_for_that_user() {
        let h = harness();
        let alices = h.open_order("alice").await;
        h.store_says(Ok(purchase("tok-switched", Some(alices))));
        // The player switched game accounts before the client sent the purchase.
        assert_eq!(
            reason(h.verify("bob", None).await),
            (RejectReason::OrderMismatch, true),
            "recorded for the order's user, so the client may finish"
        );
        let order = h.memory.get_order(alices).await.unwrap().unwrap();
        assert_eq!(
            (order.state, order.binding_reason),
            (
                OrderState::Paid,
                Some(BindingReason::PurchaseCarriedOrderId)
            )
        );
        assert_eq!(
            reason(h.verify("bob", None).await),
            (RejectReason::ReplayedForOtherUser, true)
        );
        let alice = h.verify("alice", None).await.unwrap();
        assert!(alice.already_recorded && alice.order.id == alices);
        assert_eq!(h.memory.purchases.lock().unwrap().len(), 1);
        assert_eq!(h.memory.orders.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn policy_refusals_and_store_outages() {
        let h = harness();
        let mut pending = purchase("tok-p", None);
        pending.status = PurchaseStatus::Pending;
        h.store_says(Ok(pending));
        assert_eq!(
            reason(h.verify("frank", None).await),
            (RejectReason::Pending, false),
            "pending keeps the transaction open"
        );

        let mut sandbox = purchase("tok-s", None);
        sandbox.environment = Environment::Sandbox;
        h.store_says(Ok(sandbox));
        assert_eq!(
            reason(h.verify("frank", None).await).0,
            RejectReason::SandboxNotAllowed
        );
        let qa = h.verify("qa", None).await.unwrap();
        assert!(qa.sandbox);

        let mut refunded = purchase("tok-r", None);
        refunded.status = PurchaseStatus::Refunded {
            at: None,
            reason: None,
        };
        h.store_says(Ok(refunded));
        assert_eq!(
            reason(h.verify("frank", None).await).0,
            RejectReason::Refunded
        );

        let mut other_product = purchase("tok-o", None);
        other_product.product_id = ProductId::parse("sword").unwrap();
        h.store_says(Ok(other_product));
        assert_eq!(
            reason(h.verify("frank", None).await).0,
            RejectReason::UnknownProduct
        );

        h.store_says(Err(StoreError::unavailable("timeout")));
        let err = h.verify("frank", None).await.unwrap_err();
        assert!(matches!(err, VerifyError::StoreUnavailable { .. }));
        assert!(!err.finish_transaction());
        assert_eq!(
            h.memory.purchases.lock().unwrap().len(),
            1,
            "only the QA purchase was recorded"
        );
    }

    #[tokio::test]
    async fn a_second_free_trial_by_user_or_store_account_is_flagged_but_granted() {
        let h = harness();
        let trial = |token: &str, account: &str| VerifiedPurchase {
            is_trial: true,
            store_account_id: Some(account.to_owned()),
            ..purchase(token, None)
        };
        h.store_says(Ok(trial("trial-1", "acct-A")));
        let first = h.verify("alice", None).await.unwrap();
        assert!(!first.repeat_trial, "the first trial is not a repeat");

        // The same user on another store account.
        h.store_says(Ok(trial("trial-2", "acct-B")));
        let by_user = h.verify("alice", None).await.unwrap();
        assert!(by_user.repeat_trial);
        assert_eq!(by_user.order.state, OrderState::Paid);

        // Another user on the first store account.
        h.store_says(Ok(trial("trial-3", "acct-A")));
        assert!(h.verify("bob", None).await.unwrap().repeat_trial);

        // A fresh user and account; and a retry keeps the first answer.
        h.store_says(Ok(trial("trial-4", "acct-C")));
        assert!(!h.verify("carol", None).await.unwrap().repeat_trial);
        h.store_says(Ok(trial("trial-2", "acct-B")));
        let retry = h.verify("alice", None).await.unwrap();
        assert!(retry.already_recorded && retry.repeat_trial);
    }

    #[tokio::test]
    async fn a_google_purchase_recorded_under_its_token_is_found_when_keyed_by_its_order_id() {
        let h = harness();
        // Recorded before the replay key became Google's order id: keyed by the token.
        h.store_says(Ok(purchase("tok-old", None)));
        let first = h.verify("alice", None).await.unwrap();
        // Verified again now: Google's order id is the key, the token the same.
        h.store_says(Ok(VerifiedPurchase {
            store_transaction_id: "GPA.1234-5678-9012-34567".into(),
            store_order_id: Some("GPA.1234-5678-9012-34567".into()),
            ..purchase("tok-old", None)
        }));
        let again = h.verify("alice", None).await.unwrap();
        assert!(again.already_recorded);
        assert_eq!(again.order.id, first.order.id);
        assert_eq!(h.memory.orders.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_proof_with_an_identifier_outside_its_stores_format_asks_nothing() {
        let h = harness();
        let refused = h
            .usecase
            .verify(VerifyPurchase {
                app_id: app(),
                user_id: user("alice"),
                order_id: None,
                proof: PurchaseProof::Google {
                    purchase_token: "t#x".into(),
                    product_id: gems(),
                    signed_data: None,
                },
            })
            .await;
        assert!(
            matches!(&refused, Err(VerifyError::InvalidIdentifier(e)) if e.field == "google.purchase_token"),
            "{refused:?}"
        );
        assert!(h.memory.orders.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_price_other_than_the_order_expected_is_refused_and_left_open() {
        let h = harness();
        let order = h.open_order("alice").await;
        let expect = |micros| crate::order::Money {
            currency: "EUR".into(),
            amount_micros: micros,
        };
        for o in h.memory.orders.lock().unwrap().iter_mut() {
            o.expected_price = Some(expect(990_000));
        }
        let charged = |micros| VerifiedPurchase {
            price: Some(expect(micros)),
            ..purchase("tok-price", Some(order))
        };
        h.store_says(Ok(charged(10_000)));
        assert_eq!(
            reason(h.verify("alice", None).await),
            (RejectReason::PriceMismatch, false)
        );
        // Not bound by id: the mismatching order is not matched, the payment gets its own.
        h.store_says(Ok(VerifiedPurchase {
            carried_order_id: None,
            ..charged(10_000)
        }));
        let own = h.verify("alice", None).await.unwrap();
        assert_ne!(own.order.id, order);
        assert_eq!(own.binding_reason, BindingReason::CreatedAtVerification);

        // Another purchase: another token (one Google token names one one-time purchase).
        h.store_says(Ok(VerifiedPurchase {
            store_transaction_id: "tok-right".into(),
            purchase_token: Some("tok-right".into()),
            ..charged(990_000)
        }));
        assert_eq!(h.verify("alice", None).await.unwrap().order.id, order);
    }

    #[tokio::test]
    async fn a_purchase_refunded_before_its_redemption_is_refused_and_may_be_finished() {
        let h = harness();
        let marked = h.memory.mark(RefundMark {
            platform: Platform::Google,
            store_keys: vec!["tok-refunded".into()],
            revoked: false,
            source: "test".into(),
        });
        assert_eq!(marked, MarkOutcome::Marked);
        h.store_says(Ok(purchase("tok-refunded", None)));
        assert_eq!(
            reason(h.verify("alice", None).await),
            (RejectReason::Refunded, true)
        );
        assert!(
            h.memory.purchases.lock().unwrap().is_empty(),
            "nothing recorded"
        );

        // A refund of a purchase already redeemed finds it instead of marking it.
        h.store_says(Ok(purchase("tok-kept", None)));
        let order = h.verify("alice", None).await.unwrap().order.id;
        let found = h.memory.mark(RefundMark {
            platform: Platform::Google,
            store_keys: vec!["tok-kept".into()],
            revoked: true,
            source: "test".into(),
        });
        assert!(matches!(found, MarkOutcome::Redeemed(r) if r.order_id == order));
    }
    #[tokio::test]
    async fn a_claimed_purchase_gets_a_new_order_of_its_paid_quantity_under_the_same_policy() {
        let h = harness();
        // An unpaid order of the claimant is not matched: a claim always makes its own order.
        let unpaid = h.open_order("alice").await;
        let paid_three = VerifiedPurchase {
            quantity: 3,
            ..purchase("tok-kept", None)
        };
        let payment = h
            .usecase
            .claim_payment(&app(), &user("alice"), paid_three)
            .unwrap();
        let PaymentTarget::NewOrder(order) = &payment.target else {
            panic!("a claim pays a new order")
        };
        assert_ne!(order.id, unpaid);
        assert_eq!((order.user_id.as_str(), order.quantity), ("alice", 3));
        assert_eq!(payment.binding_reason, BindingReason::ClaimedByOperator);

        let sandbox = VerifiedPurchase {
            environment: Environment::Sandbox,
            ..purchase("tok-sandbox", None)
        };
        let refused = h
            .usecase
            .claim_payment(&app(), &user("alice"), sandbox.clone())
            .map(|_| ());
        assert!(matches!(
            refused,
            Err(VerifyError::Rejected {
                reason: RejectReason::SandboxNotAllowed,
                ..
            })
        ));
        assert!(
            h.usecase
                .claim_payment(&app(), &user("qa"), sandbox)
                .is_ok()
        );
        let mut refunded = purchase("tok-refunded", None);
        refunded.status = PurchaseStatus::Refunded {
            at: None,
            reason: None,
        };
        assert!(
            h.usecase
                .claim_payment(&app(), &user("alice"), refunded)
                .is_err()
        );
    }
}
