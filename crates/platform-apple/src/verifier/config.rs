//! `[apps.<app_id>.apple]`: what an app's App Store settings say, and their defaults.

use serde::Deserialize;

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
