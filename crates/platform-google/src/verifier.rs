//! `GoogleVerifier`: the domain's `PurchaseVerifier` for Google Play. The optional local
//! signature check rejects forgeries without a network call; the Android Publisher API is then
//! the authority on payment state (productsv2 for one-time products, subscriptionsv2 for
//! subscriptions), as Google asks backends to do.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use iap_domain::ports::{PurchaseVerifier, StoreError, VerifyContext};
use iap_domain::purchase::{
    PurchaseProof, PurchaseStatus, SignedData, SubscriptionStatus, VerifiedPurchase,
};
use iap_domain::refunds::{RefundCause, RefundShare};
use iap_domain::subscriptions::{SubscriptionRef, SubscriptionSnapshot, SubscriptionState};
use iap_domain::{AppId, Environment, Money, Platform, ProductId, ProductKind, RejectReason};

use iap_platform_common::{Page, Store, build_apps, collect_pages, sha256_hex};

use crate::api::AndroidPublisher;
use crate::auth::{ServiceAccountKey, TokenSource};
use crate::signature::LicenseKey;

/// Google's production API root.
pub const PRODUCTION_API_ROOT: &str = "https://androidpublisher.googleapis.com/";

/// `[apps.<app_id>.google]`: one app's Google Play settings.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleAppConfig {
    /// The app's package name.
    pub package_name: String,
    /// The service-account key file's JSON (Play Console → API access), inline.
    pub service_account_json: String,
    /// The Play Console licence key (Monetization setup → Licensing), base64; enables the local
    /// signature check of `original_json`.
    #[serde(default)]
    pub license_key_base64: Option<String>,
    /// Android Publisher API root; the emulator's `{base}/google/` in tests.
    #[serde(default = "production_root")]
    pub api_root_url: String,
    /// The audience of the authenticated Pub/Sub push subscription: when set, every RTDN push
    /// must carry a valid Google OIDC token for it.
    #[serde(default)]
    pub push_audience: Option<String>,
    /// The push subscription's service account; when set, the token's verified email must be it.
    #[serde(default)]
    pub push_service_account: Option<String>,
    /// Where Google's OIDC keys are published.
    #[serde(default = "google_certs")]
    pub push_certs_url: String,
}

fn google_certs() -> String {
    crate::push::GOOGLE_CERTS_URL.to_owned()
}

fn production_root() -> String {
    PRODUCTION_API_ROOT.to_owned()
}

#[derive(Debug, Clone)]
struct GoogleApp {
    package: String,
    push: Option<Arc<crate::push::PushAuth>>,
    api: AndroidPublisher,
    license_key: Option<LicenseKey>,
}

/// The Google Play verifier for every configured app.
#[derive(Debug, Clone, Default)]
pub struct GoogleVerifier {
    apps: HashMap<AppId, GoogleApp>,
}

pub use iap_platform_common::ConfigError;

/// Google Play, as settings and messages name it.
const STORE: Store = Store {
    settings_key: "google",
    name: "Google Play",
};

impl GoogleApp {
    /// One app's API client, push authentication and licence key from its settings.
    fn new(config: &GoogleAppConfig, http: &reqwest::Client) -> Result<Self, String> {
        let key: ServiceAccountKey = serde_json::from_str(&config.service_account_json)
            .map_err(|e| format!("service_account_json is not a service-account key file: {e}"))?;
        let license_key = config
            .license_key_base64
            .as_deref()
            .map(LicenseKey::from_base64)
            .transpose()
            .map_err(|e| format!("license_key_base64: {e}"))?;
        let tokens = Arc::new(TokenSource::new(key, http.clone()));
        let api = AndroidPublisher::new(http.clone(), &config.api_root_url, tokens);
        Ok(Self {
            package: config.package_name.clone(),
            push: config.push_audience.clone().map(|audience| {
                Arc::new(crate::push::PushAuth::new(
                    audience,
                    config.push_service_account.clone(),
                    config.push_certs_url.clone(),
                    http.clone(),
                ))
            }),
            api,
            license_key,
        })
    }
}

impl GoogleVerifier {
    /// Builds the verifier from each app's settings.
    pub fn new<'a>(
        apps: impl IntoIterator<Item = (&'a AppId, &'a GoogleAppConfig)>,
    ) -> Result<Self, ConfigError> {
        let apps = build_apps(STORE, apps, GoogleApp::new)?;
        Ok(Self { apps })
    }

    /// The API client of an app (for confirmation and the scheduler).
    pub fn api(&self, app: &AppId) -> Option<(&str, &AndroidPublisher)> {
        self.apps.get(app).map(|a| (a.package.as_str(), &a.api))
    }
}

fn rejected(reason: RejectReason, code: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::rejected(reason, code, detail)
}

/// The local fast reject: the JSON must be signed by the licence key and name this token and
/// product of this package.
pub(crate) fn check_signed_data(
    package: &str,
    license_key: Option<&LicenseKey>,
    signed: &SignedData,
    token: &str,
    product: &ProductId,
) -> Result<(), StoreError> {
    let forged = license_key.is_some_and(|key| !key.verifies(&signed.data, &signed.signature));
    if forged {
        return Err(rejected(
            RejectReason::SignatureInvalid,
            "signature_invalid",
            "the purchase JSON is not signed by the licence key",
        ));
    }
    let json: Value = serde_json::from_str(&signed.data).map_err(|_| {
        rejected(
            RejectReason::Malformed,
            "original_json_malformed",
            "original_json is not JSON",
        )
    })?;
    if json["packageName"].as_str().is_some_and(|p| p != package) {
        return Err(rejected(
            RejectReason::BundleMismatch,
            "package_mismatch",
            "the purchase is for another package",
        ));
    }
    let json_token = json["purchaseToken"]
        .as_str()
        .or_else(|| json["token"].as_str());
    if json_token.is_some_and(|t| t != token) {
        return Err(rejected(
            RejectReason::Malformed,
            "token_mismatch",
            "original_json names another purchase token",
        ));
    }
    let json_product = json["productId"]
        .as_str()
        .or_else(|| json["productIds"][0].as_str());
    if json_product.is_some_and(|p| p != product.as_str()) {
        return Err(rejected(
            RejectReason::ProductMismatch,
            "product_mismatch",
            "original_json names another product",
        ));
    }
    Ok(())
}

fn time(value: &Value) -> Option<DateTime<Utc>> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn string(value: &Value) -> Option<String> {
    value.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

pub(crate) fn product_purchase(
    token: &str,
    product: &ProductId,
    v2: Value,
) -> Result<VerifiedPurchase, StoreError> {
    let line = v2["productLineItem"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["productId"] == product.as_str()))
        .ok_or_else(|| {
            rejected(
                RejectReason::ProductMismatch,
                "product_mismatch",
                "the purchase is for another product",
            )
        })?;
    let status = match v2["purchaseStateContext"]["purchaseState"].as_str() {
        Some("PURCHASED") => PurchaseStatus::Purchased,
        Some("PENDING") => PurchaseStatus::Pending,
        _ => PurchaseStatus::Cancelled,
    };
    let order_id =
        string(&v2["orderId"]).filter(|id| iap_domain::store_ids::order_id("orderId", id).is_ok());
    let offer = &line["productOfferDetails"];
    let mut quantity = offer["quantity"]
        .as_u64()
        .and_then(|q| u32::try_from(q).ok())
        .unwrap_or(1)
        .max(1);
    // A refund does not change `purchaseState`: Google lowers `refundableQuantity` (and lists
    // the purchase among voided purchases). Nothing left means nothing to grant; a partial
    // refund before redemption leaves only the rest to grant.
    let mut status = status;
    if let Some(left) = offer["refundableQuantity"]
        .as_u64()
        .and_then(|q| u32::try_from(q).ok())
    {
        if left == 0 && status == PurchaseStatus::Purchased {
            status = PurchaseStatus::Refunded {
                at: None,
                reason: Some("refundable_quantity_zero".to_owned()),
            };
        } else if left > 0 {
            quantity = quantity.min(left);
        }
    }
    Ok(VerifiedPurchase {
        platform: Platform::Google,
        environment: if v2.get("testPurchaseContext").is_some() {
            Environment::Sandbox
        } else {
            Environment::Production
        },
        // The replay key is Google's own id of the charge as Google returned it (one order per
        // purchase), not the text the client sent; only a purchase without an order (Google:
        // "may not be set if there is no order") falls back to the token, already checked
        // against Google's alphabet at the edge.
        store_transaction_id: order_id.clone().unwrap_or_else(|| token.to_owned()),
        original_transaction_id: None,
        purchase_token: Some(token.to_owned()),
        store_order_id: order_id,
        product_id: product.clone(),
        quantity,
        status,
        purchased_at: time(&v2["purchaseCompletionTime"]),
        expires_at: None,
        carried_order_id: string(&v2["obfuscatedExternalProfileId"]),
        store_account_id: string(&v2["obfuscatedExternalAccountId"]),
        is_trial: false,
        price: None,
        kind: None,
        linked_purchase_token: None,
        acknowledged: Some(v2["acknowledgementState"] == "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"),
        consumed: Some(offer["consumptionState"] == "CONSUMPTION_STATE_CONSUMED"),
        subscription_status: None,
        subscription_group: None,
        raw: v2,
        finish_withheld: false,
        latest_receipt: None,
    })
}

pub(crate) fn subscription_purchase(
    token: &str,
    product: &ProductId,
    v2: Value,
) -> Result<VerifiedPurchase, StoreError> {
    let line = v2["lineItems"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["productId"] == product.as_str()))
        .ok_or_else(|| {
            rejected(
                RejectReason::ProductMismatch,
                "product_mismatch",
                "the subscription is for another product",
            )
        })?;
    let state = v2["subscriptionState"].as_str().unwrap_or("");
    let (status, subscription_status) = match state {
        "SUBSCRIPTION_STATE_PENDING" => (PurchaseStatus::Pending, None),
        "SUBSCRIPTION_STATE_PENDING_PURCHASE_CANCELED" => (PurchaseStatus::Cancelled, None),
        "SUBSCRIPTION_STATE_IN_GRACE_PERIOD" => (
            PurchaseStatus::Purchased,
            Some(SubscriptionStatus::InGracePeriod),
        ),
        "SUBSCRIPTION_STATE_ON_HOLD" => {
            (PurchaseStatus::Purchased, Some(SubscriptionStatus::OnHold))
        }
        "SUBSCRIPTION_STATE_PAUSED" => {
            (PurchaseStatus::Purchased, Some(SubscriptionStatus::Paused))
        }
        "SUBSCRIPTION_STATE_EXPIRED" => {
            (PurchaseStatus::Purchased, Some(SubscriptionStatus::Expired))
        }
        _ => (PurchaseStatus::Purchased, Some(SubscriptionStatus::Active)),
    };
    // Each renewal is its own order: the order id of the paid period, not the token, is the
    // replay key. In grace or on hold Google is still collecting the renewal, and the
    // deprecated top-level `latestOrderId` names that unpaid order (as does
    // `renewalDeclined.pendingOrderId`): only `latestSuccessfulOrderId` names a paid period
    // there, and without it nothing is paid to grant.
    let collecting = matches!(
        state,
        "SUBSCRIPTION_STATE_IN_GRACE_PERIOD" | "SUBSCRIPTION_STATE_ON_HOLD"
    );
    let pending_order =
        string(&v2["inGracePeriodStateContext"]["renewalDeclined"]["pendingOrderId"])
            .or_else(|| string(&v2["onHoldStateContext"]["renewalDeclined"]["pendingOrderId"]));
    let order_id = string(&line["latestSuccessfulOrderId"]).or_else(|| {
        string(&v2["latestOrderId"]).filter(|id| !collecting && pending_order.as_ref() != Some(id))
    });
    let status = if collecting && order_id.is_none() {
        PurchaseStatus::Pending
    } else {
        status
    };
    let price = {
        let price = &line["autoRenewingPlan"]["recurringPrice"];
        // A price beyond i64 micros is no price Google sends; it is dropped, not wrapped.
        let micros = price["units"]
            .as_str()
            .and_then(|u| u.parse::<i64>().ok())
            .and_then(|units| units.checked_mul(1_000_000))
            .and_then(|micros| micros.checked_add(price["nanos"].as_i64().unwrap_or(0) / 1000));
        match (string(&price["currencyCode"]), micros) {
            (Some(currency), Some(amount_micros)) => Some(Money {
                currency,
                amount_micros,
            }),
            _ => None,
        }
    };
    let ids = &v2["externalAccountIdentifiers"];
    Ok(VerifiedPurchase {
        platform: Platform::Google,
        environment: if v2.get("testPurchase").is_some() {
            Environment::Sandbox
        } else {
            Environment::Production
        },
        store_transaction_id: order_id.clone().unwrap_or_else(|| token.to_owned()),
        original_transaction_id: None,
        purchase_token: Some(token.to_owned()),
        store_order_id: order_id,
        product_id: product.clone(),
        quantity: 1,
        status,
        purchased_at: time(&v2["startTime"]),
        expires_at: time(&line["expiryTime"]),
        carried_order_id: string(&ids["obfuscatedExternalProfileId"]),
        // Google names the paying Google account only for Subscribe with Google; otherwise the
        // account id is the one the app set.
        store_account_id: string(&v2["subscribeWithGoogleInfo"]["profileId"])
            .or_else(|| string(&ids["obfuscatedExternalAccountId"])),
        is_trial: line["offerPhase"].get("freeTrial").is_some(),
        price,
        kind: Some(ProductKind::AutoRenewable),
        linked_purchase_token: string(&v2["linkedPurchaseToken"]),
        acknowledged: Some(v2["acknowledgementState"] == "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"),
        consumed: None,
        subscription_status,
        subscription_group: None,
        raw: v2,
        finish_withheld: false,
        latest_receipt: None,
    })
}

impl GoogleVerifier {
    /// What Google says about the purchase a token names.
    async fn ask(
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

    /// The licence key refused `original_json`. Either the JSON is forged or edited (then Google
    /// does not know the purchase as the JSON describes it, and the refusal stands: `None`), or
    /// our key is the wrong one — Google confirms the very purchase the JSON describes, field by
    /// field — and refusing it for good would make the client finish a paid purchase: that is
    /// our configuration's fault, reported as such. Google unreachable: nothing decided.
    async fn forged_or_wrong_key(
        &self,
        app: &GoogleApp,
        token: &str,
        product: &ProductId,
        subscription: bool,
        signed: Option<&str>,
    ) -> Option<StoreError> {
        let purchase = match self.ask(app, token, product, subscription).await {
            Ok(purchase) => purchase,
            Err(e @ (StoreError::Unavailable { .. } | StoreError::Misconfigured(_))) => {
                return Some(e);
            }
            Err(StoreError::Rejected { .. }) => return None,
        };
        let json: Value = serde_json::from_str(signed?).ok()?;
        genuine_json(&app.package, token, product, &json, &purchase).then(|| {
            StoreError::Misconfigured(format!(
                "the licence key (license_key_base64) of package {} does not verify a purchase \
                 Google confirms: the key is the wrong one",
                app.package
            ))
        })
    }
}

/// The keys `Purchase.getOriginalJson()` holds (platforms/google.md §4).
const ORIGINAL_JSON_KEYS: &[&str] = &[
    "orderId",
    "packageName",
    "productId",
    "productIds",
    "purchaseTime",
    "purchaseState",
    "purchaseToken",
    "token",
    "quantity",
    "acknowledged",
    "autoRenewing",
    "obfuscatedAccountId",
    "obfuscatedProfileId",
    "developerPayload",
];

/// Whether `json` says exactly what Google says of the purchase: only Google's keys, and the
/// same package, token, product, order, quantity, payment state and account ids. An edited JSON
/// (a client changing what it bought) differs somewhere; a genuine one refused by the licence
/// key means the key is the wrong one.
fn genuine_json(
    package: &str,
    token: &str,
    product: &ProductId,
    json: &Value,
    google: &VerifiedPurchase,
) -> bool {
    let Some(fields) = json.as_object() else {
        return false;
    };
    let text = |key: &str| json[key].as_str();
    let json_product = text("productId").or_else(|| json["productIds"][0].as_str());
    let json_token = text("purchaseToken").or_else(|| text("token"));
    let pending = json["purchaseState"].as_i64() == Some(4);
    fields
        .keys()
        .all(|k| ORIGINAL_JSON_KEYS.contains(&k.as_str()))
        && text("packageName") == Some(package)
        && json_token == Some(token)
        && json_product == Some(product.as_str())
        && text("orderId") == google.store_order_id.as_deref()
        && json["quantity"].as_u64().unwrap_or(1) == u64::from(google.quantity)
        && pending == (google.status == PurchaseStatus::Pending)
        && text("obfuscatedProfileId") == google.carried_order_id.as_deref()
        && text("obfuscatedAccountId") == google.store_account_id.as_deref()
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

/// A Google subscription is known by its purchase token.
fn subscription_ref(app_id: &AppId, token: String) -> SubscriptionRef {
    SubscriptionRef {
        app_id: app_id.clone(),
        platform: Platform::Google,
        key: token.clone(),
        product_id: None,
        purchase_token: Some(token),
        environment: None,
        receipt: None,
    }
}

/// The store's view of a subscription from `subscriptionsv2.get`. Without a product (RTDN
/// subscription notifications no longer name one) the first line item's is taken.
fn subscription_snapshot(
    token: &str,
    product: Option<&ProductId>,
    v2: Value,
) -> Result<SubscriptionSnapshot, StoreError> {
    let items = v2["lineItems"].as_array().cloned().unwrap_or_default();
    let product = match product {
        Some(p) => p.clone(),
        None => items
            .first()
            .and_then(|i| i["productId"].as_str())
            .and_then(|p| ProductId::parse(p).ok())
            .ok_or_else(|| {
                rejected(
                    RejectReason::Malformed,
                    "field_missing",
                    "the subscription has no line item",
                )
            })?,
    };
    let line = items
        .iter()
        .find(|i| i["productId"] == product.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    let latest = subscription_purchase(token, &product, v2)?;
    let state = match (&latest.status, latest.subscription_status) {
        // Pending with a status: in grace or on hold with no paid period named (nothing to
        // grant), the entitlement still as Google says.
        (PurchaseStatus::Purchased | PurchaseStatus::Pending, Some(status)) => status.into(),
        (PurchaseStatus::Refunded { .. }, _) => SubscriptionState::Revoked,
        // Pending, or a pending purchase cancelled: no entitlement.
        _ => SubscriptionState::Expired,
    };
    let plan = &line["autoRenewingPlan"];
    Ok(SubscriptionSnapshot {
        // In grace Google moves expiryTime forward with the grace period.
        grace_until: (state == SubscriptionState::InGrace)
            .then_some(latest.expires_at)
            .flatten(),
        expires_at: latest.expires_at,
        auto_renew: plan["autoRenewEnabled"].as_bool(),
        auto_renew_product_id: None,
        price_change_state: string(&plan["priceChangeDetails"]["priceChangeState"]),
        state,
        latest,
    })
}

/// Confirmation at Google Play after the grant: consumables are consumed (which also
/// acknowledges them), everything else acknowledged. Google refunds a purchase left
/// unacknowledged for three days, so this step is retried until it succeeds. A refusal is
/// checked against the purchase's state: a retry after a lost reply finds it already done.
#[async_trait]
impl iap_domain::ports::StoreConfirmer for GoogleVerifier {
    fn platform(&self) -> Platform {
        Platform::Google
    }

    async fn confirm(
        &self,
        purchase: &iap_domain::ports::PurchaseToConfirm,
    ) -> Result<iap_domain::ports::ConfirmOutcome, StoreError> {
        use iap_domain::ports::ConfirmOutcome;
        let (package, api) = self.api(&purchase.app_id).ok_or_else(|| {
            StoreError::Misconfigured(format!("no Google settings for app {}", purchase.app_id))
        })?;
        let token = purchase.purchase_token.as_deref().ok_or_else(|| {
            StoreError::Misconfigured("a Google purchase without a purchase token".into())
        })?;
        let product = purchase.product_id.as_str();
        let subscription = purchase.kind.is_subscription();
        let consume = purchase.kind == ProductKind::Consumable;
        let result = if consume {
            api.consume(package, product, token).await
        } else if subscription {
            api.acknowledge_subscription(package, product, token).await
        } else {
            api.acknowledge_product(package, product, token).await
        };
        match result {
            Ok(_) => Ok(ConfirmOutcome::Confirmed),
            Err(StoreError::Rejected { .. }) if !subscription => {
                let state = api.product_v2(package, token).await?;
                let line = state["productLineItem"]
                    .as_array()
                    .and_then(|items| items.iter().find(|i| i["productId"] == product));
                let consumed = line.is_some_and(|l| {
                    l["productOfferDetails"]["consumptionState"] == "CONSUMPTION_STATE_CONSUMED"
                });
                let acknowledged =
                    state["acknowledgementState"] == "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED";
                if (consume && consumed) || (!consume && acknowledged) {
                    Ok(ConfirmOutcome::AlreadyConfirmed)
                } else {
                    Err(StoreError::unavailable(format!(
                        "Google refused to {} the purchase and it is not done yet",
                        if consume { "consume" } else { "acknowledge" }
                    )))
                }
            }
            Err(StoreError::Rejected { .. }) => {
                let state = api.subscription_v2(package, token).await?;
                if state["acknowledgementState"] == "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED" {
                    Ok(ConfirmOutcome::AlreadyConfirmed)
                } else {
                    Err(StoreError::unavailable(
                        "Google refused to acknowledge the subscription and it is not done yet",
                    ))
                }
            }
            Err(other) => Err(other),
        }
    }
}

/// Longest Pub/Sub message id accepted (they are decimal numbers of about 16 digits).
const MAX_MESSAGE_ID: usize = 64;

/// How far back Google lets `voidedpurchases.list` look (platforms/google.md §1.5).
const VOIDED_WINDOW: chrono::Duration = chrono::Duration::days(30);

impl GoogleVerifier {
    /// The voided purchases Google recorded in the last 30 days for one purchase token (and,
    /// when given, one order id).
    async fn voided_for(
        &self,
        google: &GoogleApp,
        token: &str,
        order: Option<&str>,
    ) -> Result<Vec<Value>, StoreError> {
        let to = Utc::now();
        // A minute inside Google's limit, so the clock of the request never crosses it.
        let from = to - VOIDED_WINDOW + chrono::Duration::minutes(1);
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
            let items = reply["voidedPurchases"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["purchaseToken"] == token)
                .filter(|v| order.is_none_or(|o| v["orderId"] == o))
                .cloned()
                .collect();
            let next = string(&reply["tokenPagination"]["nextPageToken"]);
            Ok(Page { items, next })
        })
        .await
    }
}

/// Real-time developer notifications, as Pub/Sub pushes them:
/// `{"message": {"data": base64(DeveloperNotification), "messageId" | "message_id", …},
/// "subscription": …}`. The message id is the inbox key. A one-time purchase is looked up at
/// Google before anything is granted (a notification only says that something changed); a voided
/// purchase is revoked under the id the notification names (the purchase token for one-time
/// products, found among a purchase's identities; the order id for subscriptions).
#[async_trait]
impl iap_domain::notifications::NotificationDecoder for GoogleVerifier {
    fn platform(&self) -> Platform {
        Platform::Google
    }

    async fn authenticate(
        &self,
        decoded: &iap_domain::notifications::DecodedNotification,
        authorization: Option<&str>,
    ) -> Result<(), StoreError> {
        let push = decoded
            .inbound
            .app_id
            .as_ref()
            .and_then(|app| self.apps.get(app))
            .and_then(|app| app.push.clone());
        match push {
            Some(push) => push.verify(authorization).await,
            None => Ok(()),
        }
    }

    /// A voided purchase or SUBSCRIPTION_REVOKED is only a claim: anyone who can reach the push
    /// endpoint can write one (unless push authentication is on). Google's own record decides:
    /// the voided purchases list (refunds, chargebacks and revocations, one-time and
    /// subscription, of the last 30 days), and for a one-time product also productsv2 (a refund
    /// leaves `refundableQuantity` 0), since the list is known to miss some refunds.
    async fn confirm_refund(
        &self,
        decoded: &iap_domain::notifications::DecodedNotification,
    ) -> Result<iap_domain::notifications::RefundConfirmation, StoreError> {
        use iap_domain::notifications::{RefundConfirmation, StoreEvent};
        let StoreEvent::Refunded {
            store_transaction_id,
            revoked,
            subscription,
            ..
        } = &decoded.event
        else {
            return Ok(RefundConfirmation::Unconfirmed {
                reason: "not_a_refund",
                detail: "the notification claims no refund".into(),
            });
        };
        let google = decoded
            .inbound
            .app_id
            .as_ref()
            .and_then(|app| self.apps.get(app))
            .ok_or_else(|| {
                StoreError::Misconfigured("no Google Play settings for the app".into())
            })?;
        // One-time: keyed by the token. Subscription void: the order id, with the token in the
        // reference. SUBSCRIPTION_REVOKED: the token.
        let token = subscription
            .as_ref()
            .and_then(|s| s.purchase_token.clone())
            .unwrap_or_else(|| store_transaction_id.clone());
        let order = (*store_transaction_id != token).then_some(store_transaction_id.as_str());
        let voided = self.voided_for(google, &token, order).await?;
        // A one-time purchase: how much of it Google refunded (quantity-based partial refunds
        // take back only their units). productsv2 also confirms a refund the list misses.
        let product_share = if subscription.is_none() {
            match google.api.product_v2(&google.package, &token).await {
                Ok(v2) => Some((
                    crate::voided::share_from_product(&v2),
                    string(&v2["orderId"]),
                )),
                // Google does not know the token: nothing of ours can be behind it.
                Err(StoreError::Rejected { .. }) if voided.is_empty() => {
                    return Ok(RefundConfirmation::Unconfirmed {
                        reason: "unknown_at_store",
                        detail: "Google does not know the purchase token".into(),
                    });
                }
                Err(StoreError::Rejected { .. }) => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        if !voided.is_empty() {
            // A subscription's token spans every period: a voided period is taken back by its
            // own order id, and the token is named only when the whole subscription was revoked
            // (platforms/google.md §1.5: with subscriptions, key on orderId).
            let mut store_keys = Vec::new();
            if subscription.is_none() || order.is_none() {
                store_keys.push(token.clone());
            }
            if subscription.is_none() || order.is_some() {
                store_keys.extend(voided.iter().filter_map(|v| string(&v["orderId"])));
            }
            store_keys.sort();
            store_keys.dedup();
            let share = match &product_share {
                Some((Some(share), _)) => *share,
                _ if subscription.is_some() => RefundShare::Whole,
                _ => crate::voided::share_from_records(&voided),
            };
            return Ok(RefundConfirmation::Confirmed {
                store_keys,
                revoked: *revoked || voided.iter().any(crate::voided::is_revocation),
                share,
                cause: crate::voided::cause(&voided),
            });
        }
        if let Some((Some(share), order_id)) = product_share {
            let mut store_keys = vec![token.clone()];
            store_keys.extend(order_id);
            return Ok(RefundConfirmation::Confirmed {
                store_keys,
                revoked: *revoked,
                share,
                cause: RefundCause::default(),
            });
        }
        Ok(RefundConfirmation::Unconfirmed {
            reason: "not_voided_at_store",
            detail: "Google lists no voided purchase for it in the last 30 days".into(),
        })
    }

    async fn decode(
        &self,
        raw_body: &str,
    ) -> Result<iap_domain::notifications::DecodedNotification, StoreError> {
        use base64::Engine;
        use iap_domain::notifications::{DecodedNotification, InboundNotification, StoreEvent};
        let malformed = |detail: &str| rejected(RejectReason::Malformed, "malformed", detail);
        let envelope: Value =
            serde_json::from_str(raw_body).map_err(|_| malformed("body is not JSON"))?;
        let message = &envelope["message"];
        let message_id = string(&message["messageId"])
            .or_else(|| string(&message["message_id"]))
            .ok_or_else(|| malformed("message.messageId is missing"))?;
        if message_id.len() > MAX_MESSAGE_ID || !message_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(malformed("message.messageId is not a Pub/Sub message id"));
        }
        let data = message["data"]
            .as_str()
            .ok_or_else(|| malformed("message.data is missing"))?;
        // The inbox key is the message id *and* what the message says: Pub/Sub redelivers the
        // same data under the same id (a duplicate), while a forged push that takes an id Google
        // will use later occupies only its own key and never shadows Google's delivery.
        let id = format!("{message_id}:{}", sha256_hex(data.as_bytes()));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|_| malformed("message.data is not base64"))?;
        let n: Value = serde_json::from_slice(&decoded)
            .map_err(|_| malformed("message.data is not a DeveloperNotification"))?;
        let package = n["packageName"].as_str().unwrap_or_default();
        let app_id = self
            .apps
            .iter()
            .find(|(_, a)| a.package == package)
            .map(|(id, _)| id.clone())
            .ok_or_else(|| {
                rejected(
                    RejectReason::BundleMismatch,
                    "package_not_configured",
                    format!("no app is configured for package {package:?}"),
                )
            })?;
        let event_at = match &n["eventTimeMillis"] {
            Value::String(s) => s.parse::<i64>().ok(),
            other => other.as_i64(),
        }
        .and_then(chrono::DateTime::from_timestamp_millis);
        let (kind, subject, event) = if let Some(one) = n.get("oneTimeProductNotification") {
            let token = string(&one["purchaseToken"]);
            let sku = string(&one["sku"]);
            let kind = format!("ONE_TIME_PRODUCT/{}", one["notificationType"]);
            let event = match (one["notificationType"].as_i64(), &token, &sku) {
                (Some(1), Some(token), Some(sku)) => StoreEvent::Purchased {
                    app_id: app_id.clone(),
                    proof: PurchaseProof::Google {
                        purchase_token: token.clone(),
                        product_id: ProductId::parse(sku.as_str())
                            .map_err(|e| malformed(&e.to_string()))?,
                        signed_data: None,
                    },
                    carried_order_id: None,
                },
                // CANCELED: a pending purchase dropped, or a paid one revoked; the store says
                // which.
                (Some(2), Some(token), Some(sku)) => StoreEvent::Recheck {
                    app_id: app_id.clone(),
                    proof: PurchaseProof::Google {
                        purchase_token: token.clone(),
                        product_id: ProductId::parse(sku.as_str())
                            .map_err(|e| malformed(&e.to_string()))?,
                        signed_data: None,
                    },
                },
                _ => StoreEvent::Ignored(format!("{kind}: not a type this version knows")),
            };
            (kind, token, event)
        } else if let Some(voided) = n.get("voidedPurchaseNotification") {
            let subscription = voided["productType"].as_i64() == Some(1);
            let key = if subscription {
                string(&voided["orderId"])
            } else {
                string(&voided["purchaseToken"])
            }
            .ok_or_else(|| malformed("voidedPurchaseNotification without its ids"))?;
            // `refundType` 2 (a quantity-based partial refund) is only the notification's word:
            // confirm_refund reads how much Google refunded from Google's own records.
            let event = StoreEvent::Refunded {
                platform: Platform::Google,
                share: RefundShare::Whole,
                cause: RefundCause::default(),
                store_transaction_id: key.clone(),
                revoked: false,
                subscription: if subscription {
                    string(&voided["purchaseToken"]).map(|token| subscription_ref(&app_id, token))
                } else {
                    None
                },
            };
            ("VOIDED_PURCHASE".to_owned(), Some(key), event)
        } else if let Some(sub) = n.get("subscriptionNotification") {
            // Every type only says the state changed (platforms/google.md §3): the refresh
            // reads subscriptionsv2 and applies what it says.
            let kind = format!("SUBSCRIPTION/{}", sub["notificationType"]);
            let token = string(&sub["purchaseToken"])
                .ok_or_else(|| malformed("subscriptionNotification.purchaseToken is missing"))?;
            let event = match sub["notificationType"].as_i64() {
                // SUBSCRIPTION_REVOKED: refunded or charged back; the latest period is taken
                // back now, then the subscription refreshed.
                Some(12) => StoreEvent::Refunded {
                    platform: Platform::Google,
                    share: RefundShare::Whole,
                    cause: RefundCause::default(),
                    store_transaction_id: token.clone(),
                    revoked: true,
                    subscription: Some(subscription_ref(&app_id, token.clone())),
                },
                _ => StoreEvent::SubscriptionChanged {
                    subscription: subscription_ref(&app_id, token.clone()),
                    paid: None,
                    carried_order_id: None,
                },
            };
            (kind, Some(token), event)
        } else if n.get("testNotification").is_some() {
            (
                "TEST".to_owned(),
                None,
                StoreEvent::Ignored("test notification".into()),
            )
        } else {
            (
                "UNKNOWN".to_owned(),
                None,
                StoreEvent::Ignored("a notification kind this version does not know".into()),
            )
        };
        Ok(DecodedNotification {
            inbound: InboundNotification {
                platform: Platform::Google,
                notification_id: id,
                app_id: Some(app_id),
                notification_type: kind,
                subject,
                raw_body: raw_body.to_owned(),
                event_at,
            },
            event,
        })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn in_state(state: &str, successful: Option<&str>) -> Value {
        let mut line = serde_json::json!({
            "productId": "vip_monthly",
            "expiryTime": "2099-01-01T00:00:00Z",
        });
        if let Some(id) = successful {
            line["latestSuccessfulOrderId"] = serde_json::json!(id);
        }
        serde_json::json!({
            "subscriptionState": state,
            "startTime": "2026-01-01T00:00:00Z",
            // Deprecated, still sent: the newest order, here the renewal Google is collecting.
            "latestOrderId": "GPA.1111-2222-3333-44444..1",
            "inGracePeriodStateContext": { "renewalDeclined": { "pendingOrderId": "GPA.1111-2222-3333-44444..1" } },
            "lineItems": [line],
        })
    }

    #[test]
    fn in_grace_or_on_hold_the_unpaid_renewal_order_is_never_the_period_granted() {
        let product = ProductId::parse("vip_monthly").unwrap();
        for state in [
            "SUBSCRIPTION_STATE_IN_GRACE_PERIOD",
            "SUBSCRIPTION_STATE_ON_HOLD",
        ] {
            // The paid period is the one named.
            let paid = subscription_purchase(
                "tok",
                &product,
                in_state(state, Some("GPA.1111-2222-3333-44444")),
            )
            .unwrap();
            assert_eq!(paid.store_transaction_id, "GPA.1111-2222-3333-44444");
            // No paid period named: the unpaid renewal is not taken for one.
            let unpaid = subscription_purchase("tok", &product, in_state(state, None)).unwrap();
            assert_ne!(unpaid.store_transaction_id, "GPA.1111-2222-3333-44444..1");
            assert_eq!(unpaid.status, PurchaseStatus::Pending, "{state}");
        }
        // Active (the renewal collected), the latest order is the paid one.
        let mut renewed = in_state("SUBSCRIPTION_STATE_ACTIVE", None);
        renewed
            .as_object_mut()
            .unwrap()
            .remove("inGracePeriodStateContext");
        let active = subscription_purchase("tok", &product, renewed).unwrap();
        assert_eq!(active.store_transaction_id, "GPA.1111-2222-3333-44444..1");
        assert_eq!(active.status, PurchaseStatus::Purchased);
    }
}
