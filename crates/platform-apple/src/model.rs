//! Decoded App Store payloads with Apple's field names (platforms/apple.md §2, §3). Enumerations
//! stay strings, so a value Apple adds tomorrow is carried through instead of failing the
//! decode; helpers interpret the values this system acts on. Unknown fields are ignored.

use serde::{Deserialize, Deserializer};

use iap_domain::{Environment, ProductKind};

/// Milliseconds since the epoch. Apple's servers send integers; StoreKit Testing in Xcode sends
/// fractional numbers, which are truncated.
fn millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    let value: Option<f64> = Option::deserialize(deserializer)?;
    #[allow(
        clippy::cast_possible_truncation,
        reason = "epoch milliseconds fit in i64"
    )]
    Ok(value.map(|v| v as i64))
}

/// `JWSTransactionDecodedPayload`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TransactionPayload {
    pub transaction_id: Option<String>,
    pub original_transaction_id: Option<String>,
    pub web_order_line_item_id: Option<String>,
    pub bundle_id: Option<String>,
    pub product_id: Option<String>,
    pub subscription_group_identifier: Option<String>,
    #[serde(deserialize_with = "millis")]
    pub purchase_date: Option<i64>,
    #[serde(deserialize_with = "millis")]
    pub original_purchase_date: Option<i64>,
    #[serde(deserialize_with = "millis")]
    pub expires_date: Option<i64>,
    #[serde(deserialize_with = "millis")]
    pub signed_date: Option<i64>,
    pub quantity: Option<u32>,
    /// "Auto-Renewable Subscription", "Non-Consumable", "Consumable", "Non-Renewing Subscription".
    #[serde(rename = "type")]
    pub product_type: Option<String>,
    pub app_account_token: Option<String>,
    pub in_app_ownership_type: Option<String>,
    pub revocation_reason: Option<i32>,
    #[serde(deserialize_with = "millis")]
    pub revocation_date: Option<i64>,
    pub revocation_type: Option<String>,
    pub revocation_percentage: Option<i64>,
    pub is_upgraded: Option<bool>,
    pub offer_type: Option<i32>,
    pub offer_identifier: Option<String>,
    pub offer_discount_type: Option<String>,
    pub offer_period: Option<String>,
    /// "Sandbox", "Production", "Xcode", "LocalTesting".
    pub environment: Option<String>,
    pub storefront: Option<String>,
    pub storefront_id: Option<String>,
    pub transaction_reason: Option<String>,
    pub currency: Option<String>,
    /// Price in milliunits of `currency`.
    pub price: Option<i64>,
    pub app_transaction_id: Option<String>,
}

impl TransactionPayload {
    /// The product kind, when `type` is one this system knows.
    pub fn kind(&self) -> Option<ProductKind> {
        match self.product_type.as_deref()? {
            "Consumable" => Some(ProductKind::Consumable),
            "Non-Consumable" => Some(ProductKind::NonConsumable),
            "Auto-Renewable Subscription" => Some(ProductKind::AutoRenewable),
            "Non-Renewing Subscription" => Some(ProductKind::NonRenewing),
            _ => None,
        }
    }

    /// The environment; Xcode and local testing count as sandbox.
    pub fn environment(&self) -> Option<Environment> {
        environment(self.environment.as_deref()?)
    }

    /// A free trial (introductory offer with the FREE_TRIAL discount).
    pub fn is_free_trial(&self) -> bool {
        self.offer_discount_type.as_deref() == Some("FREE_TRIAL")
    }
}

/// Maps Apple's environment names.
pub fn environment(name: &str) -> Option<Environment> {
    match name {
        "Production" => Some(Environment::Production),
        "Sandbox" | "Xcode" | "LocalTesting" => Some(Environment::Sandbox),
        _ => None,
    }
}

/// `JWSRenewalInfoDecodedPayload`. It has no `bundleId`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RenewalInfoPayload {
    pub expiration_intent: Option<i32>,
    pub original_transaction_id: Option<String>,
    pub auto_renew_product_id: Option<String>,
    pub product_id: Option<String>,
    pub auto_renew_status: Option<i32>,
    pub is_in_billing_retry_period: Option<bool>,
    pub price_increase_status: Option<i32>,
    #[serde(deserialize_with = "millis")]
    pub grace_period_expires_date: Option<i64>,
    pub offer_type: Option<i32>,
    pub offer_identifier: Option<String>,
    #[serde(deserialize_with = "millis")]
    pub signed_date: Option<i64>,
    pub environment: Option<String>,
    #[serde(deserialize_with = "millis")]
    pub recent_subscription_start_date: Option<i64>,
    #[serde(deserialize_with = "millis")]
    pub renewal_date: Option<i64>,
    pub currency: Option<String>,
    pub renewal_price: Option<i64>,
    pub app_account_token: Option<String>,
}

/// `ResponseBodyV2DecodedPayload`: an App Store Server Notification V2.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NotificationPayload {
    pub notification_type: Option<String>,
    pub subtype: Option<String>,
    #[serde(rename = "notificationUUID")]
    pub notification_uuid: Option<String>,
    pub version: Option<String>,
    #[serde(deserialize_with = "millis")]
    pub signed_date: Option<i64>,
    pub data: Option<NotificationData>,
    pub summary: Option<NotificationSummary>,
    pub external_purchase_token: Option<ExternalPurchaseToken>,
}

/// `data` of a notification.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NotificationData {
    pub app_apple_id: Option<i64>,
    pub bundle_id: Option<String>,
    pub bundle_version: Option<String>,
    pub environment: Option<String>,
    pub signed_transaction_info: Option<String>,
    pub signed_renewal_info: Option<String>,
    /// 1 active, 2 expired, 3 billing retry, 4 grace period, 5 revoked.
    pub status: Option<i32>,
    pub consumption_request_reason: Option<String>,
}

/// `summary` of a mass renewal-extension notification.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NotificationSummary {
    pub request_identifier: Option<String>,
    pub environment: Option<String>,
    pub app_apple_id: Option<i64>,
    pub bundle_id: Option<String>,
    pub product_id: Option<String>,
    pub succeeded_count: Option<i64>,
    pub failed_count: Option<i64>,
}

/// `externalPurchaseToken` of an external-purchase notification.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExternalPurchaseToken {
    pub external_purchase_id: Option<String>,
    pub token_creation_date: Option<i64>,
    pub app_apple_id: Option<i64>,
    pub bundle_id: Option<String>,
}

impl NotificationPayload {
    /// The bundle the notification is about, wherever this kind of notification carries it.
    pub fn bundle_id(&self) -> Option<&str> {
        self.data
            .as_ref()
            .and_then(|d| d.bundle_id.as_deref())
            .or_else(|| self.summary.as_ref().and_then(|s| s.bundle_id.as_deref()))
            .or_else(|| {
                self.external_purchase_token
                    .as_ref()
                    .and_then(|t| t.bundle_id.as_deref())
            })
    }

    /// The environment, wherever this kind of notification carries it (an external purchase
    /// id starting with "SANDBOX" means sandbox).
    pub fn environment(&self) -> Option<Environment> {
        if let Some(env) = self.data.as_ref().and_then(|d| d.environment.as_deref()) {
            return environment(env);
        }
        if let Some(env) = self.summary.as_ref().and_then(|s| s.environment.as_deref()) {
            return environment(env);
        }
        self.external_purchase_token
            .as_ref()
            .and_then(|t| t.external_purchase_id.as_deref())
            .map(|id| {
                if id.starts_with("SANDBOX") {
                    Environment::Sandbox
                } else {
                    Environment::Production
                }
            })
    }

    /// The app's Apple id, wherever this kind of notification carries it.
    pub fn app_apple_id(&self) -> Option<i64> {
        self.data
            .as_ref()
            .and_then(|d| d.app_apple_id)
            .or_else(|| self.summary.as_ref().and_then(|s| s.app_apple_id))
            .or_else(|| {
                self.external_purchase_token
                    .as_ref()
                    .and_then(|t| t.app_apple_id)
            })
    }
}

/// How much of a refunded transaction Apple refunded (App Store Server API 1.19
/// `revocationType`, `revocationPercentage` in milliunits, 100000 being 100 %, applying to the
/// whole `quantity`): `REFUND_PRORATED` is that share of the units, rounded as the app
/// configures; `REFUND_FULL`, `FAMILY_REVOKE` or no type (older payloads) are the whole.
pub(crate) fn refund_share(
    t: &TransactionPayload,
    rounding: iap_domain::refunds::PartialRefundRounding,
) -> iap_domain::refunds::RefundShare {
    use iap_domain::refunds::RefundShare;
    match (t.revocation_type.as_deref(), t.revocation_percentage) {
        (Some("REFUND_PRORATED"), Some(milli)) => {
            let milli = u32::try_from(milli.clamp(0, 100_000)).unwrap_or(100_000);
            RefundShare::Units(rounding.units(t.quantity.unwrap_or(1).max(1), milli))
        }
        _ => RefundShare::Whole,
    }
}

/// Apple's type and reason of a refund: `revocationType` as Apple writes it, `revocationReason`
/// 0 (another reason, e.g. an accidental purchase) or 1 (an actual or perceived issue in the
/// app).
pub(crate) fn refund_cause(t: &TransactionPayload) -> iap_domain::refunds::RefundCause {
    iap_domain::refunds::RefundCause {
        source: t.revocation_type.clone(),
        reason: t.revocation_reason.map(|r| match r {
            0 => "other".to_owned(),
            1 => "app_issue".to_owned(),
            other => format!("reason_{other}"),
        }),
    }
}
