//! `PurchaseVerifier`: the local check first, then what Google says about the token.

use async_trait::async_trait;

use iap_domain::ports::{PurchaseVerifier, StoreError, VerifyContext};
use iap_domain::purchase::{PurchaseProof, VerifiedPurchase};
use iap_domain::subscriptions::{SubscriptionRef, SubscriptionSnapshot};
use iap_domain::{AppId, Platform, ProductId, ProductKind, RejectReason};

use super::purchases::{product_purchase, subscription_purchase, subscription_snapshot};
use super::signed_data::check_signed_data;
use super::{GoogleApp, GoogleVerifier, STORE, rejected};

impl GoogleVerifier {
    /// What Google says about the purchase a token names.
    pub(super) async fn ask(
        &self,
        app: &GoogleApp,
        token: &str,
        product: &ProductId,
        subscription: bool,
    ) -> Result<VerifiedPurchase, StoreError> {
        if subscription {
            let v2 = app.api.subscription_v2(&app.package, token).await?;
            subscription_purchase(token, product, v2)
        } else {
            let v2 = app.api.product_v2(&app.package, token).await?;
            product_purchase(token, product, v2)
        }
    }
}

#[async_trait]
impl PurchaseVerifier for GoogleVerifier {
    fn platform(&self) -> Platform {
        Platform::Google
    }

    fn serves(&self, app: &AppId) -> bool {
        self.apps.contains_key(app)
    }

    async fn verify(
        &self,
        ctx: VerifyContext<'_>,
        proof: &PurchaseProof,
    ) -> Result<VerifiedPurchase, StoreError> {
        let PurchaseProof::Google {
            purchase_token,
            product_id,
            signed_data,
        } = proof
        else {
            return Err(rejected(
                RejectReason::Malformed,
                "wrong_store",
                "not a Google Play proof",
            ));
        };
        let app = STORE.app(&self.apps, ctx.app_id)?;
        let subscription = ctx
            .product
            .is_some_and(|p| p.kind == ProductKind::AutoRenewable);
        let local = signed_data.as_ref().map(|signed| {
            check_signed_data(
                &app.package,
                app.license_key.as_ref(),
                signed,
                purchase_token,
                product_id,
            )
        });
        match local {
            Some(Err(StoreError::Rejected {
                reason: RejectReason::SignatureInvalid,
                code,
                detail,
            })) => {
                // Forged, or our licence key is the wrong one: Google decides which.
                let forged = StoreError::Rejected {
                    reason: RejectReason::SignatureInvalid,
                    code,
                    detail,
                };
                let signed = signed_data.as_ref().map(|s| s.data.as_str());
                return Err(self
                    .forged_or_wrong_key(app, purchase_token, product_id, subscription, signed)
                    .await
                    .unwrap_or(forged));
            }
            Some(Err(refused)) => return Err(refused),
            _ => {}
        }
        self.ask(app, purchase_token, product_id, subscription)
            .await
    }
    async fn subscription(
        &self,
        subscription: &SubscriptionRef,
    ) -> Result<SubscriptionSnapshot, StoreError> {
        let app = STORE.app(&self.apps, &subscription.app_id)?;
        let token = subscription
            .purchase_token
            .as_deref()
            .unwrap_or(&subscription.key);
        let v2 = app.api.subscription_v2(&app.package, token).await?;
        subscription_snapshot(token, subscription.product_id.as_ref(), v2)
    }
}
