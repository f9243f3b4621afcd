//! Acknowledging and consuming at Google Play after the grant.

use async_trait::async_trait;

use iap_domain::ports::StoreError;
use iap_domain::{Platform, ProductKind};

use super::GoogleVerifier;

/// Confirmation at Google Play after the grant: consumables are consumed (which also
/// acknowledges them), everything else acknowledged. Google refunds a purchase left
/// unacknowledged for three days, so this step is retried until it succeeds. A refusal is
/// checked against the purchase's state: a retry after a lost reply finds it already done.
#[async_trait]
impl iap_domain::ports::StoreConfirmer for GoogleVerifier {
    fn platform(&self) -> Platform {
        Platform::Google
    }

    async fn confirm(
        &self,
        purchase: &iap_domain::ports::PurchaseToConfirm,
    ) -> Result<iap_domain::ports::ConfirmOutcome, StoreError> {
        use iap_domain::ports::ConfirmOutcome;
        let (package, api) = self.api(&purchase.app_id).ok_or_else(|| {
            StoreError::Misconfigured(format!("no Google settings for app {}", purchase.app_id))
        })?;
        let token = purchase.purchase_token.as_deref().ok_or_else(|| {
            StoreError::Misconfigured("a Google purchase without a purchase token".into())
        })?;
        let product = purchase.product_id.as_str();
        let subscription = purchase.kind.is_subscription();
        let consume = purchase.kind == ProductKind::Consumable;
        let result = if consume {
            api.consume(package, product, token).await
        } else if subscription {
            api.acknowledge_subscription(package, product, token).await
        } else {
            api.acknowledge_product(package, product, token).await
        };
        match result {
            Ok(_) => Ok(ConfirmOutcome::Confirmed),
            Err(StoreError::Rejected { .. }) if !subscription => {
                let state = api.product_v2(package, token).await?;
                let line = state["productLineItem"]
                    .as_array()
                    .and_then(|items| items.iter().find(|i| i["productId"] == product));
                let consumed = line.is_some_and(|l| {
                    l["productOfferDetails"]["consumptionState"] == "CONSUMPTION_STATE_CONSUMED"
                });
                let acknowledged =
                    state["acknowledgementState"] == "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED";
                if (consume && consumed) || (!consume && acknowledged) {
                    Ok(ConfirmOutcome::AlreadyConfirmed)
                } else {
                    Err(StoreError::unavailable(format!(
                        "Google refused to {} the purchase and it is not done yet",
                        if consume { "consume" } else { "acknowledge" }
                    )))
                }
            }
            Err(StoreError::Rejected { .. }) => {
                let state = api.subscription_v2(package, token).await?;
                if state["acknowledgementState"] == "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED" {
                    Ok(ConfirmOutcome::AlreadyConfirmed)
                } else {
                    Err(StoreError::unavailable(
                        "Google refused to acknowledge the subscription and it is not done yet",
                    ))
                }
            }
            Err(other) => Err(other),
        }
    }
}
