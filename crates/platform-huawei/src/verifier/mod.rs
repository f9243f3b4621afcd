//! `HuaweiVerifier`: the domain's store adapter for Huawei IAP, one file per thing it does.
//! The client's `InAppPurchaseData` must be signed by the app's key (a local fast reject); the
//! Order service (one-time products) or the Subscription service (subscriptions) then gives the
//! state, in data that is itself signature-checked before use (`purchase_data`). The rooms:
//! `config` (the settings), `verify`, `confirm`, `cancelled` (the Order service's cancelled
//! lists), `notifications`, `history` (reconciliation).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use iap_domain::ports::StoreError;
use iap_domain::{AppId, RejectReason};
use iap_platform_common::{Store, build_apps};

use crate::api::{HuaweiApi, SiteRoots};
use crate::signature::IapPublicKey;

mod cancelled;
mod config;
mod confirm;
mod history;
mod notifications;
mod purchase_data;
mod verify;

pub use config::HuaweiAppConfig;
pub use iap_platform_common::ConfigError;
#[cfg(feature = "fuzzing")]
pub(crate) use purchase_data::{signed_json, to_verified};

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
