//! An `iap-emulator` on a free port for tests, its control API, and the `[apps.<id>.*]`
//! settings that point an app at it (App Store, Google Play and Huawei).

/// The AppGallery Connect app id the tests use at the emulator.
pub const HUAWEI_APP: &str = "102932647";

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

    /// GET a control-API JSON document.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// POST to the control API; panics unless it answers 2xx.
    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let reply = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_success(), "{path}: {}", reply.status());
        reply.json().await.unwrap_or(serde_json::Value::Null)
    }

    /// `[apps.<app>.apple]`, `[apps.<app>.google]` and `[apps.<app>.huawei]` pointing at this
    /// emulator; the App Store bundle id and Google package name are `app`.
    pub async fn store_settings_for(&self, app: &str) -> String {
        let app_id = app;
        let base = &self.base;
        let account = self
            .http
            .get(format!("{base}/emulator/google/service-account.json"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let app_apple_id = iap_emulator::DEFAULT_APP_APPLE_ID;
        let key = self
            .get_json(&format!("/emulator/google/apps/{app_id}/license-key"))
            .await;
        let huawei = self
            .get_json(&format!("/emulator/huawei/apps/{HUAWEI_APP}/credentials"))
            .await;
        let apple_key = self.get_json("/emulator/apple/api-key").await;
        let apple_secret = self
            .get_json(&format!("/emulator/apple/apps/{app_id}/shared-secret"))
            .await;
        use base64::Engine;
        let apple_root = base64::engine::general_purpose::STANDARD.encode(
            self.http
                .get(format!("{base}/emulator/apple/root.der"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap(),
        );
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
            shared_secret = "{}"
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
            license_key_base64 = "{}"
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
            apple_secret["shared_secret"].as_str().unwrap(),
            apple_key["issuer_id"].as_str().unwrap(),
            apple_key["key_id"].as_str().unwrap(),
            apple_key["private_key_pem"].as_str().unwrap(),
            key["public_key_base64"].as_str().unwrap(),
            huawei["client_secret"].as_str().unwrap(),
            huawei["public_key_base64"].as_str().unwrap()
        )
    }
}
