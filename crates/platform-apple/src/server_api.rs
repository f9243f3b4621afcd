//! The App Store Server API, for purchases the client names only by transaction id: an ES256
//! bearer token (iss, iat, exp ≤ 1 h, aud `appstoreconnect-v1`, bid) from the in-app purchase
//! key; production first, then sandbox on 404 `4040010` (platforms/apple.md §2); 429 answers
//! carry `Retry-After` as a UNIX time in milliseconds.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use iap_domain::ports::StoreError;
use iap_domain::store_calls::StoreCall;
use iap_domain::{Platform, RejectReason};

/// Production API root.
pub const PRODUCTION_URL: &str = "https://api.storekit.itunes.apple.com";
/// Sandbox API root.
pub const SANDBOX_URL: &str = "https://api.storekit-sandbox.itunes.apple.com";

/// The in-app purchase key from App Store Connect.
#[derive(Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiCredentials {
    /// Issuer id.
    pub issuer_id: String,
    /// Key id.
    pub key_id: String,
    /// The `.p8` key (PKCS#8 PEM).
    pub private_key_pem: String,
}

impl std::fmt::Debug for ApiCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never reaches logs.
        f.debug_struct("ApiCredentials")
            .field("issuer_id", &self.issuer_id)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A client for one app.
#[derive(Debug)]
pub struct ServerApi {
    http: reqwest::Client,
    credentials: ApiCredentials,
    bundle_id: String,
    production_url: String,
    sandbox_url: String,
    token: Mutex<Option<(String, Instant)>>,
}

impl ServerApi {
    /// A client for `bundle_id` with `credentials`.
    pub fn new(
        http: reqwest::Client,
        credentials: ApiCredentials,
        bundle_id: String,
        production_url: String,
        sandbox_url: String,
    ) -> Self {
        let trim = |s: String| s.trim_end_matches('/').to_owned();
        Self {
            http,
            credentials,
            bundle_id,
            production_url: trim(production_url),
            sandbox_url: trim(sandbox_url),
            token: Mutex::new(None),
        }
    }

    async fn bearer(&self) -> Result<String, StoreError> {
        let mut cached = self.token.lock().await;
        if let Some((token, _)) = cached.as_ref().filter(|(_, until)| Instant::now() < *until) {
            return Ok(token.clone());
        }
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({
            "iss": self.credentials.issuer_id,
            "iat": now,
            "exp": now + 300,
            "aud": "appstoreconnect-v1",
            "bid": self.bundle_id,
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.credentials.key_id.clone());
        let key =
            jsonwebtoken::EncodingKey::from_ec_pem(self.credentials.private_key_pem.as_bytes())
                .map_err(|e| {
                    StoreError::Misconfigured(format!("App Store Server API key unusable: {e}"))
                })?;
        let token = jsonwebtoken::encode(&header, &claims, &key).map_err(|e| {
            StoreError::Misconfigured(format!("App Store Server API key unusable: {e}"))
        })?;
        *cached = Some((token.clone(), Instant::now() + Duration::from_secs(240)));
        Ok(token)
    }

    async fn get(&self, root: &str, path: &str) -> Result<Value, StoreError> {
        self.call(reqwest::Method::GET, root, path, None, "transactions.get")
            .await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        root: &str,
        path: &str,
        body: Option<&Value>,
        endpoint: &'static str,
    ) -> Result<Value, StoreError> {
        let mut call = StoreCall::start(Platform::Apple, endpoint);
        let result = self.send(method, root, path, body, &mut call).await;
        call.finish(&result);
        result
    }

    async fn send(
        &self,
        method: reqwest::Method,
        root: &str,
        path: &str,
        body: Option<&Value>,
        call: &mut StoreCall,
    ) -> Result<Value, StoreError> {
        let token = self.bearer().await?;
        let mut request = self
            .http
            .request(method, format!("{root}{path}"))
            .bearer_auth(token)
            .timeout(Duration::from_secs(10));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            StoreError::unavailable(format!(
                "App Store Server API unreachable: {}",
                e.without_url()
            ))
        })?;
        let status = response.status().as_u16();
        call.saw_status(status);
        let retry_at = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let code = body["errorCode"].as_i64().unwrap_or(0);
        match status {
            200 => Ok(body),
            // Send Consumption Information answers 202 with no body.
            202 | 204 => Ok(Value::Null),
            404 if code == 4_040_010 || code == 4_040_005 => Err(StoreError::rejected(
                RejectReason::NotFoundAtStore,
                "transaction_not_found",
                "the App Store does not know this transaction",
            )),
            400 => Err(StoreError::rejected(
                RejectReason::Malformed,
                "invalid_transaction_id",
                format!("App Store answered {code}"),
            )),
            401 | 403 => Err(StoreError::Misconfigured(format!(
                "App Store Server API refused the key (HTTP {status})"
            ))),
            429 => {
                let now = chrono::Utc::now().timestamp_millis();
                let retry_after =
                    retry_at.map(|at| Duration::from_millis(u64::try_from(at - now).unwrap_or(0)));
                Err(StoreError::Unavailable {
                    detail: "App Store Server API rate limit".into(),
                    retry_after,
                })
            }
            _ => Err(StoreError::unavailable(format!(
                "App Store Server API answered HTTP {status} ({code})"
            ))),
        }
    }

    /// Get Transaction Info: the signed transaction, from production or else sandbox.
    pub async fn signed_transaction(&self, transaction_id: &str) -> Result<String, StoreError> {
        let path = format!(
            "/inApps/v1/transactions/{}",
            transaction_segment("transaction_id", transaction_id)?
        );
        let reply = match self.get(&self.production_url, &path).await {
            Err(StoreError::Rejected {
                code: "transaction_not_found",
                ..
            }) => self.get(&self.sandbox_url, &path).await?,
            other => other?,
        };
        reply["signedTransactionInfo"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| {
                StoreError::unavailable(
                    "Get Transaction Info answered without signedTransactionInfo",
                )
            })
    }

    fn root(&self, environment: Option<iap_domain::Environment>) -> &str {
        match environment {
            Some(iap_domain::Environment::Sandbox) => &self.sandbox_url,
            _ => &self.production_url,
        }
    }

    /// Get All Subscription Statuses: every subscription of the customer who owns
    /// `original_transaction_id`, with the latest signed transaction and renewal info of each.
    /// Asked in the subscription's environment; production then sandbox when unknown.
    pub async fn subscription_statuses(
        &self,
        original_transaction_id: &str,
        environment: Option<iap_domain::Environment>,
    ) -> Result<Value, StoreError> {
        let path = format!(
            "/inApps/v1/subscriptions/{}",
            transaction_segment("original_transaction_id", original_transaction_id)?
        );
        match (environment, self.get(self.root(environment), &path).await) {
            (
                None,
                Err(StoreError::Rejected {
                    code: "transaction_not_found",
                    ..
                }),
            ) => self.get(&self.sandbox_url, &path).await,
            (_, other) => other,
        }
    }

    /// Send Consumption Information (v2) for a transaction whose customer asked for a refund.
    pub async fn send_consumption(
        &self,
        transaction_id: &str,
        environment: iap_domain::Environment,
        body: &Value,
    ) -> Result<(), StoreError> {
        let path = format!(
            "/inApps/v2/transactions/consumption/{}",
            transaction_segment("transaction_id", transaction_id)?
        );
        self.call(
            reqwest::Method::PUT,
            self.root(Some(environment)),
            &path,
            Some(body),
            "consumption.put",
        )
        .await
        .map(|_| ())
    }

    /// Get Notification History, one page: notifications Apple sent (or tried to) between
    /// `start_ms` and `end_ms` in `environment`.
    pub async fn notification_history(
        &self,
        environment: iap_domain::Environment,
        start_ms: i64,
        end_ms: i64,
        pagination_token: Option<&str>,
    ) -> Result<Value, StoreError> {
        let mut path = "/inApps/v1/notifications/history".to_owned();
        if let Some(token) = pagination_token {
            path.push_str("?paginationToken=");
            path.extend(url::form_urlencoded::byte_serialize(token.as_bytes()));
        }
        let body = serde_json::json!({ "startDate": start_ms, "endDate": end_ms });
        self.call(
            reqwest::Method::POST,
            self.root(Some(environment)),
            &path,
            Some(&body),
            "notifications.history",
        )
        .await
    }
}

/// A transaction id as one URL path segment: App Store transaction ids are decimal numbers
/// (StoreKit `Transaction.id` is a `UInt64`); anything else is refused before a request is built,
/// and what passes is percent-encoded all the same, so no id can change the path.
fn transaction_segment(field: &'static str, id: &str) -> Result<String, StoreError> {
    iap_domain::store_ids::apple_transaction_id(field, id)
        .and_then(|()| iap_domain::store_ids::path_segment(field, id))
        .map_err(|e| {
            StoreError::rejected(
                iap_domain::RejectReason::Malformed,
                "identifier_invalid",
                e.to_string(),
            )
        })
}
