//! The three stores' clients, built from the apps' store sections.

use iap_domain::AppId;

use super::{ConfigError, Settings};

impl Settings {
    /// The three stores' clients, built once: each holds its HTTP client (TLS roots loaded
    /// once) and keys, and serves as verifier, confirmer, notification decoder and history.
    pub fn store_clients(&self) -> Result<StoreClients, ConfigError> {
        Ok(StoreClients {
            apple: std::sync::Arc::new(self.apple_verifier()?),
            google: std::sync::Arc::new(self.google_verifier()?),
            huawei: std::sync::Arc::new(self.huawei_verifier()?),
        })
    }

    /// Every store's purchase verifier, for the apps that configure it.
    pub fn purchase_verifiers(
        &self,
    ) -> Result<Vec<std::sync::Arc<dyn iap_domain::ports::PurchaseVerifier>>, ConfigError> {
        Ok(self.store_clients()?.verifiers())
    }

    /// The store-notification decoders: App Store Server Notifications V2, Google Play
    /// real-time developer notifications and Huawei IAP notifications v2.
    pub fn notification_decoders(
        &self,
    ) -> Result<Vec<std::sync::Arc<dyn iap_domain::notifications::NotificationDecoder>>, ConfigError>
    {
        Ok(self.store_clients()?.decoders())
    }

    /// The App Store verifier for every app with `[apps.<id>.apple]`.
    pub fn apple_verifier(&self) -> Result<iap_platform_apple::AppleVerifier, ConfigError> {
        let mut configured = Vec::new();
        for (key, app) in &self.apps {
            if let Some(apple) = &app.apple {
                let id = AppId::parse(key.as_str())
                    .map_err(|e| ConfigError::value(format!("apps.{key}"), e.to_string()))?;
                configured.push((id, apple.clone(), app.partial_refund_rounding));
            }
        }
        let verifier =
            iap_platform_apple::AppleVerifier::new(configured.iter().map(|(id, c, _)| (id, c)))
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(configured
            .iter()
            .fold(verifier, |verifier, (id, _, rounding)| {
                verifier.with_partial_refund_rounding(id, *rounding)
            }))
    }

    /// The Google Play verifier for every app with `[apps.<id>.google]`.
    pub fn google_verifier(&self) -> Result<iap_platform_google::GoogleVerifier, ConfigError> {
        let mut configured = Vec::new();
        for (key, app) in &self.apps {
            if let Some(google) = &app.google {
                let id = AppId::parse(key.as_str())
                    .map_err(|e| ConfigError::value(format!("apps.{key}"), e.to_string()))?;
                configured.push((id, google.clone()));
            }
        }
        iap_platform_google::GoogleVerifier::new(configured.iter().map(|(id, c)| (id, c)))
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// The Huawei verifier for every app with `[apps.<id>.huawei]`.
    pub fn huawei_verifier(&self) -> Result<iap_platform_huawei::HuaweiVerifier, ConfigError> {
        let mut configured = Vec::new();
        for (key, app) in &self.apps {
            if let Some(huawei) = &app.huawei {
                let id = AppId::parse(key.as_str())
                    .map_err(|e| ConfigError::value(format!("apps.{key}"), e.to_string()))?;
                configured.push((id, huawei.clone()));
            }
        }
        iap_platform_huawei::HuaweiVerifier::new(configured.iter().map(|(id, c)| (id, c)))
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }
}

/// The three stores' clients of one process (see [`Settings::store_clients`]).
#[derive(Debug, Clone)]
pub struct StoreClients {
    /// App Store.
    pub apple: std::sync::Arc<iap_platform_apple::AppleVerifier>,
    /// Google Play.
    pub google: std::sync::Arc<iap_platform_google::GoogleVerifier>,
    /// Huawei IAP.
    pub huawei: std::sync::Arc<iap_platform_huawei::HuaweiVerifier>,
}

impl StoreClients {
    /// As purchase verifiers.
    pub fn verifiers(&self) -> Vec<std::sync::Arc<dyn iap_domain::ports::PurchaseVerifier>> {
        vec![self.apple.clone(), self.google.clone(), self.huawei.clone()]
    }

    /// As store confirmers (Apple answers NotApplicable).
    pub fn confirmers(&self) -> Vec<std::sync::Arc<dyn iap_domain::ports::StoreConfirmer>> {
        vec![self.apple.clone(), self.google.clone(), self.huawei.clone()]
    }

    /// As notification decoders.
    pub fn decoders(
        &self,
    ) -> Vec<std::sync::Arc<dyn iap_domain::notifications::NotificationDecoder>> {
        vec![self.apple.clone(), self.google.clone(), self.huawei.clone()]
    }

    /// As the stores' histories for reconciliation (Apple notification history, Google voided
    /// purchases, Huawei cancelled purchases).
    pub fn histories(&self) -> Vec<std::sync::Arc<dyn iap_domain::reconciliation::StoreHistory>> {
        vec![self.apple.clone(), self.google.clone(), self.huawei.clone()]
    }
}
