//! Reconciliation's view of Huawei: the cancelled lists of both sites, page by page.

use async_trait::async_trait;

use iap_domain::ports::StoreError;
use iap_domain::{AppId, Platform};

use super::cancelled::cancelled_between;
use super::{HuaweiVerifier, number, string};

/// Huawei's history for reconciliation: the Order service's cancelled list (refunds, chargebacks,
/// up/downgrades), one-time and subscription purchases. Huawei offers no server-side list of
/// purchases to find ones never reported; those come from ORDER notifications and the client's
/// own compensation flow (`obtainOwnedPurchases` then VerifyPurchase).
#[async_trait]
impl iap_domain::reconciliation::StoreHistory for HuaweiVerifier {
    fn platform(&self) -> Platform {
        Platform::Huawei
    }

    fn apps(&self) -> Vec<AppId> {
        self.apps.keys().cloned().collect()
    }

    async fn changes(
        &self,
        app: &AppId,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<iap_domain::reconciliation::StoreChange>, StoreError> {
        use iap_domain::reconciliation::StoreChange;
        let Some(huawei) = self.apps.get(app) else {
            return Ok(Vec::new());
        };
        Ok(cancelled_between(huawei, from, to)
            .await?
            .iter()
            .map(|cancelled| StoreChange::Voided {
                store_transaction_id: string(&cancelled["orderId"]),
                purchase_token: string(&cancelled["purchaseToken"]),
                // cancelledReason 5 fraud, 6 chargeback.
                revoked: matches!(number(&cancelled["cancelledReason"]), Some(5 | 6)),
                share: iap_domain::refunds::RefundShare::Whole,
                cause: iap_domain::refunds::RefundCause::default(),
            })
            .collect())
    }
}
