//! `[apps.<app_id>.google]`: what an app's Google Play settings say, and their defaults.

use serde::Deserialize;

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
