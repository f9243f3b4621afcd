//! Confirming at Huawei after the grant.

use async_trait::async_trait;

use iap_domain::Platform;
use iap_domain::ports::StoreError;

use crate::api::response_code;

use super::HuaweiVerifier;

/// Confirmation at Huawei after the grant: the Order service's confirm, which consumes a
/// consumable and completes the purchase. responseCode 9 means it was already confirmed (a
/// retry after a lost reply). Subscriptions need no confirmation.
#[async_trait]
impl iap_domain::ports::StoreConfirmer for HuaweiVerifier {
    fn platform(&self) -> Platform {
        Platform::Huawei
    }

    async fn confirm(
        &self,
        purchase: &iap_domain::ports::PurchaseToConfirm,
    ) -> Result<iap_domain::ports::ConfirmOutcome, StoreError> {
        use iap_domain::ports::ConfirmOutcome;
        if purchase.kind.is_subscription() {
            return Ok(ConfirmOutcome::NotApplicable);
        }
        let api = self.api(&purchase.app_id).ok_or_else(|| {
            StoreError::Misconfigured(format!("no Huawei settings for app {}", purchase.app_id))
        })?;
        let token = purchase.purchase_token.as_deref().ok_or_else(|| {
            StoreError::Misconfigured("a Huawei purchase without a purchase token".into())
        })?;
        let reply = api.confirm(token, purchase.product_id.as_str()).await?;
        match response_code(&reply).as_str() {
            "0" => Ok(ConfirmOutcome::Confirmed),
            "9" => Ok(ConfirmOutcome::AlreadyConfirmed),
            code => Err(StoreError::unavailable(format!(
                "Huawei confirm answered responseCode {code}"
            ))),
        }
    }
}
