//! Service-account OAuth: an RS256 JWT-bearer assertion exchanged at `token_uri` for an access
//! token, cached until shortly before it expires. One refresh at a time: concurrent callers wait
//! for it instead of stampeding the token endpoint.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

const SCOPE: &str = "https://www.googleapis.com/auth/androidpublisher";
/// Refresh this long before the token's stated expiry.
const MARGIN: Duration = Duration::from_secs(120);

/// The fields of a service-account key file this client uses.
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    /// `client_email`.
    pub client_email: String,
    /// `private_key` (PKCS#8 PEM).
    pub private_key: String,
    /// `private_key_id`.
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// `token_uri`.
    pub token_uri: String,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key never reaches logs.
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .finish_non_exhaustive()
    }
}

/// Why no access token could be had.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The key cannot sign (malformed PEM).
    #[error("service-account key unusable: {0}")]
    BadKey(String),
    /// The token endpoint refused the assertion.
    #[error("token endpoint refused the service account: {0}")]
    Refused(String),
    /// The token endpoint could not be reached.
    #[error("token endpoint unreachable: {0}")]
    Unreachable(String),
}

/// Cached access tokens for one service account.
#[derive(Debug)]
pub struct TokenSource {
    key: ServiceAccountKey,
    http: reqwest::Client,
    cached: Mutex<Option<(String, Instant)>>,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    expires_in: Option<u64>,
}

impl TokenSource {
    /// A source for `key`, using `http` for the token endpoint.
    pub fn new(key: ServiceAccountKey, http: reqwest::Client) -> Self {
        Self {
            key,
            http,
            cached: Mutex::new(None),
        }
    }

    /// A valid access token, from the cache or freshly fetched.
    pub async fn token(&self) -> Result<String, AuthError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, _)) = cached.as_ref().filter(|(_, until)| Instant::now() < *until) {
            return Ok(token.clone());
        }
        let (token, lifetime) = self.fetch().await?;
        *cached = Some((
            token.clone(),
            Instant::now() + lifetime.saturating_sub(MARGIN),
        ));
        Ok(token)
    }

    /// Drops the cached token (after a 401).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self) -> Result<(String, Duration), AuthError> {
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({
            "iss": self.key.client_email,
            "scope": SCOPE,
            "aud": self.key.token_uri,
            "iat": now,
            "exp": now + 3600,
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid.clone_from(&self.key.private_key_id);
        let signing = jsonwebtoken::EncodingKey::from_rsa_pem(self.key.private_key.as_bytes())
            .map_err(|e| AuthError::BadKey(e.to_string()))?;
        let assertion = jsonwebtoken::encode(&header, &claims, &signing)
            .map_err(|e| AuthError::BadKey(e.to_string()))?;
        let response = self
            .http
            .post(&self.key.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| AuthError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(AuthError::Unreachable(format!("HTTP {status}")));
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(AuthError::Refused(format!(
                "HTTP {status}: {}",
                body.chars().take(200).collect::<String>()
            )));
        }
        let reply: TokenReply = response
            .json()
            .await
            .map_err(|e| AuthError::Refused(e.to_string()))?;
        metrics::counter!("iap_store_token_refreshes_total", "store" => "google").increment(1);
        Ok((
            reply.access_token,
            Duration::from_secs(reply.expires_in.unwrap_or(3600)),
        ))
    }
}
