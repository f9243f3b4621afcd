//! `iap-emulator`: a local stand-in for the stores' server APIs, speaking their wire formats
//! (paths, JSON names and types, status codes, auth) and signing with keys it generates, so
//! tests, demos and studios' own CI can buy, verify, confirm, renew and refund without a real
//! store. Purchases are made through its control API (`/emulator/...`), which returns what the
//! store's client SDK would hand the app.
//!
//! Layout (every store under its own prefix, so one server stands in for all three):
//! - `/apple/{production,sandbox}/verifyReceipt`, `/apple/{production,sandbox}/inApps/...` — App Store
//! - `/google/oauth2/token`, `/google/androidpublisher/v3/...` — Google Play Developer API
//! - `/huawei/oauth2/v3/token`, `/huawei/orders/...`, `/huawei/subscr/...` — Huawei IAP
//! - `/emulator/...` — control API: make purchases, drive life cycles, inject faults, read stats
//!
//! See `services/emulator/README.md` for the control API.

mod apple;
mod control;
mod faults;
mod google;
mod huawei;
mod keys;
mod lock;
mod notify;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use faults::{Fault, FaultKind};

/// The App Store app id (`appAppleId`) the emulator signs into an app's data unless a purchase
/// names another; configurations that point an app at the emulator set it as `app_apple_id`.
pub const DEFAULT_APP_APPLE_ID: i64 = 1_234_567_890;
pub use notify::{DeliveryMode, Store};
use state::Shared;

/// How the emulator is set up.
#[derive(Debug, Clone, Default)]
pub struct EmulatorConfig {
    /// The URL clients reach the emulator at, used in the documents it hands out (the Google
    /// service account's `token_uri`). Defaults to `http://<bound address>`.
    pub public_base_url: Option<String>,
    /// Where to POST each store's server notifications (also settable through the control API).
    pub notify_urls: Vec<(Store, String)>,
    /// Keep purchases, keys and subscriptions in this JSON file across restarts.
    pub state_file: Option<std::path::PathBuf>,
}

/// A running emulator's state, shared by its handlers.
#[derive(Debug, Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
}

impl Emulator {
    /// An emulator with new keys and no purchases, or the world saved in `state_file`.
    pub fn open(base_url: String, state_file: Option<std::path::PathBuf>) -> std::io::Result<Self> {
        Ok(Self {
            shared: Arc::new(Shared::open(base_url, state_file)?),
        })
    }

    /// Every route: the stores' APIs and the control API.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .nest("/apple", apple::router())
            .nest("/google", google::router())
            .nest("/huawei", huawei::router())
            .nest(
                "/emulator",
                control::router()
                    .merge(notify::router())
                    .merge(apple::control_router())
                    .merge(google::control_router())
                    .merge(huawei::control_router()),
            )
            .layer(axum::middleware::from_fn_with_state(
                self.shared.clone(),
                notify::after_request,
            ))
            .layer(axum::middleware::from_fn_with_state(
                self.shared.clone(),
                faults::inject,
            ))
            .with_state(self.shared.clone())
    }

    /// The emulator's App Store root certificate (DER): what a verifier trusts in place of
    /// Apple Root CA G3 to accept the emulator's signed transactions.
    pub fn apple_root_der(&self) -> Vec<u8> {
        lock::lock(&self.shared.apple).root_der()
    }

    /// A Google service-account key file (JSON) the emulator's token endpoint accepts.
    pub fn google_service_account_json(&self) -> String {
        lock::lock(&self.shared.google)
            .service_account_json()
            .to_string()
    }

    /// The Play Console licence key (base64 DER SPKI) of a package.
    pub fn google_license_key(&self, package: &str) -> String {
        lock::lock(&self.shared.google).license_key_base64(package)
    }

    /// A Huawei app's OAuth client secret and IAP public key (base64 DER SPKI).
    pub fn huawei_credentials(&self, app_id: &str) -> (String, String) {
        lock::lock(&self.shared.huawei).credentials(app_id)
    }

    /// The App Store Server API key the emulator accepts: issuer id, key id, PKCS#8 PEM.
    pub fn apple_api_key(&self) -> (String, String, String) {
        lock::lock(&self.shared.apple).api_key()
    }

    /// The verifyReceipt shared secret of a bundle.
    pub fn apple_shared_secret(&self, bundle: &str) -> String {
        lock::lock(&self.shared.apple).shared_secret(bundle)
    }

    /// The base URL the emulator advertises.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// Writes the world to the state file now (keys made by the reads above are otherwise kept
    /// at the next request that changes something).
    pub fn save(&self) -> std::io::Result<()> {
        self.shared.save()
    }

    /// A complete configuration file for `iap-verifier`, `iap-delivery` and `iap-scheduler`:
    /// the demo catalog of `app` (bundle id and package name) and its three stores pointing at
    /// this emulator, with the emulator's keys. Valid as long as the emulator keeps its keys
    /// (`--state-file`).
    pub fn split_services_config(&self, app: &str, huawei_app: &str) -> String {
        use base64::Engine;
        let base = self.base_url();
        let apple_root = base64::engine::general_purpose::STANDARD.encode(self.apple_root_der());
        let (issuer_id, key_id, apple_key) = self.apple_api_key();
        let shared_secret = self.apple_shared_secret(app);
        let account = self.google_service_account_json();
        let license_key = self.google_license_key(app);
        let (huawei_secret, huawei_key) = self.huawei_credentials(huawei_app);
        format!(
            r#"# Written by `iap-emulator --print-config`: the demo app's stores point at the emulator
# at {base}, with the emulator's keys (kept in its --state-file). Listen addresses, the
# database and the game server come from the environment (docker-compose.yml).

[apps."{app}"]
max_open_orders_per_user = 20
[apps."{app}".sandbox]
# The emulator's purchases are sandbox purchases.
allow_all = true
[apps."{app}".products.gems_100]
kind = "consumable"
max_quantity = 10
[apps."{app}".products.no_ads]
kind = "non_consumable"
[apps."{app}".products.premium_monthly]
kind = "auto_renewable"

[apps."{app}".apple]
bundle_id = "{app}"
app_apple_id = {DEFAULT_APP_APPLE_ID}
trust_apple_root = false
extra_roots_base64 = ["{apple_root}"]
shared_secret = "{shared_secret}"
verify_receipt_production_url = "{base}/apple/production/verifyReceipt"
verify_receipt_sandbox_url = "{base}/apple/sandbox/verifyReceipt"
api_production_url = "{base}/apple/production"
api_sandbox_url = "{base}/apple/sandbox"
[apps."{app}".apple.api]
issuer_id = "{issuer_id}"
key_id = "{key_id}"
private_key_pem = '''{apple_key}'''

[apps."{app}".google]
package_name = "{app}"
service_account_json = '''{account}'''
license_key_base64 = "{license_key}"
api_root_url = "{base}/google/"

[apps."{app}".huawei]
app_id = "{huawei_app}"
client_secret = "{huawei_secret}"
public_key_base64 = "{huawei_key}"
token_url = "{base}/huawei/oauth2/v3/token"
orders_root_url = "{base}/huawei/orders"
subscriptions_root_url = "{base}/huawei/subscr"
apptouch_orders_root_url = "{base}/huawei/orders-at"
apptouch_subscriptions_root_url = "{base}/huawei/subscr-at"
"#
        )
    }
}

/// The app `--print-config` configures: the demo app iapd also uses.
pub const DEMO_APP: &str = "com.example.game";

/// That app's AppGallery Connect app id at the emulator.
pub const DEMO_HUAWEI_APP_ID: &str = "100000001";

/// Binds nothing itself: serves the emulator on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    config: EmulatorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (_, router) = build(&listener, config)?;
    let router = router.merge(iap_runtime::http::ops_router(None));
    axum::serve(iap_runtime::http::without_nagle(listener), router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The emulator for a bound listener, and its router.
pub fn build(
    listener: &TcpListener,
    config: EmulatorConfig,
) -> std::io::Result<(Emulator, axum::Router)> {
    let addr: SocketAddr = listener.local_addr()?;
    let base_url = config
        .public_base_url
        .unwrap_or_else(|| format!("http://{addr}"));
    let emulator = Emulator::open(base_url, config.state_file)?;
    for (store, url) in config.notify_urls {
        emulator.shared.notifier.set_target(store, Some(url));
    }
    let router = emulator.router();
    Ok((emulator, router))
}
