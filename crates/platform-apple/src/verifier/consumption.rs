//! Apple's CONSUMPTION_REQUEST answered.

use iap_domain::AppId;
use iap_domain::ports::StoreError;

use super::AppleVerifier;

/// Send Consumption Information, answered from the app's `consumption` settings and our record
/// of whether the purchase was delivered.
#[async_trait::async_trait]
impl iap_domain::notifications::ConsumptionResponder for AppleVerifier {
    async fn send_consumption(
        &self,
        app_id: &AppId,
        report: &iap_domain::notifications::ConsumptionReport,
    ) -> Result<bool, StoreError> {
        let Some(app) = self.apps.get(app_id) else {
            return Ok(false);
        };
        let (Some(answers), Some(api)) = (&app.consumption, &app.api) else {
            return Ok(false);
        };
        let mut body = serde_json::json!({
            "customerConsented": answers.customer_consented,
            "sampleContentProvided": answers.sample_content_provided,
            "deliveryStatus": if report.delivered { "DELIVERED" } else { "UNDELIVERED_OTHER" },
            "consumptionPercentage": if report.delivered {
                answers.delivered_consumption_percentage.unwrap_or(0).clamp(0, 100_000)
            } else {
                0
            },
        });
        if let Some(preference) = &answers.refund_preference {
            body["refundPreference"] = serde_json::json!(preference);
        }
        api.send_consumption(&report.store_transaction_id, report.environment, &body)
            .await?;
        Ok(true)
    }
}
