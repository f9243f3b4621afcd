//! Reconciliation's view of Google Play: the voided purchases list, page by page.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use iap_domain::ports::StoreError;
use iap_domain::refunds::RefundShare;
use iap_domain::{AppId, Platform};

use iap_platform_common::{Page, collect_pages};

use super::{GoogleVerifier, string};

/// Google Play's history for reconciliation: voided purchases (refunds, chargebacks, revocations,
/// one-time and subscription) of each app's package. Google keeps no list of purchases to find
/// ones never reported: those arrive through RTDN only.
#[async_trait]
impl iap_domain::reconciliation::StoreHistory for GoogleVerifier {
    fn platform(&self) -> Platform {
        Platform::Google
    }

    fn apps(&self) -> Vec<AppId> {
        self.apps.keys().cloned().collect()
    }

    async fn changes(
        &self,
        app: &AppId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<iap_domain::reconciliation::StoreChange>, StoreError> {
        use iap_domain::reconciliation::StoreChange;
        let Some(google) = self.apps.get(app) else {
            return Ok(Vec::new());
        };
        collect_pages(|page| async move {
            let reply = google
                .api
                .voided_purchases(
                    &google.package,
                    from.timestamp_millis(),
                    to.timestamp_millis(),
                    page.as_deref(),
                )
                .await?;
            let mut items = Vec::new();
            for voided in reply["voidedPurchases"].as_array().into_iter().flatten() {
                // A quantity-based partial refund: the cumulative units, from productsv2 (the
                // window may hold only the latest of several partial refunds).
                let share = match string(&voided["purchaseToken"]) {
                    Some(token) if crate::voided::is_partial(voided) => {
                        match google.api.product_v2(&google.package, &token).await {
                            Ok(v2) => crate::voided::share_from_product(&v2).unwrap_or_else(|| {
                                crate::voided::share_from_records(std::slice::from_ref(voided))
                            }),
                            Err(StoreError::Rejected { .. }) => {
                                crate::voided::share_from_records(std::slice::from_ref(voided))
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    _ => RefundShare::Whole,
                };
                items.push(StoreChange::Voided {
                    store_transaction_id: string(&voided["orderId"]),
                    purchase_token: string(&voided["purchaseToken"]),
                    // Fraud, friendly fraud, chargeback; the initiator (voidedSource 2 is
                    // Google itself) does not make a refund a chargeback.
                    revoked: crate::voided::is_revocation(voided),
                    share,
                    cause: crate::voided::cause(std::slice::from_ref(voided)),
                });
            }
            let next = string(&reply["tokenPagination"]["nextPageToken"]);
            Ok(Page { items, next })
        })
        .await
    }
}
