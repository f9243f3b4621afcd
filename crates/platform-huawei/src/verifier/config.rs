//! `[apps.<app_id>.huawei]`: what an app's Huawei IAP settings say, and their defaults.

use serde::Deserialize;

use crate::api;

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
