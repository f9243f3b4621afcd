//! The stores' clients, built from the apps' store sections. The three stores are built the
//! same way — every app that has the store's section, with its parsed id, handed to the
//! platform's constructor — so one function does it for each, and each store only says which
//! section is its own and how its client is made from those apps.

use std::sync::Arc;

use iap_platform_apple::{AppleAppConfig, AppleVerifier};
use iap_platform_google::{GoogleAppConfig, GoogleVerifier};
use iap_platform_huawei::{HuaweiAppConfig, HuaweiVerifier};

use iap_domain::AppId;
use iap_domain::notifications::NotificationDecoder;
use iap_domain::ports::{PurchaseVerifier, StoreConfirmer};
use iap_domain::reconciliation::StoreHistory;

use super::catalog::app_id;
use super::{AppSettings, ConfigError, Settings};

/// An app that configures a store: its id, the store's section and the rest of the app.
struct StoreApp<'a, C> {
    id: AppId,
    config: &'a C,
    app: &'a AppSettings,
}

/// One store's client as the settings build it.
trait StoreClient: Sized {
    /// The app section that configures the store (`[apps.<app_id>.apple]`, …).
    type Config;

    /// The app's section for this store, if it has one.
    fn section(app: &AppSettings) -> Option<&Self::Config>;

    /// The client for every app that configures the store (none: a client that refuses every
    /// purchase of this store).
    fn build(apps: &[StoreApp<'_, Self::Config>]) -> Result<Self, String>;
}

impl StoreClient for AppleVerifier {
    type Config = AppleAppConfig;

    fn section(app: &AppSettings) -> Option<&AppleAppConfig> {
        app.apple.as_ref()
    }

    fn build(apps: &[StoreApp<'_, AppleAppConfig>]) -> Result<Self, String> {
        let verifier = AppleVerifier::new(apps.iter().map(|app| (&app.id, app.config)))
            .map_err(|e| e.to_string())?;
        // Prorated refunds are App Store's alone, so only its client reads the rounding.
        Ok(apps.iter().fold(verifier, |verifier, app| {
            verifier.with_partial_refund_rounding(&app.id, app.app.partial_refund_rounding)
        }))
    }
}

impl StoreClient for GoogleVerifier {
    type Config = GoogleAppConfig;

    fn section(app: &AppSettings) -> Option<&GoogleAppConfig> {
        app.google.as_ref()
    }

    fn build(apps: &[StoreApp<'_, GoogleAppConfig>]) -> Result<Self, String> {
        GoogleVerifier::new(apps.iter().map(|app| (&app.id, app.config))).map_err(|e| e.to_string())
    }
}

impl StoreClient for HuaweiVerifier {
    type Config = HuaweiAppConfig;

    fn section(app: &AppSettings) -> Option<&HuaweiAppConfig> {
        app.huawei.as_ref()
    }

    fn build(apps: &[StoreApp<'_, HuaweiAppConfig>]) -> Result<Self, String> {
        HuaweiVerifier::new(apps.iter().map(|app| (&app.id, app.config))).map_err(|e| e.to_string())
    }
}

impl Settings {
    /// The client of store `S` for every app that configures it.
    fn store_client<S: StoreClient>(&self) -> Result<S, ConfigError> {
        let mut apps = Vec::new();
        for (key, app) in &self.apps {
            if let Some(config) = S::section(app) {
                apps.push(StoreApp {
                    id: app_id(key)?,
                    config,
                    app,
                });
            }
        }
        S::build(&apps).map_err(ConfigError::Invalid)
    }

    /// The three stores' clients, built once: each holds its HTTP client (TLS roots loaded
    /// once) and keys, and serves as verifier, confirmer, notification decoder and history.
    pub fn store_clients(&self) -> Result<StoreClients, ConfigError> {
        Ok(StoreClients {
            apple: Arc::new(self.apple_verifier()?),
            google: Arc::new(self.google_verifier()?),
            huawei: Arc::new(self.huawei_verifier()?),
        })
    }

    /// Every store's purchase verifier, for the apps that configure it.
    pub fn purchase_verifiers(&self) -> Result<Vec<Arc<dyn PurchaseVerifier>>, ConfigError> {
        Ok(self.store_clients()?.verifiers())
    }

    /// The store-notification decoders: App Store Server Notifications V2, Google Play
    /// real-time developer notifications and Huawei IAP notifications v2.
    pub fn notification_decoders(&self) -> Result<Vec<Arc<dyn NotificationDecoder>>, ConfigError> {
        Ok(self.store_clients()?.decoders())
    }

    /// The App Store verifier for every app with `[apps.<id>.apple]`.
    pub fn apple_verifier(&self) -> Result<AppleVerifier, ConfigError> {
        self.store_client()
    }

    /// The Google Play verifier for every app with `[apps.<id>.google]`.
    pub fn google_verifier(&self) -> Result<GoogleVerifier, ConfigError> {
        self.store_client()
    }

    /// The Huawei verifier for every app with `[apps.<id>.huawei]`.
    pub fn huawei_verifier(&self) -> Result<HuaweiVerifier, ConfigError> {
        self.store_client()
    }
}

/// The three stores' clients of one process (see [`Settings::store_clients`]).
#[derive(Debug, Clone)]
pub struct StoreClients {
    /// App Store.
    pub apple: Arc<AppleVerifier>,
    /// Google Play.
    pub google: Arc<GoogleVerifier>,
    /// Huawei IAP.
    pub huawei: Arc<HuaweiVerifier>,
}

impl StoreClients {
    /// As purchase verifiers.
    pub fn verifiers(&self) -> Vec<Arc<dyn PurchaseVerifier>> {
        vec![self.apple.clone(), self.google.clone(), self.huawei.clone()]
    }

    /// As store confirmers (Apple answers NotApplicable).
    pub fn confirmers(&self) -> Vec<Arc<dyn StoreConfirmer>> {
        vec![self.apple.clone(), self.google.clone(), self.huawei.clone()]
    }

    /// As notification decoders.
    pub fn decoders(&self) -> Vec<Arc<dyn NotificationDecoder>> {
        vec![self.apple.clone(), self.google.clone(), self.huawei.clone()]
    }

    /// As the stores' histories for reconciliation (Apple notification history, Google voided
    /// purchases, Huawei cancelled purchases).
    pub fn histories(&self) -> Vec<Arc<dyn StoreHistory>> {
        vec![self.apple.clone(), self.google.clone(), self.huawei.clone()]
    }
}
