//! The App Store confirms nothing server-side.

use iap_domain::Platform;
use iap_domain::ports::StoreError;

use super::AppleVerifier;

/// The App Store has no server-side confirmation: the client calls `finish()` once
/// VerifyPurchase says `finish_transaction`.
#[async_trait::async_trait]
impl iap_domain::ports::StoreConfirmer for AppleVerifier {
    fn platform(&self) -> Platform {
        Platform::Apple
    }

    async fn confirm(
        &self,
        _purchase: &iap_domain::ports::PurchaseToConfirm,
    ) -> Result<iap_domain::ports::ConfirmOutcome, StoreError> {
        Ok(iap_domain::ports::ConfirmOutcome::NotApplicable)
    }
}
