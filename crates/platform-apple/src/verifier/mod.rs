//! `AppleVerifier`: the domain's store adapter for the App Store, one file per thing it does.
//! StoreKit 2 signed transactions are verified offline (`jws`) and checked against the app's
//! bundle id (`signed`); legacy receipts go through verifyReceipt (`receipts`); bare
//! transaction ids, subscription status, consumption answers and notification history need the
//! App Store Server API credentials. The rooms: `config` (the settings), `verify` (purchases and
//! subscriptions), `confirm`, `consumption`, `notifications`, `history` (reconciliation).

use std::collections::HashMap;

use iap_domain::AppId;
use iap_domain::refunds::PartialRefundRounding;
use iap_platform_common::{Store, build_apps};

use crate::jws::ChainTrust;
use crate::receipt::ReceiptClient;

mod config;
mod confirm;
mod consumption;
mod history;
mod notifications;
mod receipts;
mod signed;
mod verify;

pub use config::{AppleAppConfig, ConsumptionAnswers};
pub use iap_platform_common::ConfigError;
#[cfg(feature = "fuzzing")]
pub(crate) use receipts::receipt_purchase;

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
}

fn chrono_from_ms(ms: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(ms)
}
