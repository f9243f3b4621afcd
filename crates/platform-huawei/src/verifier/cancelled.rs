//! The Order service's cancelled lists (refunds, chargebacks, revocations), which decide
//! whether a refund a notification claims or a consumed purchase hides really happened.

use serde_json::Value;

use iap_domain::ports::StoreError;

use iap_platform_common::{Page, collect_pages};

use crate::api::{Site, response_code};

use super::{HuaweiApp, HuaweiVerifier, refusal, string};

/// How far back a notification's refund is looked up in the cancelled list: the window Huawei's
/// own demos and client libraries query (docs/stores.md).
const CANCELLED_WINDOW: chrono::Duration = chrono::Duration::days(30);

impl HuaweiVerifier {
    /// The Order service's cancelled-list entries of the last 30 days (one-time products and
    /// subscriptions) for one purchase token or order id.
    pub(super) async fn cancelled_for(
        &self,
        huawei: &HuaweiApp,
        token: &str,
        order: Option<&str>,
    ) -> Result<Vec<Value>, StoreError> {
        let to = chrono::Utc::now();
        let mut found = cancelled_between(huawei, to - CANCELLED_WINDOW, to).await?;
        found.retain(|c| match order {
            Some(order) => c["orderId"] == order,
            None => c["purchaseToken"] == token,
        });
        Ok(found)
    }
}

/// Every entry of the Order service's cancelled lists between `from` and `to`, at the regular
/// site and at the AppTouch site (each lists only its own accounts' purchases), page by page.
pub(super) async fn cancelled_between(
    huawei: &HuaweiApp,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Value>, StoreError> {
    let mut entries = Vec::new();
    for site in Site::ALL {
        entries.extend(
            collect_pages(|continuation| async move {
                let reply = huawei
                    .api
                    .cancelled_list(
                        site,
                        from.timestamp_millis(),
                        to.timestamp_millis(),
                        continuation.as_deref(),
                    )
                    .await?;
                if response_code(&reply) != "0" {
                    return Err(refusal(
                        &response_code(&reply),
                        reply["responseMessage"].as_str().unwrap_or(""),
                    ));
                }
                // The list is a JSON string holding an array.
                let list: Value = reply["cancelledPurchaseList"]
                    .as_str()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or(Value::Null);
                let items = match list {
                    Value::Array(page) => page,
                    _ => Vec::new(),
                };
                let next = string(&reply["continuationToken"]).filter(|t| !t.is_empty());
                Ok(Page { items, next })
            })
            .await?,
        );
    }
    Ok(entries)
}
