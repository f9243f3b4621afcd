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
/// Order service root of the AppTouch site.
pub const APPTOUCH_ORDERS_ROOT: &str = "https://orders-at-dre.iap.cloud.huawei.eu";
/// Subscription service root of the AppTouch site.
pub const APPTOUCH_SUBSCRIPTIONS_ROOT: &str = "https://subscr-at-dre.iap.cloud.huawei.eu";

/// Which of Huawei's sites holds a purchase. Purchases of HUAWEI ID accounts can be asked of any
/// regular site (Huawei routes between them); purchases of AppTouch (carrier) accounts, whose
/// `InAppPurchaseData` carries `accountFlag` 1, only of the AppTouch site, which answers code 8
/// for every other token (docs/stores.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// The configured regular site.
    HuaweiId,
    /// The AppTouch site.
    AppTouch,
}

impl Site {
    /// Both sites, the regular one first.
    pub const ALL: [Site; 2] = [Site::HuaweiId, Site::AppTouch];

    /// The site of a purchase, from its (signed) `InAppPurchaseData`.
    pub fn of(purchase_data: &Value) -> Site {
        let flag = &purchase_data["accountFlag"];
        if flag.as_i64() == Some(1) || flag.as_str() == Some("1") {
            Site::AppTouch
        } else {
            Site::HuaweiId
        }
    }

    fn other(self) -> Site {
        match self {
            Site::HuaweiId => Site::AppTouch,
            Site::AppTouch => Site::HuaweiId,
        }
    }
}

/// The Order and Subscription service roots of one site.
#[derive(Debug, Clone)]
pub struct SiteRoots {
    /// Order service root.
    pub orders: String,
    /// Subscription service root.
    pub subscriptions: String,
}

impl SiteRoots {
    fn trimmed(self) -> Self {
        let trim = |s: String| s.trim_end_matches('/').to_owned();
        Self {
            orders: trim(self.orders),
            subscriptions: trim(self.subscriptions),
        }
    }
}

/// One app's access to Huawei's IAP services.
#[derive(Debug)]
pub struct HuaweiApi {
    http: reqwest::Client,
    client_id: String,
    client_secret: String,
    token_url: String,
    huawei_id: SiteRoots,
    apptouch: SiteRoots,
    token: Mutex<Option<(String, Instant)>>,
}

impl HuaweiApi {
    /// Access for one app, at its regular site and at the AppTouch site.
    pub fn new(
        http: reqwest::Client,
        client_id: String,
        client_secret: String,
        token_url: String,
        huawei_id: SiteRoots,
        apptouch: SiteRoots,
    ) -> Self {
        Self {
            http,
            client_id,
            client_secret,
            token_url,
            huawei_id: huawei_id.trimmed(),
            apptouch: apptouch.trimmed(),
            token: Mutex::new(None),
        }
    }

    fn roots(&self, site: Site) -> &SiteRoots {
        match site {
            Site::HuaweiId => &self.huawei_id,
            Site::AppTouch => &self.apptouch,
        }
    }

    /// A call about one purchase, at `first` and, when that site answers code 8 (it does not
    /// know the token), at the other: a purchase whose site is not known from signed data (a
    /// confirmation, a notification, a refresh) is found where it lives. The first answer
    /// stands when neither knows it.
    async fn post_where_known(
        &self,
        first: Site,
        url: impl Fn(&SiteRoots) -> String,
        body: Value,
        pss: bool,
        endpoint: &'static str,
    ) -> Result<Value, StoreError> {
        let reply = self
            .post(url(self.roots(first)), body.clone(), pss, endpoint)
            .await?;
        if response_code(&reply) != "8" {
            return Ok(reply);
        }
        let elsewhere = self
            .post(url(self.roots(first.other())), body, pss, endpoint)
            .await?;
        Ok(if response_code(&elsewhere) == "8" {
            reply
        } else {
            elsewhere
        })
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

    /// Order service: verify a purchase token, at `site` first.
    pub async fn verify_order(
        &self,
        token: &str,
        product: &str,
        pss: bool,
        site: Site,
    ) -> Result<Value, StoreError> {
        self.post_where_known(
            site,
            |roots| format!("{}/applications/purchases/tokens/verify", roots.orders),
            json!({ "purchaseToken": token, "productId": product }),
            pss,
            "orders.verify",
        )
        .await
    }

    /// Order service: confirm (consume) a delivered purchase, at whichever site knows it.
    pub async fn confirm(&self, token: &str, product: &str) -> Result<Value, StoreError> {
        self.post_where_known(
            Site::HuaweiId,
            |roots| format!("{}/applications/v2/purchases/confirm", roots.orders),
            json!({ "purchaseToken": token, "productId": product }),
            false,
            "orders.confirm",
        )
        .await
    }

    /// Order service of `site`: purchases cancelled or refunded there between `start_ms` and
    /// `end_ms`, one page, subscriptions included (`type` 1).
    pub async fn cancelled_list(
        &self,
        site: Site,
        start_ms: i64,
        end_ms: i64,
        continuation: Option<&str>,
    ) -> Result<Value, StoreError> {
        let url = format!(
            "{}/applications/v2/purchases/cancelledList",
            self.roots(site).orders
        );
        let mut body = json!({ "startAt": start_ms, "endAt": end_ms, "maxRows": 1000, "type": 1 });
        if let Some(token) = continuation {
            body["continuationToken"] = json!(token);
        }
        self.post(url, body, false, "orders.cancelledList").await
    }

    /// Subscription service: current state of a subscription, at `site` first.
    pub async fn subscription(
        &self,
        subscription_id: &str,
        token: &str,
        pss: bool,
        site: Site,
    ) -> Result<Value, StoreError> {
        self.post_where_known(
            site,
            |roots| format!("{}/sub/applications/v2/purchases/get", roots.subscriptions),
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
