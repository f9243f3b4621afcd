//! Reconciliation's view of the App Store: Get Notification History, page by page.

use iap_domain::ports::StoreError;
use iap_domain::{AppId, Platform};

use iap_platform_common::{Page, collect_pages};

use super::AppleVerifier;

/// The App Store's history for reconciliation: Get Notification History in both environments
/// (180 days in production, 30 in sandbox). Every notification Apple sent — a purchase whose
/// client died, a renewal, a refund — goes through the inbox, which keeps what it already had.
/// Needs the app's `api` credentials.
#[async_trait::async_trait]
impl iap_domain::reconciliation::StoreHistory for AppleVerifier {
    fn platform(&self) -> Platform {
        Platform::Apple
    }

    fn apps(&self) -> Vec<AppId> {
        self.apps
            .iter()
            .filter(|(_, app)| app.api.is_some())
            .map(|(id, _)| id.clone())
            .collect()
    }

    async fn changes(
        &self,
        app: &AppId,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<iap_domain::reconciliation::StoreChange>, StoreError> {
        use iap_domain::reconciliation::StoreChange;
        let Some(api) = self.apps.get(app).and_then(|a| a.api.clone()) else {
            return Ok(Vec::new());
        };
        let mut changes = Vec::new();
        for environment in [
            iap_domain::Environment::Production,
            iap_domain::Environment::Sandbox,
        ] {
            let api = &*api;
            changes.extend(
                collect_pages(|page| async move {
                    let reply = api
                        .notification_history(
                            environment,
                            from.timestamp_millis(),
                            to.timestamp_millis(),
                            page.as_deref(),
                        )
                        .await?;
                    let items = reply["notificationHistory"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|item| item["signedPayload"].as_str())
                        .map(|signed| StoreChange::Notification {
                            raw_body: serde_json::json!({ "signedPayload": signed }).to_string(),
                        })
                        .collect();
                    let next = reply["paginationToken"]
                        .as_str()
                        .filter(|_| reply["hasMore"] == true)
                        .map(str::to_owned);
                    Ok::<_, StoreError>(Page { items, next })
                })
                .await?,
            );
        }
        Ok(changes)
    }
}
