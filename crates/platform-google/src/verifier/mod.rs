//! `GoogleVerifier`: the domain's store adapter for Google Play, one file per thing it does.
//! The optional local signature check (`signed_data`) rejects forgeries without a network call;
//! the Android Publisher API is then the authority on payment state (productsv2 for one-time
//! products, subscriptionsv2 for subscriptions, read in `purchases`), as Google asks backends to
//! do. The rooms: `config` (the settings), `verify`, `confirm` (acknowledge and consume),
//! `notifications` (RTDN and refund checks), `history` (reconciliation).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use iap_domain::ports::StoreError;
use iap_domain::subscriptions::SubscriptionRef;
use iap_domain::{AppId, Platform, RejectReason};
use iap_platform_common::{Store, build_apps};

use crate::api::AndroidPublisher;
use crate::auth::{ServiceAccountKey, TokenSource};
use crate::signature::LicenseKey;

mod config;
mod confirm;
mod history;
mod notifications;
mod purchases;
mod signed_data;
mod verify;

pub use config::{GoogleAppConfig, PRODUCTION_API_ROOT};
pub use iap_platform_common::ConfigError;
#[cfg(feature = "fuzzing")]
pub(crate) use purchases::{product_purchase, subscription_purchase};
#[cfg(feature = "fuzzing")]
pub(crate) use signed_data::check_signed_data;

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

fn time(value: &Value) -> Option<DateTime<Utc>> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn string(value: &Value) -> Option<String> {
    value.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
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
