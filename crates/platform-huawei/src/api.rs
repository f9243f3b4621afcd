//! The Order and Subscription services: app-level token (client credentials, cached), `Basic
//! base64("APPAT:" + token)` auth, JSON bodies, `responseCode` answers.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use iap_domain::Platform;
use iap_domain::ports::StoreError;
use iap_domain::store_calls::StoreCall;

/// Production endpoints (Germany site; Huawei routes other sites' tokens, AppTouch aside).
pub const TOKEN_URL: &str = "https://oauth-login.cloud.huawei.com/oauth2/v3/token";
/// Order service root.
pub const ORDERS_ROOT: &str = "https://orders-dre.iap.cloud.huawei.eu";
/// Subscription service root.
pub const SUBSCRIPTIONS_ROOT: &str = "https://subscr-dre.iap.cloud.huawei.eu";

/// One app's access to Huawei's IAP services.
#[derive(Debug)]
pub struct HuaweiApi {
    http: reqwest::Client,
    client_id: String,
    client_secret: String,
    token_url: String,
    orders_root: String,
    subscriptions_root: String,
    token: Mutex<Option<(String, Instant)>>,
}

impl HuaweiApi {
    /// Access for one app.
    pub fn new(
        http: reqwest::Client,
        client_id: String,
        client_secret: String,
        token_url: String,
        orders_root: String,
        subscriptions_root: String,
    ) -> Self {
        let trim = |s: String| s.trim_end_matches('/').to_owned();
        Self {
            http,
            client_id,
            client_secret,
            token_url,
            orders_root: trim(orders_root),
            subscriptions_root: trim(subscriptions_root),
            token: Mutex::new(None),
        }
    }

    async fn access_token(&self, call: &mut StoreCall) -> Result<String, StoreError> {
        let mut cached = self.token.lock().await;
        if let Some((token, _)) = cached.as_ref().filter(|(_, until)| Instant::now() < *until) {
            return Ok(token.clone());
        }
        let response = self
            .http
            .post(&self.token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &self.client_id),
                ("client_secret", &self.client_secret),
            ])
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| {
                StoreError::unavailable(format!("Huawei OAuth unreachable: {}", e.without_url()))
            })?;
        let status = response.status();
        call.saw_status(status.as_u16());
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(StoreError::unavailable(format!(
                "Huawei OAuth answered HTTP {status}"
            )));
        }
        if !status.is_success() {
            return Err(StoreError::Misconfigured(format!(
                "Huawei OAuth refused the app credentials (HTTP {status})"
            )));
        }
        let reply: Value = response
            .json()
            .await
            .map_err(|e| StoreError::unavailable(e.to_string()))?;
        let token = reply["access_token"]
            .as_str()
            .ok_or_else(|| StoreError::unavailable("no access_token"))?
            .to_owned();
        let lifetime = Duration::from_secs(reply["expires_in"].as_u64().unwrap_or(3600))
            .saturating_sub(Duration::from_secs(120));
        *cached = Some((token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    async fn post(
        &self,
        url: String,
        body: Value,
        pss: bool,
        endpoint: &'static str,
    ) -> Result<Value, StoreError> {
        let mut call = StoreCall::start(Platform::Huawei, endpoint);
        let mut refreshed = false;
        let result = loop {
            let token = match self.access_token(&mut call).await {
                Ok(token) => token,
                Err(e) => break Err(e),
            };
            let mut request = self
                .http
                .post(&url)
                .header(
                    "authorization",
                    format!("Basic {}", STANDARD.encode(format!("APPAT:{token}"))),
                )
                .json(&body)
                .timeout(Duration::from_secs(10));
            if pss {
                request = request.header(
                    "HW-IAP-APPINFO",
                    r#"{"signatureAlgorithm":"SHA256WithRSA/PSS"}"#,
                );
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    break Err(StoreError::unavailable(format!(
                        "Huawei IAP unreachable: {}",
                        e.without_url()
                    )));
                }
            };
            let status = response.status();
            call.saw_status(status.as_u16());
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                *self.token.lock().await = None;
                refreshed = true;
                continue;
            }
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                break Err(StoreError::unavailable(format!(
                    "Huawei IAP answered HTTP {status}"
                )));
            }
            if !status.is_success() {
                break Err(StoreError::Misconfigured(format!(
                    "Huawei IAP answered HTTP {status}"
                )));
            }
            break response
                .json::<Value>()
                .await
                .map_err(|e| StoreError::unavailable(e.to_string()));
        };
        call.finish(&result);
        result
    }

    /// Order service: verify a purchase token.
    pub async fn verify_order(
        &self,
        token: &str,
        product: &str,
        pss: bool,
    ) -> Result<Value, StoreError> {
        let url = format!("{}/applications/purchases/tokens/verify", self.orders_root);
        self.post(
            url,
            json!({ "purchaseToken": token, "productId": product }),
            pss,
            "orders.verify",
        )
        .await
    }

    /// Order service: confirm (consume) a delivered purchase.
    pub async fn confirm(&self, token: &str, product: &str) -> Result<Value, StoreError> {
        let url = format!("{}/applications/v2/purchases/confirm", self.orders_root);
        self.post(
            url,
            json!({ "purchaseToken": token, "productId": product }),
            false,
            "orders.confirm",
        )
        .await
    }

    /// Order service: purchases cancelled or refunded between `start_ms` and `end_ms`, one page,
    /// subscriptions included (`type` 1).
    pub async fn cancelled_list(
        &self,
        start_ms: i64,
        end_ms: i64,
        continuation: Option<&str>,
    ) -> Result<Value, StoreError> {
        let url = format!(
            "{}/applications/v2/purchases/cancelledList",
            self.orders_root
        );
        let mut body = json!({ "startAt": start_ms, "endAt": end_ms, "maxRows": 1000, "type": 1 });
        if let Some(token) = continuation {
            body["continuationToken"] = json!(token);
        }
        self.post(url, body, false, "orders.cancelledList").await
    }

    /// Subscription service: current state of a subscription.
    pub async fn subscription(
        &self,
        subscription_id: &str,
        token: &str,
        pss: bool,
    ) -> Result<Value, StoreError> {
        let url = format!(
            "{}/sub/applications/v2/purchases/get",
            self.subscriptions_root
        );
        self.post(
            url,
            json!({ "subscriptionId": subscription_id, "purchaseToken": token }),
            pss,
            "subscriptions.get",
        )
        .await
    }
}

/// `responseCode`, which Huawei sends as a string (and fixtures as a number).
pub fn response_code(reply: &Value) -> String {
    match &reply["responseCode"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}
