//! `AppleVerifier`: the domain's `PurchaseVerifier` for the App Store. StoreKit 2 signed
//! transactions are verified offline (`jws`) and checked against the app's bundle id; legacy
//! receipts and bare transaction ids need the verifyReceipt and App Store Server API clients,
//! which this adapter reports as not configured until they land.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::Deserialize;

use iap_domain::ports::{PurchaseVerifier, StoreError, VerifyContext};
use iap_domain::purchase::{PurchaseProof, PurchaseStatus, StoreReceipt, VerifiedPurchase};
use iap_domain::refunds::{PartialRefundRounding, RefundShare};
use iap_domain::subscriptions::{SubscriptionRef, SubscriptionSnapshot, SubscriptionState};
use iap_domain::{AppId, Money, Platform, ProductId, ProductKind, RejectReason};

use iap_platform_common::{Page, Store, build_apps, collect_pages};

use crate::jws::{self, ChainTrust};
use crate::model::{RenewalInfoPayload, TransactionPayload};
use crate::receipt::{Pick, ReceiptClient, pick_transaction};

/// `[apps.<app_id>.apple]`: one app's App Store settings.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppleAppConfig {
    /// The app's bundle id; every signed transaction must carry it.
    pub bundle_id: String,
    /// The app's Apple id (App Store Connect, "Apple ID" under App Information). Required:
    /// every Production notification must carry it (Apple's own library refuses to build a
    /// Production verifier without it); a process with an App Store app lacking it does not start.
    #[serde(default)]
    pub app_apple_id: Option<i64>,
    /// Trust Apple Root CA - G3 (pinned by fingerprint). On by default; tests and demos that
    /// use the emulator turn it off and list the emulator's root instead.
    #[serde(default = "yes")]
    pub trust_apple_root: bool,
    /// Further trusted roots, base64 DER (the emulator's `/emulator/apple/root.der`, Apple's
    /// test root).
    #[serde(default)]
    pub extra_roots_base64: Vec<String>,
    /// The app's shared secret for verifyReceipt (needed for subscription receipts).
    #[serde(default)]
    pub shared_secret: Option<String>,
    /// verifyReceipt production endpoint.
    #[serde(default = "production_url")]
    pub verify_receipt_production_url: String,
    /// verifyReceipt sandbox endpoint.
    #[serde(default = "sandbox_url")]
    pub verify_receipt_sandbox_url: String,
    /// The in-app purchase key, for purchases named only by transaction id.
    #[serde(default)]
    pub api: Option<crate::server_api::ApiCredentials>,
    /// App Store Server API production root.
    #[serde(default = "api_production_url")]
    pub api_production_url: String,
    /// App Store Server API sandbox root.
    #[serde(default = "api_sandbox_url")]
    pub api_sandbox_url: String,
    /// Answers to Apple's CONSUMPTION_REQUEST notifications; without them none is sent.
    #[serde(default)]
    pub consumption: Option<ConsumptionAnswers>,
}

/// `[apps.<app_id>.apple.consumption]`: what the studio answers when a customer asks Apple for a
/// refund (Send Consumption Information). The delivery status comes from our records.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumptionAnswers {
    /// The customer consented to sharing consumption data (Apple refuses the answer otherwise).
    pub customer_consented: bool,
    /// A free sample or trial of the content was available.
    #[serde(default)]
    pub sample_content_provided: bool,
    /// `DECLINE`, `GRANT_FULL` or `GRANT_PRORATED`; omitted when unset.
    #[serde(default)]
    pub refund_preference: Option<String>,
    /// How much of a delivered purchase counts as consumed, in milliunits (0–100000); sent
    /// only for delivered purchases (Apple requires 0 otherwise).
    #[serde(default)]
    pub delivered_consumption_percentage: Option<i64>,
}

fn api_production_url() -> String {
    crate::server_api::PRODUCTION_URL.to_owned()
}

fn api_sandbox_url() -> String {
    crate::server_api::SANDBOX_URL.to_owned()
}

fn production_url() -> String {
    crate::receipt::PRODUCTION_URL.to_owned()
}

fn sandbox_url() -> String {
    crate::receipt::SANDBOX_URL.to_owned()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone)]
struct AppleApp {
    bundle_id: String,
    app_apple_id: i64,
    trust: ChainTrust,
    receipts: ReceiptClient,
    shared_secret: Option<String>,
    api: Option<std::sync::Arc<crate::server_api::ServerApi>>,
    consumption: Option<ConsumptionAnswers>,
    rounding: PartialRefundRounding,
}

impl AppleApp {
    /// One app's trust, clients and answers from its settings.
    fn new(config: &AppleAppConfig, http: &reqwest::Client) -> Result<Self, String> {
        use base64::Engine;
        let mut trust = if config.trust_apple_root {
            ChainTrust::default()
        } else {
            ChainTrust::empty()
        };
        for (i, root) in config.extra_roots_base64.iter().enumerate() {
            let der = base64::engine::general_purpose::STANDARD
                .decode(root.trim())
                .map_err(|e| format!("extra_roots_base64[{i}] is not base64: {e}"))?;
            trust = trust.with_root(der);
        }
        if config.bundle_id.trim().is_empty() {
            return Err("bundle_id is required".into());
        }
        // Without it a Production notification of another app signed by Apple for the same
        // bundle id (a re-created app, a copied bundle id) could not be told apart.
        let Some(app_apple_id) = config.app_apple_id else {
            return Err(
                "app_apple_id is required: Production notifications are checked against it \
                 (the app's Apple ID in App Store Connect, App Information)"
                    .into(),
            );
        };
        let receipts = ReceiptClient::new(
            http.clone(),
            config.verify_receipt_production_url.clone(),
            config.verify_receipt_sandbox_url.clone(),
        );
        let api = config.api.clone().map(|credentials| {
            std::sync::Arc::new(crate::server_api::ServerApi::new(
                http.clone(),
                credentials,
                config.bundle_id.clone(),
                config.api_production_url.clone(),
                config.api_sandbox_url.clone(),
            ))
        });
        Ok(Self {
            bundle_id: config.bundle_id.clone(),
            app_apple_id,
            trust,
            receipts,
            shared_secret: config.shared_secret.clone(),
            api,
            consumption: config.consumption.clone(),
            rounding: PartialRefundRounding::default(),
        })
    }
}

/// The App Store verifier for every configured app.
#[derive(Debug, Clone, Default)]
pub struct AppleVerifier {
    apps: HashMap<AppId, AppleApp>,
}

pub use iap_platform_common::ConfigError;

/// The App Store, as settings and messages name it.
const STORE: Store = Store {
    settings_key: "apple",
    name: "App Store",
};

impl AppleVerifier {
    /// Builds the verifier from each app's settings.
    pub fn new<'a>(
        apps: impl IntoIterator<Item = (&'a AppId, &'a AppleAppConfig)>,
    ) -> Result<Self, ConfigError> {
        let apps = build_apps(STORE, apps, AppleApp::new)?;
        Ok(Self { apps })
    }

    /// Rounds `app`'s prorated refunds (`REFUND_PRORATED`) to whole units this way
    /// (`apps.<id>.partial_refund_rounding`); without it, to the nearest unit.
    #[must_use]
    pub fn with_partial_refund_rounding(
        mut self,
        app: &AppId,
        rounding: PartialRefundRounding,
    ) -> Self {
        if let Some(app) = self.apps.get_mut(app) {
            app.rounding = rounding;
        }
        self
    }

    fn verify_signed(
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

impl AppleVerifier {
    async fn verify_receipt(
        &self,
        app: &AppleApp,
        receipt: &str,
        product: Option<&ProductId>,
        transaction_id: Option<&str>,
        ledger: Option<&dyn iap_domain::ports::PaymentLedger>,
    ) -> Result<VerifiedPurchase, StoreError> {
        let reply = app
            .receipts
            .verify(receipt, app.shared_secret.as_deref())
            .await?;
        // Several transactions the client may mean: which of them are recorded already.
        let candidates: Vec<String> =
            match pick_transaction(&reply, transaction_id, product.map(ProductId::as_str)) {
                Some(Pick::Candidates(entries)) => entries
                    .iter()
                    .filter_map(|e| e["transaction_id"].as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
        let recorded = match ledger {
            Some(ledger) if !candidates.is_empty() => ledger
                .recorded_among(Platform::Apple, &candidates)
                .await
                .map_err(|e| StoreError::unavailable(format!("recorded transactions: {e}")))?,
            _ => Vec::new(),
        };
        receipt_purchase(&app.bundle_id, &reply, product, transaction_id, &recorded)
    }
}

/// Maps a verifyReceipt answer (status 0 or 21006) to the purchase it proves for `bundle_id`.
/// Without a transaction id, of several transactions of the product the oldest paid one not in
/// `recorded` is taken — two unfinished consumables are granted one each, oldest first — and
/// while another such one remains, the client is told not to finish (it cannot know which of
/// its transactions the answer is about). When every one is recorded or refunded, the newest
/// answers (a retry, or a refund).
pub(crate) fn receipt_purchase(
    bundle_id: &str,
    reply: &serde_json::Value,
    product: Option<&ProductId>,
    transaction_id: Option<&str>,
    recorded: &[String],
) -> Result<VerifiedPurchase, StoreError> {
    if reply["receipt"]["bundle_id"] != bundle_id {
        return Err(StoreError::rejected(
            RejectReason::BundleMismatch,
            "bundle_mismatch",
            "the receipt is for another bundle",
        ));
    }
    let not_found = || {
        StoreError::rejected(
            RejectReason::NotFoundAtStore,
            "transaction_not_in_receipt",
            "the receipt holds no matching transaction",
        )
    };
    let (entry, finish_withheld) =
        match pick_transaction(reply, transaction_id, product.map(ProductId::as_str)) {
            None => return Err(not_found()),
            Some(Pick::One(entry)) => (entry, false),
            Some(Pick::Candidates(entries)) => {
                let open: Vec<&serde_json::Value> = entries
                    .iter()
                    .copied()
                    .filter(|e| {
                        e.get("cancellation_date_ms").is_none()
                            && !recorded.iter().any(|id| e["transaction_id"] == id.as_str())
                    })
                    .collect();
                match open.first() {
                    Some(oldest) => (*oldest, open.len() > 1),
                    None => (*entries.last().ok_or_else(not_found)?, false),
                }
            }
        };
    entry_purchase(reply, entry, finish_withheld)
}

/// One `in_app` / `latest_receipt_info` entry of a verifyReceipt answer as a purchase. An
/// auto-renewable one carries the answer's `latest_receipt`, kept with the subscription.
fn entry_purchase(
    reply: &serde_json::Value,
    entry: &serde_json::Value,
    finish_withheld: bool,
) -> Result<VerifiedPurchase, StoreError> {
    let environment = match reply["environment"].as_str() {
        Some("Production") => iap_domain::Environment::Production,
        _ => iap_domain::Environment::Sandbox,
    };
    let text = |field: &str| {
        entry[field]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let millis = |field: &str| {
        text(field)
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(chrono_from_ms)
    };
    let transaction = text("transaction_id").ok_or_else(|| {
        StoreError::rejected(
            RejectReason::Malformed,
            "field_missing",
            "receipt entry without transaction_id",
        )
    })?;
    let product_id = ProductId::parse(text("product_id").unwrap_or_default()).map_err(|e| {
        StoreError::rejected(RejectReason::Malformed, "field_invalid", e.to_string())
    })?;
    let status = match millis("cancellation_date_ms") {
        Some(at) => PurchaseStatus::Refunded {
            at: Some(at),
            reason: text("cancellation_reason"),
        },
        None => PurchaseStatus::Purchased,
    };
    Ok(VerifiedPurchase {
        platform: Platform::Apple,
        environment,
        store_transaction_id: transaction,
        original_transaction_id: text("original_transaction_id"),
        purchase_token: None,
        store_order_id: text("web_order_line_item_id"),
        product_id,
        quantity: text("quantity")
            .and_then(|q| q.parse().ok())
            .unwrap_or(1)
            .max(1),
        status,
        purchased_at: millis("purchase_date_ms"),
        expires_at: millis("expires_date_ms"),
        carried_order_id: text("app_account_token").map(|t| t.to_ascii_lowercase()),
        // verifyReceipt names no Apple Account.
        store_account_id: None,
        is_trial: text("is_trial_period").as_deref() == Some("true"),
        price: None,
        kind: None,
        linked_purchase_token: None,
        acknowledged: None,
        consumed: None,
        subscription_status: None,
        subscription_group: text("subscription_group_identifier"),
        raw: entry.clone(),
        finish_withheld,
        latest_receipt: millis("expires_date_ms")
            .and(reply["latest_receipt"].as_str())
            .filter(|r| !r.is_empty())
            .map(StoreReceipt::new),
    })
}

/// A subscription's state from a verifyReceipt answer: its newest period in
/// `latest_receipt_info` and its `pending_renewal_info` entry, as of `now_ms`.
pub(crate) fn receipt_subscription(
    bundle_id: &str,
    reply: &serde_json::Value,
    subscription: &SubscriptionRef,
    now_ms: i64,
) -> Result<SubscriptionSnapshot, StoreError> {
    if reply["receipt"]["bundle_id"] != bundle_id {
        return Err(StoreError::rejected(
            RejectReason::BundleMismatch,
            "bundle_mismatch",
            "the kept receipt is for another bundle",
        ));
    }
    let ms =
        |v: &serde_json::Value, field: &str| v[field].as_str().and_then(|s| s.parse::<i64>().ok());
    let of_this =
        |v: &&serde_json::Value| v["original_transaction_id"] == subscription.key.as_str();
    let newest = reply["latest_receipt_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(of_this)
        .max_by_key(|e| (ms(e, "purchase_date_ms"), ms(e, "expires_date_ms")))
        .ok_or_else(|| {
            StoreError::rejected(
                RejectReason::NotFoundAtStore,
                "subscription_not_in_receipt",
                "the kept receipt lists no period of the subscription",
            )
        })?;
    let latest = entry_purchase(reply, newest, false)?;
    if subscription
        .environment
        .is_some_and(|env| env != latest.environment)
    {
        return Err(StoreError::rejected(
            RejectReason::NotFoundAtStore,
            "environment_mismatch",
            "the kept receipt answers from another environment",
        ));
    }
    let empty = serde_json::Value::Null;
    let renewal = reply["pending_renewal_info"]
        .as_array()
        .into_iter()
        .flatten()
        .find(of_this)
        .unwrap_or(&empty);
    let expires = ms(newest, "expires_date_ms");
    let grace = ms(renewal, "grace_period_expires_date_ms");
    let state = if ms(newest, "cancellation_date_ms").is_some() {
        SubscriptionState::Revoked
    } else if expires.is_some_and(|e| e > now_ms) {
        SubscriptionState::Active
    } else if grace.is_some_and(|g| g > now_ms) {
        SubscriptionState::InGrace
    } else if renewal["is_in_billing_retry_period"] == "1" {
        SubscriptionState::BillingRetry
    } else {
        SubscriptionState::Expired
    };
    Ok(SubscriptionSnapshot {
        state,
        expires_at: latest.expires_at,
        grace_until: grace.and_then(chrono_from_ms),
        auto_renew: renewal["auto_renew_status"].as_str().map(|s| s == "1"),
        auto_renew_product_id: renewal["auto_renew_product_id"].as_str().map(str::to_owned),
        // `price_consent_status` is present only while a price increase awaits the customer.
        price_change_state: renewal["price_consent_status"].as_str().map(|s| match s {
            "1" => "PRICE_INCREASE_CONSENTED".to_owned(),
            _ => "PRICE_INCREASE_PENDING".to_owned(),
        }),
        latest,
    })
}

fn chrono_from_ms(ms: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(ms)
}

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

/// The App Store has no server-side confirmation: the client calls `finish()` once
/// VerifyPurchase says `finish_transaction`.
#[async_trait::async_trait]
impl iap_domain::ports::StoreConfirmer for AppleVerifier {
    fn platform(&self) -> Platform {
        Platform::Apple
    }

    async fn confirm(
        &self,
        _purchase: &iap_domain::ports::PurchaseToConfirm,
    ) -> Result<iap_domain::ports::ConfirmOutcome, StoreError> {
        Ok(iap_domain::ports::ConfirmOutcome::NotApplicable)
    }
}

/// App Store Server Notifications V2: `{"signedPayload": JWS}`, verified like a transaction
/// (chain to a trusted root, Apple OIDs, validity at `signedDate`), for the configured app whose
/// bundle id it names; production notifications must also carry the configured `appAppleId`.
/// The transaction inside is verified again when the event is acted on.
#[async_trait::async_trait]
impl iap_domain::notifications::NotificationDecoder for AppleVerifier {
    fn platform(&self) -> Platform {
        Platform::Apple
    }

    async fn decode(
        &self,
        raw_body: &str,
    ) -> Result<iap_domain::notifications::DecodedNotification, StoreError> {
        use iap_domain::notifications::{DecodedNotification, InboundNotification, StoreEvent};
        let malformed =
            |detail: String| StoreError::rejected(RejectReason::Malformed, "malformed", detail);
        let body: serde_json::Value = serde_json::from_str(raw_body)
            .map_err(|e| malformed(format!("body is not JSON: {e}")))?;
        let signed = body["signedPayload"]
            .as_str()
            .ok_or_else(|| malformed("signedPayload is missing".into()))?;
        // Which app: the bundle id inside, read before verification only to pick the trust.
        let claimed = crate::jws::peek_payload(signed).map_err(StoreError::from)?;
        let bundle = claimed["data"]["bundleId"]
            .as_str()
            .or_else(|| claimed["summary"]["bundleId"].as_str())
            .unwrap_or_default()
            .to_owned();
        let (app_id, app) = self
            .apps
            .iter()
            .find(|(_, a)| a.bundle_id == bundle)
            .ok_or_else(|| {
                StoreError::rejected(
                    RejectReason::BundleMismatch,
                    "bundle_not_configured",
                    format!("no app is configured for bundle {bundle:?}"),
                )
            })?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let verified =
            jws::verify::<crate::model::NotificationPayload>(signed, &app.trust, now_ms)?;
        let n = verified.payload;
        let kind = n.notification_type.clone().unwrap_or_default();
        let full_kind = match &n.subtype {
            Some(subtype) => format!("{kind}/{subtype}"),
            None => kind.clone(),
        };
        let id = n
            .notification_uuid
            .clone()
            .ok_or_else(|| malformed("notificationUUID is missing".into()))?;
        let data = n.data.clone().unwrap_or_default();
        // As Apple's library does: a Production notification must name this app's Apple id, and
        // one that names none is not ours either.
        if data.environment.as_deref() == Some("Production")
            && data.app_apple_id != Some(app.app_apple_id)
        {
            return Err(StoreError::rejected(
                RejectReason::BundleMismatch,
                "app_apple_id_mismatch",
                match data.app_apple_id {
                    Some(found) => format!("the notification is for appAppleId {found}"),
                    None => "the Production notification carries no appAppleId".into(),
                },
            ));
        }
        // The transaction it is about (verified in full when acted on; here only its ids).
        let transaction = match &data.signed_transaction_info {
            Some(jws) => Some(
                jws::verify::<TransactionPayload>(jws, &app.trust, now_ms)
                    .map_err(StoreError::from)?
                    .payload,
            ),
            None => None,
        };
        let subject = transaction.as_ref().and_then(|t| t.transaction_id.clone());
        let environment = data
            .environment
            .as_deref()
            .and_then(crate::model::environment);
        // The subscription a transaction belongs to, when it is an auto-renewable one.
        let subscription = transaction
            .as_ref()
            .filter(|t| t.kind() == Some(ProductKind::AutoRenewable))
            .and_then(|t| {
                Some(SubscriptionRef {
                    app_id: app_id.clone(),
                    platform: Platform::Apple,
                    key: t.original_transaction_id.clone()?,
                    product_id: t
                        .product_id
                        .as_deref()
                        .and_then(|p| ProductId::parse(p).ok()),
                    purchase_token: None,
                    environment,
                    receipt: None,
                })
            });
        let carried = transaction
            .as_ref()
            .and_then(|t| t.app_account_token.as_ref())
            .map(|s| s.to_ascii_lowercase());
        let paid = data
            .signed_transaction_info
            .clone()
            .map(iap_domain::purchase::PurchaseProof::AppleSignedTransaction);
        // Every type and subtype of platforms/apple.md §3 has a handling here.
        let event = match (kind.as_str(), &transaction, subscription) {
            ("TEST", _, _) => StoreEvent::Ignored("test notification".into()),
            // A paid charge of a consumable, non-consumable or non-renewing product: granted
            // even if the client never reported it. The signed transaction inside is the state
            // at the time Apple sent it; notifications arrive late and out of order, so where
            // the app has API credentials the charge is checked against Apple's current state
            // (Get Transaction Info) when it is acted on, and one refunded meanwhile is refused.
            ("ONE_TIME_CHARGE", Some(t), _) => StoreEvent::Purchased {
                app_id: app_id.clone(),
                proof: match (&app.api, &t.transaction_id) {
                    (Some(_), Some(id)) => PurchaseProof::AppleTransactionId(id.clone()),
                    _ => paid.ok_or_else(|| malformed("no signedTransactionInfo".into()))?,
                },
                carried_order_id: carried,
            },
            // Subscription life cycle: the store's current status decides (a refresh grants a
            // new period once, keyed by its transaction; grace, retry and expiry change access).
            (
                "SUBSCRIBED"
                | "DID_RENEW"
                | "OFFER_REDEEMED"
                | "DID_CHANGE_RENEWAL_PREF"
                | "DID_CHANGE_RENEWAL_STATUS"
                | "DID_FAIL_TO_RENEW"
                | "GRACE_PERIOD_EXPIRED"
                | "EXPIRED"
                | "PRICE_INCREASE"
                | "RENEWAL_EXTENDED"
                | "REFUND_REVERSED",
                Some(_),
                Some(subscription),
            ) => StoreEvent::SubscriptionChanged {
                subscription,
                paid: paid.filter(|_| {
                    matches!(kind.as_str(), "SUBSCRIBED" | "DID_RENEW" | "OFFER_REDEEMED")
                }),
                carried_order_id: carried,
            },
            ("REFUND" | "REVOKE", Some(t), subscription) => StoreEvent::Refunded {
                platform: Platform::Apple,
                store_transaction_id: t.transaction_id.clone().unwrap_or_default(),
                revoked: kind == "REVOKE",
                // A prorated refund of a consumable bought several at a time takes back its
                // share of the units; a subscription period is one unit and goes back whole.
                share: if subscription.is_none() {
                    crate::model::refund_share(t, app.rounding)
                } else {
                    RefundShare::Whole
                },
                cause: crate::model::refund_cause(t),
                subscription,
            },
            ("CONSUMPTION_REQUEST", Some(t), _) => StoreEvent::ConsumptionRequested {
                app_id: app_id.clone(),
                store_transaction_id: t.transaction_id.clone().unwrap_or_default(),
                environment: t.environment().unwrap_or(iap_domain::Environment::Production),
                reason: data.consumption_request_reason,
            },
            ("REFUND_DECLINED", _, _) => {
                StoreEvent::Ignored("REFUND_DECLINED: Apple kept the charge; nothing changes".into())
            }
            // A one-time purchase paid again: the signed transaction (Apple's word, its chain
            // verified above) must no longer carry the revocation; a subscription's reversal
            // is applied by the refresh above.
            ("REFUND_REVERSED", Some(t), None) if t.revocation_date.is_none() => {
                StoreEvent::RefundReversed {
                    platform: Platform::Apple,
                    store_transaction_id: t.transaction_id.clone().unwrap_or_default(),
                }
            }
            ("REFUND_REVERSED", _, _) => StoreEvent::Ignored(
                "REFUND_REVERSED: the signed transaction still carries its revocation; nothing is restored".into(),
            ),
            ("RENEWAL_EXTENSION", _, _) => StoreEvent::Ignored(format!(
                "{full_kind}: a mass extension's summary; each extended subscription is refreshed on its own notification or check"
            )),
            (
                "EXTERNAL_PURCHASE_TOKEN" | "METADATA_UPDATE" | "MIGRATION" | "PRICE_CHANGE"
                | "RESCIND_CONSENT",
                _,
                _,
            ) => StoreEvent::Ignored(format!(
                "{full_kind}: external purchase, Advanced Commerce or consent flow, not used here"
            )),
            _ => StoreEvent::Ignored(format!(
                "{full_kind}: no transaction this version acts on"
            )),
        };
        Ok(DecodedNotification {
            inbound: InboundNotification {
                platform: Platform::Apple,
                notification_id: id,
                app_id: Some(app_id.clone()),
                notification_type: full_kind,
                subject,
                raw_body: raw_body.to_owned(),
                event_at: n.signed_date.and_then(chrono_from_ms),
            },
            event,
        })
    }
}

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

#[cfg(test)]
mod receipt_subscription_tests {
    use super::*;
    use serde_json::{Value, json};

    const NOW: i64 = 1_800_000_000_000;
    const DAY: i64 = 86_400_000;

    fn reference(environment: Option<iap_domain::Environment>) -> SubscriptionRef {
        SubscriptionRef {
            app_id: AppId::parse("game").unwrap(),
            platform: Platform::Apple,
            key: "1000".into(),
            product_id: None,
            purchase_token: None,
            environment,
            receipt: None,
        }
    }

    fn period(transaction: &str, original: &str, bought: i64, expires: i64) -> Value {
        json!({
            "transaction_id": transaction, "original_transaction_id": original,
            "web_order_line_item_id": format!("w{transaction}"), "product_id": "premium_monthly",
            "quantity": "1", "purchase_date_ms": bought.to_string(),
            "expires_date_ms": expires.to_string(),
        })
    }

    fn reply(periods: Vec<Value>, renewal: Value) -> Value {
        let (periods, renewal) = (Value::Array(periods), renewal);
        json!({
            "status": 0, "environment": "Production",
            "receipt": { "bundle_id": "com.example.game" },
            "latest_receipt": "bmV3ZXI=",
            "latest_receipt_info": periods,
            "pending_renewal_info": [renewal],
        })
    }

    fn renewal(fields: Value) -> Value {
        let mut r = json!({ "original_transaction_id": "1000", "auto_renew_status": "1",
                            "auto_renew_product_id": "premium_yearly" });
        if let (Some(r), Value::Object(fields)) = (r.as_object_mut(), fields) {
            r.extend(fields);
        }
        r
    }

    fn snapshot(reply: &Value) -> Result<SubscriptionSnapshot, StoreError> {
        receipt_subscription("com.example.game", reply, &reference(None), NOW)
    }

    #[test]
    fn the_newest_period_of_the_chain_is_the_latest() {
        let answer = reply(
            vec![
                period("1002", "1000", NOW - DAY, NOW + 29 * DAY),
                period("1000", "1000", NOW - 31 * DAY, NOW - DAY),
                // Another subscription of the same customer is not this one.
                period("2001", "2000", NOW, NOW + 365 * DAY),
            ],
            renewal(json!({})),
        );
        let now = snapshot(&answer).unwrap();
        assert_eq!(now.latest.store_transaction_id, "1002");
        assert_eq!(now.latest.store_order_id.as_deref(), Some("w1002"));
        assert_eq!(now.state, SubscriptionState::Active);
        assert_eq!(now.auto_renew, Some(true));
        assert_eq!(now.auto_renew_product_id.as_deref(), Some("premium_yearly"));
        assert_eq!(
            now.latest.latest_receipt,
            Some(StoreReceipt::new("bmV3ZXI="))
        );
    }

    #[test]
    fn lapsed_periods_read_as_grace_retry_or_expired() {
        let lapsed = || vec![period("1000", "1000", NOW - 31 * DAY, NOW - DAY)];
        let grace = reply(
            lapsed(),
            renewal(
                json!({ "grace_period_expires_date_ms": (NOW + DAY).to_string(),
                            "is_in_billing_retry_period": "1" }),
            ),
        );
        let now = snapshot(&grace).unwrap();
        assert_eq!(now.state, SubscriptionState::InGrace);
        assert_eq!(now.grace_until, chrono_from_ms(NOW + DAY));

        let retry = reply(
            lapsed(),
            renewal(
                json!({ "grace_period_expires_date_ms": (NOW - 1).to_string(),
                            "is_in_billing_retry_period": "1" }),
            ),
        );
        assert_eq!(
            snapshot(&retry).unwrap().state,
            SubscriptionState::BillingRetry
        );

        let off = reply(
            lapsed(),
            renewal(json!({ "auto_renew_status": "0", "is_in_billing_retry_period": "0" })),
        );
        let now = snapshot(&off).unwrap();
        assert_eq!(now.state, SubscriptionState::Expired);
        assert_eq!(now.auto_renew, Some(false));
    }

    #[test]
    fn a_cancelled_period_is_revoked_even_before_it_ends() {
        let mut refunded = period("1000", "1000", NOW - DAY, NOW + 29 * DAY);
        refunded["cancellation_date_ms"] = json!(NOW.to_string());
        let now = snapshot(&reply(vec![refunded], renewal(json!({})))).unwrap();
        assert_eq!(now.state, SubscriptionState::Revoked);
    }

    #[test]
    fn a_pending_price_increase_is_reported() {
        let answer = reply(
            vec![period("1000", "1000", NOW - DAY, NOW + 29 * DAY)],
            renewal(json!({ "price_consent_status": "0" })),
        );
        assert_eq!(
            snapshot(&answer).unwrap().price_change_state.as_deref(),
            Some("PRICE_INCREASE_PENDING")
        );
    }

    #[test]
    fn another_bundle_environment_or_chain_is_refused() {
        let answer = reply(
            vec![period("1000", "1000", NOW - DAY, NOW + 29 * DAY)],
            renewal(json!({})),
        );
        let code = |r: Result<SubscriptionSnapshot, StoreError>| match r {
            Err(StoreError::Rejected { code, .. }) => code,
            other => panic!("expected a rejection, got {other:?}"),
        };
        assert_eq!(
            code(receipt_subscription(
                "com.other.game",
                &answer,
                &reference(None),
                NOW
            )),
            "bundle_mismatch"
        );
        assert_eq!(
            code(receipt_subscription(
                "com.example.game",
                &answer,
                &reference(Some(iap_domain::Environment::Sandbox)),
                NOW
            )),
            "environment_mismatch"
        );
        let mut other = reference(None);
        other.key = "9999".into();
        assert_eq!(
            code(receipt_subscription(
                "com.example.game",
                &answer,
                &other,
                NOW
            )),
            "subscription_not_in_receipt"
        );
    }
}
