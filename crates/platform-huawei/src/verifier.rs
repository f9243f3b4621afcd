//! `HuaweiVerifier`: the domain's `PurchaseVerifier` for Huawei IAP. The client's
//! `InAppPurchaseData` must be signed by the app's key (a local fast reject); the Order service
//! (one-time products) or the Subscription service (subscriptions) then gives the state, in data
//! that is itself signature-checked before use.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use iap_domain::ports::{PurchaseVerifier, StoreError, VerifyContext};
use iap_domain::purchase::{PurchaseProof, PurchaseStatus, SignedData, VerifiedPurchase};
use iap_domain::subscriptions::{SubscriptionRef, SubscriptionSnapshot, SubscriptionState};
use iap_domain::{AppId, Environment, Money, Platform, ProductId, ProductKind, RejectReason};

use iap_platform_common::{Page, Store, build_apps, collect_pages, sha256_hex};

use crate::api::{self, HuaweiApi, Site, SiteRoots, response_code};
use crate::signature::{IapPublicKey, PSS};

/// `[apps.<app_id>.huawei]`: one app's Huawei IAP settings.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct HuaweiAppConfig {
    /// AppGallery Connect app id (the OAuth client id).
    pub app_id: String,
    /// The app's OAuth client secret.
    pub client_secret: String,
    /// The IAP public key (base64 DER SPKI, RSA-3072).
    pub public_key_base64: String,
    /// Ask the stores for PSS signatures on server answers.
    #[serde(default)]
    pub prefer_pss: bool,
    /// OAuth token endpoint.
    #[serde(default = "token_url")]
    pub token_url: String,
    /// Order service site root.
    #[serde(default = "orders_root")]
    pub orders_root_url: String,
    /// Subscription service site root.
    #[serde(default = "subscriptions_root")]
    pub subscriptions_root_url: String,
    /// Order service root of the AppTouch site, for purchases of AppTouch accounts
    /// (`accountFlag` 1), which no other site knows.
    #[serde(default = "apptouch_orders_root")]
    pub apptouch_orders_root_url: String,
    /// Subscription service root of the AppTouch site.
    #[serde(default = "apptouch_subscriptions_root")]
    pub apptouch_subscriptions_root_url: String,
}

fn token_url() -> String {
    api::TOKEN_URL.to_owned()
}
fn orders_root() -> String {
    api::ORDERS_ROOT.to_owned()
}
fn subscriptions_root() -> String {
    api::SUBSCRIPTIONS_ROOT.to_owned()
}
fn apptouch_orders_root() -> String {
    api::APPTOUCH_ORDERS_ROOT.to_owned()
}
fn apptouch_subscriptions_root() -> String {
    api::APPTOUCH_SUBSCRIPTIONS_ROOT.to_owned()
}

#[derive(Debug, Clone)]
struct HuaweiApp {
    agc_app_id: String,
    key: IapPublicKey,
    api: Arc<HuaweiApi>,
    prefer_pss: bool,
}

/// The Huawei verifier for every configured app.
#[derive(Debug, Clone, Default)]
pub struct HuaweiVerifier {
    apps: HashMap<AppId, HuaweiApp>,
}

pub use iap_platform_common::ConfigError;

/// Huawei IAP, as settings and messages name it.
const STORE: Store = Store {
    settings_key: "huawei",
    name: "Huawei",
};

impl HuaweiApp {
    /// One app's key and services from its settings.
    fn new(c: &HuaweiAppConfig, http: &reqwest::Client) -> Result<Self, String> {
        let key = IapPublicKey::from_base64(&c.public_key_base64)
            .map_err(|problem| format!("public_key_base64: {problem}"))?;
        let api = HuaweiApi::new(
            http.clone(),
            c.app_id.clone(),
            c.client_secret.clone(),
            c.token_url.clone(),
            SiteRoots {
                orders: c.orders_root_url.clone(),
                subscriptions: c.subscriptions_root_url.clone(),
            },
            SiteRoots {
                orders: c.apptouch_orders_root_url.clone(),
                subscriptions: c.apptouch_subscriptions_root_url.clone(),
            },
        );
        Ok(Self {
            agc_app_id: c.app_id.clone(),
            key,
            api: Arc::new(api),
            prefer_pss: c.prefer_pss,
        })
    }
}

impl HuaweiVerifier {
    /// Builds the verifier from each app's settings.
    pub fn new<'a>(
        apps: impl IntoIterator<Item = (&'a AppId, &'a HuaweiAppConfig)>,
    ) -> Result<Self, ConfigError> {
        let apps = build_apps(STORE, apps, HuaweiApp::new)?;
        Ok(Self { apps })
    }

    /// The services of an app (for confirmation and the scheduler).
    pub fn api(&self, app: &AppId) -> Option<Arc<HuaweiApi>> {
        self.apps.get(app).map(|a| a.api.clone())
    }
}

fn rejected(reason: RejectReason, code: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::rejected(reason, code, detail)
}

/// Signature-checks signed data and parses it.
pub(crate) fn signed_json(
    key: &IapPublicKey,
    data: &str,
    signature: &str,
    algorithm: Option<&str>,
) -> Result<Value, StoreError> {
    if !key.verifies(data, signature, algorithm) {
        return Err(rejected(
            RejectReason::SignatureInvalid,
            "signature_invalid",
            "InAppPurchaseData is not signed by the app's key",
        ));
    }
    serde_json::from_str(data).map_err(|_| {
        rejected(
            RejectReason::Malformed,
            "purchase_data_malformed",
            "InAppPurchaseData is not JSON",
        )
    })
}

fn string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// Maps a `responseCode` other than 0 (platforms/huawei.md §3).
fn refusal(code: &str, message: &str) -> StoreError {
    let detail = format!(
        "Huawei answered responseCode {code}: {}",
        message.chars().take(200).collect::<String>()
    );
    match code {
        "5" => rejected(RejectReason::Malformed, "invalid_parameter", detail),
        "6" => StoreError::Misconfigured(detail),
        "8" | "12" => rejected(
            RejectReason::NotFoundAtStore,
            "unknown_purchase_token",
            detail,
        ),
        "11" => rejected(RejectReason::NotPaid, "account_abnormal", detail),
        _ => StoreError::unavailable(detail),
    }
}

pub(crate) fn to_verified(
    token: &str,
    product: &ProductId,
    data: Value,
    consumed_known: Option<bool>,
) -> Result<VerifiedPurchase, StoreError> {
    let status = match number(&data["purchaseState"]) {
        Some(0) => PurchaseStatus::Purchased,
        Some(3) => PurchaseStatus::Pending,
        Some(2) => PurchaseStatus::Refunded {
            at: None,
            reason: None,
        },
        _ => PurchaseStatus::Cancelled,
    };
    let kind = match number(&data["kind"]) {
        Some(0) => Some(ProductKind::Consumable),
        Some(1) => Some(ProductKind::NonConsumable),
        Some(2) => Some(ProductKind::AutoRenewable),
        Some(3) => Some(ProductKind::NonRenewing),
        _ => None,
    };
    let order_id = string(&data["orderId"]).ok_or_else(|| {
        rejected(
            RejectReason::Malformed,
            "field_missing",
            "InAppPurchaseData has no orderId",
        )
    })?;
    // price is the real price × 100; Money carries micros.
    let price = match (string(&data["currency"]), number(&data["price"])) {
        (Some(currency), Some(hundredths)) => Some(Money {
            currency,
            amount_micros: hundredths.saturating_mul(10_000),
        }),
        _ => None,
    };
    let millis = |v: &Value| number(v).and_then(chrono::DateTime::from_timestamp_millis);
    Ok(VerifiedPurchase {
        platform: Platform::Huawei,
        environment: if number(&data["purchaseType"]) == Some(0) {
            Environment::Sandbox
        } else {
            Environment::Production
        },
        store_transaction_id: order_id.clone(),
        original_transaction_id: string(&data["subscriptionId"]),
        purchase_token: Some(token.to_owned()),
        store_order_id: Some(order_id),
        product_id: product.clone(),
        quantity: number(&data["quantity"])
            .and_then(|q| u32::try_from(q).ok())
            .unwrap_or(1)
            .max(1),
        status,
        purchased_at: millis(&data["purchaseTime"]),
        expires_at: millis(&data["expirationDate"]),
        carried_order_id: string(&data["developerPayload"]),
        store_account_id: None,
        is_trial: number(&data["trialFlag"]) == Some(1),
        price,
        kind,
        linked_purchase_token: None,
        acknowledged: None,
        consumed: consumed_known.or_else(|| number(&data["consumptionState"]).map(|c| c == 1)),
        subscription_status: None,
        subscription_group: string(&data["productGroup"]),
        raw: data,
        finish_withheld: false,
        latest_receipt: None,
    })
}

/// Signed purchase data must be this app's: its `applicationId` is the configured AppGallery
/// Connect app id (an app sharing a signing key with another, or a store answer for another app,
/// is not a purchase of this one). Data without the field is judged by its signature alone.
fn check_app(app: &HuaweiApp, data: &Value) -> Result<(), StoreError> {
    match string(&data["applicationId"]) {
        Some(id) if id != app.agc_app_id => Err(rejected(
            RejectReason::BundleMismatch,
            "app_mismatch",
            "the purchase is for another AppGallery app",
        )),
        _ => Ok(()),
    }
}

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

/// A Huawei subscription's state from its InAppPurchaseData: refunded (`purchaseState` 2),
/// valid (`subIsvalid`) within the period or within `graceExpirationTime`, or not valid while
/// Huawei still retries billing (`renewStatus` 1: on hold) or for good (expired).
fn subscription_snapshot(latest: VerifiedPurchase) -> SubscriptionSnapshot {
    let now = chrono::Utc::now();
    let data = &latest.raw;
    let millis = |v: &Value| number(v).and_then(chrono::DateTime::from_timestamp_millis);
    let grace_until = millis(&data["graceExpirationTime"]).filter(|g| *g > now);
    let valid = data["subIsvalid"].as_bool().unwrap_or(false);
    let renewing = number(&data["renewStatus"]) == Some(1);
    let state = match (&latest.status, valid) {
        (PurchaseStatus::Refunded { .. }, _) => SubscriptionState::Revoked,
        (PurchaseStatus::Purchased, true)
            if grace_until.is_some() && latest.expires_at.is_none_or(|e| e <= now) =>
        {
            SubscriptionState::InGrace
        }
        (PurchaseStatus::Purchased, true) => SubscriptionState::Active,
        (PurchaseStatus::Purchased, false) if renewing => SubscriptionState::OnHold,
        _ => SubscriptionState::Expired,
    };
    SubscriptionSnapshot {
        state,
        expires_at: latest.expires_at,
        grace_until,
        auto_renew: Some(renewing),
        auto_renew_product_id: None,
        price_change_state: number(&data["priceConsentStatus"]).map(|s| s.to_string()),
        latest,
    }
}

/// Confirmation at Huawei after the grant: the Order service's confirm, which consumes a
/// consumable and completes the purchase. responseCode 9 means it was already confirmed (a
/// retry after a lost reply). Subscriptions need no confirmation.
#[async_trait]
impl iap_domain::ports::StoreConfirmer for HuaweiVerifier {
    fn platform(&self) -> Platform {
        Platform::Huawei
    }

    async fn confirm(
        &self,
        purchase: &iap_domain::ports::PurchaseToConfirm,
    ) -> Result<iap_domain::ports::ConfirmOutcome, StoreError> {
        use iap_domain::ports::ConfirmOutcome;
        if purchase.kind.is_subscription() {
            return Ok(ConfirmOutcome::NotApplicable);
        }
        let api = self.api(&purchase.app_id).ok_or_else(|| {
            StoreError::Misconfigured(format!("no Huawei settings for app {}", purchase.app_id))
        })?;
        let token = purchase.purchase_token.as_deref().ok_or_else(|| {
            StoreError::Misconfigured("a Huawei purchase without a purchase token".into())
        })?;
        let reply = api.confirm(token, purchase.product_id.as_str()).await?;
        match response_code(&reply).as_str() {
            "0" => Ok(ConfirmOutcome::Confirmed),
            "9" => Ok(ConfirmOutcome::AlreadyConfirmed),
            code => Err(StoreError::unavailable(format!(
                "Huawei confirm answered responseCode {code}"
            ))),
        }
    }
}

/// How far back a notification's refund is looked up in the cancelled list: the window Huawei's
/// own demos and client libraries query (docs/stores.md).
const CANCELLED_WINDOW: chrono::Duration = chrono::Duration::days(30);

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

    /// The Order service's cancelled-list entries of the last 30 days (one-time products and
    /// subscriptions) for one purchase token or order id.
    async fn cancelled_for(
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
async fn cancelled_between(
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

/// Huawei IAP server notifications v2: `{version: "v2", eventType: "ORDER" | "SUBSCRIPTION",
/// notifyTime, applicationId, orderNotification | subNotification}`. ORDER events are unsigned,
/// so they are only a hint: a payment (type 1) is re-queried with the Order service, whose signed
/// answer becomes the proof; a refund (type 2) is a claim the cancelled list must confirm. There
/// is no event id, so the inbox key is the event and notification type with a digest of the body:
/// Huawei's resend of the same event is a duplicate, and a forged event never occupies the key of
/// a real one.
#[async_trait]
impl iap_domain::notifications::NotificationDecoder for HuaweiVerifier {
    fn platform(&self) -> Platform {
        Platform::Huawei
    }

    /// An ORDER refund event is unsigned: anyone can send one. A subscription CANCEL is signed,
    /// but may be replayed. Either is acted on only when the Order service's cancelled list
    /// (refunds, chargebacks, revocations; one-time products and subscriptions) shows it.
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
        let huawei = decoded
            .inbound
            .app_id
            .as_ref()
            .and_then(|app| self.apps.get(app))
            .ok_or_else(|| StoreError::Misconfigured("no Huawei settings for the app".into()))?;
        // ORDER refund: keyed by the purchase token. Subscription CANCEL: by the order id.
        let (token, order) = match subscription {
            Some(s) => (
                s.purchase_token.clone().unwrap_or_default(),
                Some(store_transaction_id.as_str()),
            ),
            None => (store_transaction_id.clone(), None),
        };
        let cancelled = self.cancelled_for(huawei, &token, order).await?;
        if cancelled.is_empty() {
            return Ok(RefundConfirmation::Unconfirmed {
                reason: "not_cancelled_at_store",
                detail: "Huawei's cancelled list shows no refund for it in the last 30 days".into(),
            });
        }
        // A subscription's token spans its renewals: a refunded period is taken back by its own
        // order id only. A one-time purchase is known by both.
        let mut store_keys = Vec::new();
        for c in &cancelled {
            store_keys.extend(string(&c["orderId"]));
            if subscription.is_none() {
                store_keys.extend(string(&c["purchaseToken"]));
            }
        }
        store_keys.sort();
        store_keys.dedup();
        Ok(RefundConfirmation::Confirmed {
            store_keys,
            // cancelledReason 5 fraud, 6 chargeback.
            revoked: *revoked
                || cancelled
                    .iter()
                    .any(|c| matches!(number(&c["cancelledReason"]), Some(5 | 6))),
            share: iap_domain::refunds::RefundShare::Whole,
            cause: iap_domain::refunds::RefundCause::default(),
        })
    }

    async fn decode(
        &self,
        raw_body: &str,
    ) -> Result<iap_domain::notifications::DecodedNotification, StoreError> {
        use iap_domain::notifications::{DecodedNotification, InboundNotification, StoreEvent};
        let malformed = |detail: &str| rejected(RejectReason::Malformed, "malformed", detail);
        let body: Value =
            serde_json::from_str(raw_body).map_err(|_| malformed("body is not JSON"))?;
        let application = string(&body["applicationId"]).unwrap_or_default();
        let (app_id, app) = self
            .apps
            .iter()
            .find(|(_, a)| a.agc_app_id == application)
            .ok_or_else(|| {
                rejected(
                    RejectReason::BundleMismatch,
                    "app_not_configured",
                    format!("no app is configured for Huawei application {application:?}"),
                )
            })?;
        let event_type = string(&body["eventType"]).unwrap_or_default();
        let event_at =
            number(&body["notifyTime"]).and_then(chrono::DateTime::from_timestamp_millis);
        let (id, kind, subject, event) = match event_type.as_str() {
            "ORDER" => {
                let order = &body["orderNotification"];
                let token = string(&order["purchaseToken"])
                    .ok_or_else(|| malformed("orderNotification.purchaseToken is missing"))?;
                let product = string(&order["productId"])
                    .ok_or_else(|| malformed("orderNotification.productId is missing"))?;
                let kind = number(&order["notificationType"]).unwrap_or(-1);
                let event = match kind {
                    1 => 'paid: {
                        // Ask the Order service; its signed answer is the proof.
                        let reply = app
                            .api
                            .verify_order(&token, &product, app.prefer_pss, Site::HuaweiId)
                            .await?;
                        if response_code(&reply) == "9" {
                            // Confirmed already: it was delivered (we confirm only after the
                            // grant). A resent event must still be answered 200.
                            break 'paid StoreEvent::Ignored(
                                "ORDER/1: the purchase is already confirmed".into(),
                            );
                        }
                        if response_code(&reply) != "0" {
                            return Err(refusal(
                                &response_code(&reply),
                                reply["responseMessage"].as_str().unwrap_or(""),
                            ));
                        }
                        let data = reply["purchaseTokenData"].as_str().unwrap_or("").to_owned();
                        let signature = reply["dataSignature"].as_str().unwrap_or("").to_owned();
                        let algorithm = string(&reply["signatureAlgorithm"])
                            .or_else(|| app.prefer_pss.then(|| PSS.to_owned()));
                        let store_data =
                            signed_json(&app.key, &data, &signature, algorithm.as_deref())?;
                        StoreEvent::Purchased {
                            app_id: app_id.clone(),
                            carried_order_id: string(&store_data["developerPayload"]),
                            proof: PurchaseProof::Huawei {
                                purchase_token: token.clone(),
                                product_id: ProductId::parse(product.as_str())
                                    .map_err(|e| malformed(&e.to_string()))?,
                                signed_data: SignedData { data, signature },
                                signature_algorithm: algorithm,
                            },
                        }
                    }
                    2 => StoreEvent::Refunded {
                        platform: Platform::Huawei,
                        store_transaction_id: token.clone(),
                        revoked: false,
                        subscription: None,
                        share: iap_domain::refunds::RefundShare::Whole,
                        cause: iap_domain::refunds::RefundCause::default(),
                    },
                    _ => {
                        StoreEvent::Ignored(format!("ORDER/{kind}: not a type this version knows"))
                    }
                };
                (
                    format!("order:{kind}:{}", sha256_hex(raw_body.as_bytes())),
                    format!("ORDER/{kind}"),
                    Some(token),
                    event,
                )
            }
            "SUBSCRIPTION" => {
                // Signed by Huawei; still only a hint of when to ask the Subscription service.
                let sub = &body["subNotification"];
                let status = sub["statusUpdateNotification"].as_str().unwrap_or_default();
                let algorithm = string(&sub["signatureAlgorithm"])
                    .or_else(|| app.prefer_pss.then(|| PSS.to_owned()));
                let inner = signed_json(
                    &app.key,
                    status,
                    sub["notificationSignature"].as_str().unwrap_or_default(),
                    algorithm.as_deref(),
                )?;
                let kind = number(&inner["notificationType"]).unwrap_or(-1);
                let token = string(&inner["purchaseToken"]).ok_or_else(|| {
                    malformed("statusUpdateNotification.purchaseToken is missing")
                })?;
                let subscription = string(&inner["subscriptionId"]).ok_or_else(|| {
                    malformed("statusUpdateNotification.subscriptionId is missing")
                })?;
                let order = string(&inner["orderId"]).unwrap_or_default();
                let reference = SubscriptionRef {
                    app_id: app_id.clone(),
                    platform: Platform::Huawei,
                    key: subscription.clone(),
                    product_id: string(&inner["productId"]).and_then(|p| ProductId::parse(p).ok()),
                    purchase_token: Some(token),
                    environment: None,
                    receipt: None,
                };
                let event = match kind {
                    // CANCEL: customer service refunded the subscription.
                    1 if !order.is_empty() => StoreEvent::Refunded {
                        platform: Platform::Huawei,
                        store_transaction_id: order,
                        revoked: false,
                        subscription: Some(reference),
                        share: iap_domain::refunds::RefundShare::Whole,
                        cause: iap_domain::refunds::RefundCause::default(),
                    },
                    // Every other type (platforms/huawei.md §4) only says the state changed.
                    _ => StoreEvent::SubscriptionChanged {
                        subscription: reference,
                        paid: None,
                        carried_order_id: None,
                    },
                };
                (
                    // The signed part decides what the event is; the envelope around it is not
                    // signed, so it does not make a replay new.
                    format!("subscription:{kind}:{}", sha256_hex(status.as_bytes())),
                    format!("SUBSCRIPTION/{kind}"),
                    Some(subscription),
                    event,
                )
            }
            other => return Err(malformed(&format!("unknown eventType {other:?}"))),
        };
        Ok(DecodedNotification {
            inbound: InboundNotification {
                platform: Platform::Huawei,
                notification_id: id,
                app_id: Some(app_id.clone()),
                notification_type: kind,
                subject,
                raw_body: raw_body.to_owned(),
                event_at,
            },
            event,
        })
    }
}

/// Huawei's history for reconciliation: the Order service's cancelled list (refunds, chargebacks,
/// up/downgrades), one-time and subscription purchases. Huawei offers no server-side list of
/// purchases to find ones never reported; those come from ORDER notifications and the client's
/// own compensation flow (`obtainOwnedPurchases` then VerifyPurchase).
#[async_trait]
impl iap_domain::reconciliation::StoreHistory for HuaweiVerifier {
    fn platform(&self) -> Platform {
        Platform::Huawei
    }

    fn apps(&self) -> Vec<AppId> {
        self.apps.keys().cloned().collect()
    }

    async fn changes(
        &self,
        app: &AppId,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<iap_domain::reconciliation::StoreChange>, StoreError> {
        use iap_domain::reconciliation::StoreChange;
        let Some(huawei) = self.apps.get(app) else {
            return Ok(Vec::new());
        };
        Ok(cancelled_between(huawei, from, to)
            .await?
            .iter()
            .map(|cancelled| StoreChange::Voided {
                store_transaction_id: string(&cancelled["orderId"]),
                purchase_token: string(&cancelled["purchaseToken"]),
                // cancelledReason 5 fraud, 6 chargeback.
                revoked: matches!(number(&cancelled["cancelledReason"]), Some(5 | 6)),
                share: iap_domain::refunds::RefundShare::Whole,
                cause: iap_domain::refunds::RefundCause::default(),
            })
            .collect())
    }
}
