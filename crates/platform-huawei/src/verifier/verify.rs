//! `PurchaseVerifier`: the client's signed data checked, then the Order or Subscription
//! service asked, and a purchase already consumed on the device told from a refunded one.

use async_trait::async_trait;
use serde_json::Value;

use iap_domain::ports::{PurchaseVerifier, StoreError, VerifyContext};
use iap_domain::purchase::{PurchaseProof, PurchaseStatus, SignedData, VerifiedPurchase};
use iap_domain::subscriptions::{SubscriptionRef, SubscriptionSnapshot};
use iap_domain::{AppId, Platform, ProductId, RejectReason};

use crate::api::{Site, response_code};
use crate::signature::PSS;

use super::purchase_data::{signed_json, subscription_snapshot, to_verified};
use super::{HuaweiApp, HuaweiVerifier, STORE, check_app, number, refusal, rejected, string};

impl HuaweiVerifier {
    async fn verify_signed(
        &self,
        app: &HuaweiApp,
        token: &str,
        product: &ProductId,
        signed: &SignedData,
        algorithm: Option<&str>,
    ) -> Result<VerifiedPurchase, StoreError> {
        let client_data = signed_json(&app.key, &signed.data, &signed.signature, algorithm)?;
        check_app(app, &client_data)?;
        if client_data["purchaseToken"].as_str() != Some(token) {
            return Err(rejected(
                RejectReason::Malformed,
                "token_mismatch",
                "InAppPurchaseData names another purchase token",
            ));
        }
        if client_data["productId"].as_str() != Some(product.as_str()) {
            return Err(rejected(
                RejectReason::ProductMismatch,
                "product_mismatch",
                "InAppPurchaseData names another product",
            ));
        }
        // The store is the authority: the Subscription service for subscriptions, the Order
        // service for the rest, at the site that holds the account's purchases. Its data is
        // signature-checked too.
        let site = Site::of(&client_data);
        let (reply, data_field) = if number(&client_data["kind"]) == Some(2) {
            let subscription_id = string(&client_data["subscriptionId"]).ok_or_else(|| {
                rejected(
                    RejectReason::Malformed,
                    "field_missing",
                    "subscription without subscriptionId",
                )
            })?;
            (
                app.api
                    .subscription(&subscription_id, token, app.prefer_pss, site)
                    .await?,
                "inappPurchaseData",
            )
        } else {
            (
                app.api
                    .verify_order(token, product.as_str(), app.prefer_pss, site)
                    .await?,
                "purchaseTokenData",
            )
        };
        match response_code(&reply).as_str() {
            "0" => {}
            "9" => {
                return self
                    .already_consumed(app, token, product, client_data)
                    .await;
            }
            code => {
                return Err(refusal(
                    code,
                    reply["responseMessage"].as_str().unwrap_or(""),
                ));
            }
        }
        let data = reply[data_field].as_str().unwrap_or("");
        let signature = reply["dataSignature"].as_str().unwrap_or("");
        let algorithm =
            reply["signatureAlgorithm"]
                .as_str()
                .or(if app.prefer_pss { Some(PSS) } else { None });
        let store_data = signed_json(&app.key, data, signature, algorithm)?;
        check_app(app, &store_data)?;
        if store_data["purchaseToken"]
            .as_str()
            .is_some_and(|signed_token| signed_token != token)
        {
            return Err(rejected(
                RejectReason::Malformed,
                "token_mismatch",
                "the store's data names another purchase token",
            ));
        }
        if store_data["productId"].as_str() != Some(product.as_str()) {
            return Err(rejected(
                RejectReason::ProductMismatch,
                "product_mismatch",
                "the store's data names another product",
            ));
        }
        to_verified(token, product, store_data, None)
    }
}

impl HuaweiVerifier {
    /// A purchase the Order service calls consumed or confirmed (code 9): by us after its grant
    /// (a client's retry), or by the app itself on the device (`consumeOwnedPurchase`) before
    /// any server saw it. Huawei no longer answers with the purchase's data, so the signed
    /// client data is all there is; before it stands for a paid purchase, the cancelled lists
    /// are asked whether it was refunded since. Our own ledger then decides the rest: the replay
    /// fence answers a retry of a recorded purchase as recorded, and only a purchase never
    /// recorded here is granted (counted, since an app consuming before its server has a bug).
    async fn already_consumed(
        &self,
        app: &HuaweiApp,
        token: &str,
        product: &ProductId,
        client_data: Value,
    ) -> Result<VerifiedPurchase, StoreError> {
        let cancelled = self.cancelled_for(app, token, None).await?;
        let mut purchase = to_verified(token, product, client_data, Some(true))?;
        if let Some(refund) = cancelled.first() {
            purchase.status = PurchaseStatus::Refunded {
                at: number(&refund["cancelledTime"])
                    .and_then(chrono::DateTime::from_timestamp_millis),
                reason: number(&refund["cancelledReason"]).map(|r| format!("cancelledReason {r}")),
            };
        }
        metrics::counter!("iap_huawei_already_consumed_total", "refunded" => if cancelled.is_empty() { "false" } else { "true" })
            .increment(1);
        Ok(purchase)
    }
}

#[async_trait]
impl PurchaseVerifier for HuaweiVerifier {
    fn platform(&self) -> Platform {
        Platform::Huawei
    }

    fn serves(&self, app: &AppId) -> bool {
        self.apps.contains_key(app)
    }

    async fn verify(
        &self,
        ctx: VerifyContext<'_>,
        proof: &PurchaseProof,
    ) -> Result<VerifiedPurchase, StoreError> {
        let PurchaseProof::Huawei {
            purchase_token,
            product_id,
            signed_data,
            signature_algorithm,
        } = proof
        else {
            return Err(rejected(
                RejectReason::Malformed,
                "wrong_store",
                "not a Huawei proof",
            ));
        };
        let app = STORE.app(&self.apps, ctx.app_id)?;
        self.verify_signed(
            app,
            purchase_token,
            product_id,
            signed_data,
            signature_algorithm.as_deref(),
        )
        .await
    }
    async fn subscription(
        &self,
        subscription: &SubscriptionRef,
    ) -> Result<SubscriptionSnapshot, StoreError> {
        let app = STORE.app(&self.apps, &subscription.app_id)?;
        let token = subscription.purchase_token.as_deref().ok_or_else(|| {
            rejected(
                RejectReason::Malformed,
                "field_missing",
                "a Huawei subscription is read with its purchase token",
            )
        })?;
        let reply = app
            .api
            .subscription(&subscription.key, token, app.prefer_pss, Site::HuaweiId)
            .await?;
        if response_code(&reply) != "0" {
            return Err(refusal(
                &response_code(&reply),
                reply["responseMessage"].as_str().unwrap_or(""),
            ));
        }
        let algorithm =
            reply["signatureAlgorithm"]
                .as_str()
                .or(if app.prefer_pss { Some(PSS) } else { None });
        let data = signed_json(
            &app.key,
            reply["inappPurchaseData"].as_str().unwrap_or(""),
            reply["dataSignature"].as_str().unwrap_or(""),
            algorithm,
        )?;
        let product = match &subscription.product_id {
            Some(p) => p.clone(),
            None => string(&data["productId"])
                .and_then(|p| ProductId::parse(p).ok())
                .ok_or_else(|| {
                    rejected(
                        RejectReason::Malformed,
                        "field_missing",
                        "productId is missing",
                    )
                })?,
        };
        if data["productId"].as_str() != Some(product.as_str()) {
            return Err(rejected(
                RejectReason::ProductMismatch,
                "product_mismatch",
                "the store's data names another product",
            ));
        }
        Ok(subscription_snapshot(to_verified(
            token, &product, data, None,
        )?))
    }
}
