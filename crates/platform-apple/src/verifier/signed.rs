//! A StoreKit 2 signed transaction as a purchase: the chain verified to a trusted root, the
//! bundle id and environment checked, Apple's fields mapped.

use iap_domain::ports::StoreError;
use iap_domain::purchase::{PurchaseStatus, VerifiedPurchase};
use iap_domain::{Money, Platform, ProductId, RejectReason};

use crate::jws;
use crate::model::TransactionPayload;

use super::{AppleApp, AppleVerifier, chrono_from_ms};

impl AppleVerifier {
    pub(super) fn verify_signed(
        &self,
        app: &AppleApp,
        jws: &str,
        now_ms: i64,
    ) -> Result<VerifiedPurchase, StoreError> {
        let verified = jws::verify::<serde_json::Value>(jws, &app.trust, now_ms)?;
        let payload: TransactionPayload = serde_json::from_value(verified.payload.clone())
            .map_err(|e| {
                StoreError::rejected(RejectReason::Malformed, "payload_malformed", e.to_string())
            })?;
        if payload.bundle_id.as_deref() != Some(app.bundle_id.as_str()) {
            return Err(StoreError::rejected(
                RejectReason::BundleMismatch,
                "bundle_mismatch",
                format!(
                    "the transaction is for bundle {:?}",
                    payload.bundle_id.as_deref().unwrap_or("")
                ),
            ));
        }
        let environment = payload.environment().ok_or_else(|| {
            StoreError::rejected(
                RejectReason::EnvironmentMismatch,
                "environment_unknown",
                "the transaction has no known environment",
            )
        })?;
        let required = |value: Option<String>, field: &str| {
            value.ok_or_else(|| {
                StoreError::rejected(
                    RejectReason::Malformed,
                    "field_missing",
                    format!("{field} is missing"),
                )
            })
        };
        let transaction_id = required(payload.transaction_id.clone(), "transactionId")?;
        let product_id = ProductId::parse(required(payload.product_id.clone(), "productId")?)
            .map_err(|e| {
                StoreError::rejected(RejectReason::Malformed, "field_invalid", e.to_string())
            })?;
        let status = match payload.revocation_date {
            Some(at) => PurchaseStatus::Refunded {
                at: chrono_from_ms(at),
                reason: payload.revocation_reason.map(|r| r.to_string()),
            },
            None => PurchaseStatus::Purchased,
        };
        let price = match (&payload.currency, payload.price) {
            // Apple reports milliunits; Money carries micros.
            (Some(currency), Some(milli)) => Some(Money {
                currency: currency.clone(),
                amount_micros: milli.saturating_mul(1000),
            }),
            _ => None,
        };
        Ok(VerifiedPurchase {
            platform: Platform::Apple,
            environment,
            store_transaction_id: transaction_id,
            original_transaction_id: payload.original_transaction_id.clone(),
            purchase_token: None,
            // An auto-renewable period's id across devices and restores (the replay key of the
            // period, checked next to the transaction id).
            store_order_id: payload
                .web_order_line_item_id
                .clone()
                .filter(|id| !id.is_empty()),
            product_id,
            quantity: payload.quantity.unwrap_or(1).max(1),
            status,
            purchased_at: payload.purchase_date.and_then(chrono_from_ms),
            expires_at: payload.expires_date.and_then(chrono_from_ms),
            carried_order_id: payload
                .app_account_token
                .as_ref()
                .map(|t| t.to_ascii_lowercase()),
            // The paying Apple Account, as far as Apple tells: its app download transaction,
            // one per account and app on every device (appAccountToken is our own order id).
            store_account_id: payload.app_transaction_id.clone(),
            is_trial: payload.is_free_trial(),
            price,
            kind: payload.kind(),
            linked_purchase_token: None,
            acknowledged: None,
            consumed: None,
            subscription_status: None,
            subscription_group: payload.subscription_group_identifier,
            raw: verified.payload,
            finish_withheld: false,
            latest_receipt: None,
        })
    }
}
