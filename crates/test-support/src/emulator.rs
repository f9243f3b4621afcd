//! An `iap-emulator` on a free port for tests, its control API, and the `[apps.<id>.*]`
//! settings that point an app at it (App Store, Google Play and Huawei).

/// The AppGallery Connect app id the tests use at the emulator.
pub const HUAWEI_APP: &str = "102932647";

/// What an AppGallery app needs to talk to the emulator's Huawei services.
#[derive(Debug, Clone)]
pub struct HuaweiCredentials {
    /// The app's OAuth client secret.
    pub client_secret: String,
    /// The IAP public key the emulator signs this app's purchase data with, base64 DER.
    pub public_key_base64: String,
}

/// An `iap-emulator` on a free port.
#[derive(Debug)]
pub struct Emulator {
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// A client for the control API.
    pub http: reqwest::Client,
}

impl Emulator {
    /// Starts one in this process.
    pub async fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(iap_emulator::serve(
            listener,
            iap_emulator::EmulatorConfig::default(),
            std::future::pending(),
        ));
        Self {
            base,
            http: reqwest::Client::new(),
        }
    }

    /// The emulator's URL of `path` (`/apple/production`, `/emulator/stats`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET a control-API JSON document.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.get(path).await.json().await.unwrap()
    }

    /// GET a control-API document as text.
    pub async fn get_text(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// POST to the control API; panics unless it answers 2xx.
    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let reply = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_success(), "{path}: {}", reply.status());
        reply.json().await.unwrap_or(serde_json::Value::Null)
    }

    /// The root certificate the emulator's App Store chains end in, DER.
    pub async fn apple_root_der(&self) -> Vec<u8> {
        self.get("/emulator/apple/root.der")
            .await
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }

    /// The same root, base64 (what `extra_roots_base64` lists).
    pub async fn apple_root_base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.apple_root_der().await)
    }

    /// The verifyReceipt shared secret of the App Store app `bundle_id`.
    pub async fn apple_shared_secret(&self, bundle_id: &str) -> String {
        let secret = self
            .get_json(&format!("/emulator/apple/apps/{bundle_id}/shared-secret"))
            .await;
        secret["shared_secret"].as_str().unwrap().to_owned()
    }

    /// The App Store Server API key: `issuer_id`, `key_id` and `private_key_pem`.
    pub async fn apple_api_key(&self) -> serde_json::Value {
        self.get_json("/emulator/apple/api-key").await
    }

    /// The Google Play service-account key file the emulator accepts tokens for.
    pub async fn google_service_account_json(&self) -> String {
        self.get_text("/emulator/google/service-account.json").await
    }

    /// The Play Console licence key of `package`, base64.
    pub async fn google_license_key_base64(&self, package: &str) -> String {
        let key = self
            .get_json(&format!("/emulator/google/apps/{package}/license-key"))
            .await;
        key["public_key_base64"].as_str().unwrap().to_owned()
    }

    /// The OAuth client secret and IAP public key of the AppGallery app `app`.
    pub async fn huawei_credentials(&self, app: &str) -> HuaweiCredentials {
        let credentials = self
            .get_json(&format!("/emulator/huawei/apps/{app}/credentials"))
            .await;
        let text = |field: &str| credentials[field].as_str().unwrap().to_owned();
        HuaweiCredentials {
            client_secret: text("client_secret"),
            public_key_base64: text("public_key_base64"),
        }
    }

    /// `[apps.<app>.apple]`, `[apps.<app>.google]` and `[apps.<app>.huawei]` pointing at this
    /// emulator; the App Store bundle id and Google package name are `app`.
    pub async fn store_settings_for(&self, app: &str) -> String {
        let app_id = app;
        let base = &self.base;
        let account = self.google_service_account_json().await;
        let app_apple_id = iap_emulator::DEFAULT_APP_APPLE_ID;
        let license_key = self.google_license_key_base64(app_id).await;
        let huawei = self.huawei_credentials(HUAWEI_APP).await;
        let apple_key = self.apple_api_key().await;
        let apple_secret = self.apple_shared_secret(app_id).await;
        let apple_root = self.apple_root_base64().await;
        format!(
            r#"
            [apps."{app_id}".apple]
            bundle_id = "{app_id}"
            app_apple_id = {app_apple_id}
            trust_apple_root = false
            extra_roots_base64 = ["{apple_root}"]
            api_production_url = "{base}/apple/production"
            api_sandbox_url = "{base}/apple/sandbox"
            verify_receipt_production_url = "{base}/apple/production/verifyReceipt"
            verify_receipt_sandbox_url = "{base}/apple/sandbox/verifyReceipt"
            shared_secret = "{apple_secret}"
            [apps."{app_id}".apple.api]
            issuer_id = "{}"
            key_id = "{}"
            private_key_pem = '''{}'''
            [apps."{app_id}".apple.consumption]
            customer_consented = true
            refund_preference = "DECLINE"
            delivered_consumption_percentage = 100000
            [apps."{app_id}".google]
            package_name = "{app_id}"
            service_account_json = '''{account}'''
            license_key_base64 = "{license_key}"
            api_root_url = "{base}/google/"
            [apps."{app_id}".huawei]
            app_id = "{HUAWEI_APP}"
            client_secret = "{}"
            public_key_base64 = "{}"
            token_url = "{base}/huawei/oauth2/v3/token"
            orders_root_url = "{base}/huawei/orders"
            subscriptions_root_url = "{base}/huawei/subscr"
            apptouch_orders_root_url = "{base}/huawei/orders-at"
            apptouch_subscriptions_root_url = "{base}/huawei/subscr-at"
            "#,
            apple_key["issuer_id"].as_str().unwrap(),
            apple_key["key_id"].as_str().unwrap(),
            apple_key["private_key_pem"].as_str().unwrap(),
            huawei.client_secret,
            huawei.public_key_base64,
        )
    }
}
