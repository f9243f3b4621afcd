//! `PurchaseVerifier`: a purchase from whichever proof the client sent, and a subscription's
//! current state from the App Store Server API (or, without credentials, the kept receipt).

use async_trait::async_trait;

use iap_domain::ports::{PurchaseVerifier, StoreError, VerifyContext};
use iap_domain::purchase::{PurchaseProof, VerifiedPurchase};
use iap_domain::subscriptions::{SubscriptionRef, SubscriptionSnapshot, SubscriptionState};
use iap_domain::{AppId, Platform, RejectReason};

use crate::jws;
use crate::model::RenewalInfoPayload;

use super::receipts::receipt_subscription;
use super::{AppleVerifier, STORE, chrono_from_ms};

#[async_trait]
impl PurchaseVerifier for AppleVerifier {
    fn platform(&self) -> Platform {
        Platform::Apple
    }

    fn serves(&self, app: &AppId) -> bool {
        self.apps.contains_key(app)
    }

    async fn verify(
        &self,
        ctx: VerifyContext<'_>,
        proof: &PurchaseProof,
    ) -> Result<VerifiedPurchase, StoreError> {
        let app = STORE.app(&self.apps, ctx.app_id)?;
        match proof {
            PurchaseProof::AppleSignedTransaction(jws) => {
                self.verify_signed(app, jws, chrono::Utc::now().timestamp_millis())
            }
            PurchaseProof::AppleReceipt {
                receipt_data,
                product_id,
                transaction_id,
            } => {
                self.verify_receipt(
                    app,
                    receipt_data,
                    product_id.as_ref(),
                    transaction_id.as_deref(),
                    ctx.ledger,
                )
                .await
            }
            PurchaseProof::AppleTransactionId(id) => {
                let api = app.api.as_ref().ok_or_else(|| {
                    StoreError::Misconfigured(
                        "a transaction id alone needs [apps.<id>.apple.api] credentials".into(),
                    )
                })?;
                let jws = api.signed_transaction(id).await?;
                self.verify_signed(app, &jws, chrono::Utc::now().timestamp_millis())
            }
            _ => Err(StoreError::rejected(
                RejectReason::Malformed,
                "wrong_store",
                "not an App Store proof",
            )),
        }
    }
    async fn subscription(
        &self,
        subscription: &SubscriptionRef,
    ) -> Result<SubscriptionSnapshot, StoreError> {
        let app = STORE.app(&self.apps, &subscription.app_id)?;
        let Some(api) = app.api.as_ref() else {
            // Without App Store Server API credentials, the receipt Apple returned last is the
            // one way left to ask about renewals.
            let receipt = subscription.receipt.as_ref().ok_or_else(|| {
                StoreError::Misconfigured(
                    "subscription status needs [apps.<id>.apple.api] credentials, or a receipt \
                     kept from a legacy purchase"
                        .into(),
                )
            })?;
            let reply = app
                .receipts
                .verify(receipt.expose(), app.shared_secret.as_deref())
                .await?;
            return receipt_subscription(
                &app.bundle_id,
                &reply,
                subscription,
                chrono::Utc::now().timestamp_millis(),
            );
        };
        let reply = api
            .subscription_statuses(&subscription.key, subscription.environment)
            .await?;
        let entry = reply["data"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|group| group["lastTransactions"].as_array().into_iter().flatten())
            .find(|t| t["originalTransactionId"] == subscription.key.as_str())
            .ok_or_else(|| {
                StoreError::rejected(
                    RejectReason::NotFoundAtStore,
                    "subscription_not_found",
                    "the App Store lists no such subscription",
                )
            })?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let latest = self.verify_signed(
            app,
            entry["signedTransactionInfo"].as_str().unwrap_or_default(),
            now_ms,
        )?;
        let renewal = match entry["signedRenewalInfo"].as_str() {
            Some(jws) => Some(jws::verify::<RenewalInfoPayload>(jws, &app.trust, now_ms)?.payload),
            None => None,
        };
        // Get All Subscription Statuses: 1 active, 2 expired, 3 billing retry, 4 billing grace
        // period, 5 revoked.
        let state = match entry["status"].as_i64() {
            Some(1) => SubscriptionState::Active,
            Some(3) => SubscriptionState::BillingRetry,
            Some(4) => SubscriptionState::InGrace,
            Some(5) => SubscriptionState::Revoked,
            _ => SubscriptionState::Expired,
        };
        let renewal = renewal.unwrap_or_default();
        Ok(SubscriptionSnapshot {
            state,
            expires_at: latest.expires_at,
            grace_until: renewal.grace_period_expires_date.and_then(chrono_from_ms),
            auto_renew: renewal.auto_renew_status.map(|s| s == 1),
            auto_renew_product_id: renewal.auto_renew_product_id,
            price_change_state: renewal.price_increase_status.map(|s| match s {
                1 => "PRICE_INCREASE_CONSENTED".to_owned(),
                _ => "PRICE_INCREASE_PENDING".to_owned(),
            }),
            latest,
        })
    }
}
