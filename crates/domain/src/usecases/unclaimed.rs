//! Paid but unclaimed purchases (see [`crate::unclaimed`]): kept when a store notification
//! reports a paid purchase that no order and no user can be found for, listed for operators, and
//! claimed for a user by an operator — asked of the store again, recorded through the normal
//! payment path (a new order bound as `claimed_by_operator`, delivered once through the outbox),
//! and audited. A second claim is refused; a purchase the store refunded meanwhile is not
//! claimable; the player's own later VerifyPurchase resolves the row instead of granting twice.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::admin::KeysetPosition;
use crate::delivery::DeliveryTrigger;
use crate::ids::{OrderId, UserId};
use crate::order::Order;
use crate::ports::{
    MarkOutcome, OrderRepository, PaymentLedger, RecordOutcome, RefundMark, StorageError,
};
use crate::purchase::PurchaseStatus;
use crate::unclaimed::{
    ClaimOutcome, ClaimToRecord, KeepOutcome, UnclaimedClaim, UnclaimedFilter, UnclaimedPurchase,
    UnclaimedState, UnclaimedStore, UnclaimedToKeep,
};
use crate::usecases::admin::{Accountability, Page, mask_token};
use crate::usecases::verify_purchase::{PurchaseVerification, VerifyError};

/// Why an unclaimed-purchase call failed.
#[derive(Debug, thiserror::Error)]
pub enum UnclaimedError {
    /// A field is missing or malformed.
    #[error("{field}: {problem}")]
    InvalidArgument {
        /// Field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// No kept purchase has this id.
    #[error("no unclaimed purchase {0}")]
    NotFound(String),
    /// Claimed before (by an operator, or redeemed by the player's own client).
    #[error("unclaimed purchase {id} was already claimed for user {user_id} (order {order_id})")]
    AlreadyClaimed {
        /// The kept purchase.
        id: String,
        /// Who has it.
        user_id: UserId,
        /// The order that recorded it.
        order_id: OrderId,
    },
    /// The store refunded or revoked it before it was claimed.
    #[error("unclaimed purchase {0} was refunded or revoked by the store: nothing to claim")]
    Refunded(String),
    /// The store or the app's policy refuses it now (asked again at claim time), or the store
    /// cannot be asked: the verification error says which.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// Storage failed; nothing half-written.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn invalid(field: &'static str, problem: impl Into<String>) -> UnclaimedError {
    UnclaimedError::InvalidArgument {
        field,
        problem: problem.into(),
    }
}

/// Parses the id of a kept purchase given by an operator.
pub fn parse_unclaimed_id(raw: &str) -> Result<uuid::Uuid, UnclaimedError> {
    if raw.trim().is_empty() {
        return Err(invalid("id", "is required (from ListUnclaimedPurchases)"));
    }
    uuid::Uuid::parse_str(raw.trim())
        .map_err(|_| invalid("id", "must be an unclaimed purchase id (UUID)"))
}

/// `ClaimUnclaimedPurchase`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimUnclaimed {
    /// The kept purchase.
    pub id: uuid::Uuid,
    /// Who gets it.
    pub user_id: UserId,
    /// Who claims it and why.
    pub who: Accountability,
}

/// What a claim granted.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The kept purchase, now claimed.
    pub purchase: UnclaimedPurchase,
    /// The new order for the user, as far as delivery got.
    pub order: Order,
}

/// Keeps a paid purchase nobody could be found for (store notifications call it) and says what
/// became of it, for the inbox row.
pub async fn keep<S: UnclaimedStore + ?Sized>(
    store: &S,
    keep: UnclaimedToKeep,
) -> Result<String, StorageError> {
    let platform = keep.purchase.platform;
    match store.keep_unclaimed(keep).await? {
        KeepOutcome::Kept { purchase, new } => {
            if new {
                metrics::counter!("iap_unclaimed_purchases_kept_total", "store" => platform.as_str())
                    .increment(1);
                tracing::warn!(unclaimed_id = %purchase.id, %platform, product = %purchase.product_id, "paid purchase without an order or a user: kept unclaimed for an operator");
            }
            let state = match purchase.state() {
                UnclaimedState::Refunded => " (already refunded: not claimable)",
                _ => "",
            };
            Ok(format!(
                "paid purchase without an order or a user: kept unclaimed as {}{}{state}",
                purchase.id,
                if new { "" } else { " (kept before)" }
            ))
        }
        KeepOutcome::Redeemed(done) => Ok(format!(
            "paid purchase already redeemed as order {}",
            done.order_id
        )),
    }
}

/// A listing position as an opaque token.
fn encode_token(position: KeysetPosition) -> String {
    hex::encode(format!(
        "unclaimed:{}:{}",
        position.at.timestamp_micros(),
        position.id
    ))
}

fn decode_token(token: &str) -> Result<Option<KeysetPosition>, UnclaimedError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || invalid("page_token", "is not a token from a previous page");
    let text = String::from_utf8(hex::decode(token).map_err(|_| bad())?).map_err(|_| bad())?;
    let mut parts = text.split(':');
    if parts.next() != Some("unclaimed") {
        return Err(bad());
    }
    let micros: i64 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let id = parts
        .next()
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .ok_or_else(bad)?;
    if parts.next().is_some() {
        return Err(bad());
    }
    let at = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok(Some(KeysetPosition { at, id }))
}

/// What operators may see of a kept purchase: no token (Google's charge id is often the token
/// itself, shown masked).
pub fn redacted(mut purchase: UnclaimedPurchase) -> UnclaimedPurchase {
    if let Some(token) = purchase.purchase_token.take()
        && token == purchase.store_transaction_id
    {
        purchase.store_transaction_id = mask_token(&token);
    }
    purchase
}

/// The use case.
pub struct UnclaimedPurchases<S> {
    store: S,
    purchases: Arc<PurchaseVerification<S>>,
    delivery: Option<Arc<dyn DeliveryTrigger>>,
}

impl<S> std::fmt::Debug for UnclaimedPurchases<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnclaimedPurchases")
            .field("delivery", &self.delivery.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: UnclaimedStore + OrderRepository + PaymentLedger> UnclaimedPurchases<S> {
    /// Wires the use case: `purchases` asks the store again at claim time; without `delivery`,
    /// a claimed purchase's order is left due for the sweeper.
    pub fn new(
        store: S,
        purchases: Arc<PurchaseVerification<S>>,
        delivery: Option<Arc<dyn DeliveryTrigger>>,
    ) -> Self {
        Self {
            store,
            purchases,
            delivery,
        }
    }

    /// Kept purchases, oldest first (the longest-waiting money leads), one keyset page at a time.
    #[tracing::instrument(name = "admin.list_unclaimed", skip_all, err)]
    pub async fn list(
        &self,
        filter: UnclaimedFilter,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<UnclaimedPurchase>, UnclaimedError> {
        let after = decode_token(page_token)?;
        let limit = page_size.max(1);
        let mut items = self.store.list_unclaimed(&filter, after, limit + 1).await?;
        let mut next_page_token = String::new();
        if items.len() > limit as usize {
            items.truncate(limit as usize);
            let last = &items[items.len() - 1];
            next_page_token = encode_token(KeysetPosition {
                at: last.first_seen_at,
                id: last.id,
            });
        }
        Ok(Page {
            items: items.into_iter().map(redacted).collect(),
            next_page_token,
        })
    }

    /// Kept purchases carrying `id` as any store id (beside the orders a lookup finds).
    pub async fn lookup(&self, id: &str) -> Result<Vec<UnclaimedPurchase>, UnclaimedError> {
        let mut found = self.store.find_unclaimed(id.trim()).await?;
        if let Ok(uuid) = uuid::Uuid::parse_str(id.trim())
            && let Some(kept) = self.store.kept_purchase(uuid).await?
            && !found.iter().any(|p| p.id == uuid)
        {
            found.push(kept.purchase);
        }
        Ok(found.into_iter().map(redacted).collect())
    }

    /// Claims a kept purchase for a user: the store is asked again, the payment recorded as a new
    /// order for the user with the claim and its audit entry in one commit, then delivered.
    #[tracing::instrument(name = "admin.claim_unclaimed", skip_all, fields(operator = %command.who.operator(), unclaimed_id = %command.id, order_id), err)]
    pub async fn claim(&self, command: ClaimUnclaimed) -> Result<Claimed, UnclaimedError> {
        let id = command.id;
        let kept = self
            .store
            .kept_purchase(id)
            .await?
            .ok_or_else(|| UnclaimedError::NotFound(id.to_string()))?;
        let row = &kept.purchase;
        if let Some(claim) = &row.claim {
            return Err(already_claimed(id, claim));
        }
        if row.refunded_at.is_some() {
            return Err(UnclaimedError::Refunded(id.to_string()));
        }
        // The store's current word, not the word it had when the purchase was kept.
        let now = self.purchases.inspect(&row.app_id, &kept.proof).await?;
        if now.platform != row.platform || now.store_transaction_id != row.store_transaction_id {
            return Err(StorageError::Corrupt(format!(
                "unclaimed purchase {id}: its proof now names another purchase"
            ))
            .into());
        }
        if matches!(
            now.status,
            PurchaseStatus::Refunded { .. } | PurchaseStatus::Cancelled
        ) {
            // Remembered as a refund, so the purchase's later redemption is refused too.
            let keys = [
                Some(now.store_transaction_id.clone()),
                now.purchase_token.clone(),
                now.store_order_id.clone(),
            ]
            .into_iter()
            .flatten()
            .collect();
            let mark = RefundMark {
                platform: now.platform,
                store_keys: keys,
                revoked: matches!(now.status, PurchaseStatus::Cancelled),
                source: "unclaimed purchase claim".into(),
            };
            if let MarkOutcome::Redeemed(done) = self.store.mark_refund(mark).await? {
                return Err(UnclaimedError::AlreadyClaimed {
                    id: id.to_string(),
                    user_id: done.user_id,
                    order_id: done.order_id,
                });
            }
            return Err(UnclaimedError::Refunded(id.to_string()));
        }
        let payment = self
            .purchases
            .claim_payment(&row.app_id, &command.user_id, now)?;
        let order_id = payment.target.order_id();
        let audit = command.who.audit(
            "claim_unclaimed",
            Some(order_id),
            json!({
                "unclaimed_id": id.to_string(),
                "platform": row.platform.as_str(),
                "store_transaction_id": redacted(row.clone()).store_transaction_id,
                "user_id": command.user_id.as_str(),
                "product_id": row.product_id.as_str(),
                "quantity": payment.purchase.quantity,
            }),
        );
        let platform = row.platform;
        let outcome = self
            .store
            .claim_unclaimed(ClaimToRecord { id, payment, audit })
            .await?;
        let order = match outcome {
            ClaimOutcome::Claimed(order) => *order,
            ClaimOutcome::NotFound => return Err(UnclaimedError::NotFound(id.to_string())),
            ClaimOutcome::AlreadyClaimed(claim) => return Err(already_claimed(id, &claim)),
            ClaimOutcome::Refunded
            | ClaimOutcome::NotRecorded(RecordOutcome::RefundedBeforeRedemption { .. }) => {
                return Err(UnclaimedError::Refunded(id.to_string()));
            }
            ClaimOutcome::NotRecorded(RecordOutcome::AlreadyRecorded(done)) => {
                return Err(UnclaimedError::AlreadyClaimed {
                    id: id.to_string(),
                    user_id: done.user_id,
                    order_id: done.order_id,
                });
            }
            ClaimOutcome::NotRecorded(other) => {
                return Err(StorageError::Other(format!(
                    "a claim's new order was not recorded: {other:?}"
                ))
                .into());
            }
        };
        tracing::Span::current().record("order_id", tracing::field::display(order.id));
        metrics::counter!("iap_unclaimed_purchases_claimed_total", "store" => platform.as_str())
            .increment(1);
        tracing::info!(order_id = %order.id, user_id = %command.user_id, "unclaimed purchase claimed by an operator");
        self.deliver_now(order.id).await;
        let order = self.store.get_order(order.id).await?.unwrap_or(order);
        let purchase = self
            .store
            .kept_purchase(id)
            .await?
            .map(|k| redacted(k.purchase))
            .ok_or_else(|| UnclaimedError::NotFound(id.to_string()))?;
        Ok(Claimed { purchase, order })
    }

    /// Delivers now, in its own task so an impatient caller cannot cut a grant short; a failure
    /// leaves the order due for the sweeper.
    async fn deliver_now(&self, order: OrderId) {
        let Some(trigger) = self.delivery.clone() else {
            return;
        };
        match tokio::spawn(async move { trigger.deliver_now(order).await }).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(order_id = %order, error = %e, "delivery after a claim failed; the sweeper retries");
            }
            Err(e) => tracing::error!(order_id = %order, error = %e, "delivery task failed"),
        }
    }
}

fn already_claimed(id: uuid::Uuid, claim: &UnclaimedClaim) -> UnclaimedError {
    UnclaimedError::AlreadyClaimed {
        id: id.to_string(),
        user_id: claim.user_id.clone(),
        order_id: claim.order_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_foreign_text() {
        let position = KeysetPosition {
            at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: uuid::Uuid::now_v7(),
        };
        assert_eq!(
            decode_token(&encode_token(position)).unwrap(),
            Some(position)
        );
        assert_eq!(decode_token("").unwrap(), None);
        assert!(decode_token(&hex::encode("orders:0:1:x")).is_err());
        assert!(decode_token("zz").is_err());
    }

    #[test]
    fn ids_must_be_uuids() {
        assert!(parse_unclaimed_id("").is_err());
        assert!(parse_unclaimed_id("nope").is_err());
        let id = uuid::Uuid::now_v7();
        assert_eq!(parse_unclaimed_id(&id.to_string()).unwrap(), id);
    }
}
