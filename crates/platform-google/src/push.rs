//! Authenticated Pub/Sub push: Google signs each push with an OIDC token (RS256) in
//! `Authorization: Bearer …`. We check the signature against Google's published keys (cached,
//! refetched once for an unknown key id), the issuer, the audience the subscription was created
//! with, the expiry, and — when configured — the push service account's verified email.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;

use iap_domain::RejectReason;
use iap_domain::ports::StoreError;

/// Google's OIDC signing keys (JWKS).
pub const GOOGLE_CERTS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";

/// How long fetched keys are used before being fetched again.
const KEYS_TTL: Duration = Duration::from_secs(3600);

/// Verifies the bearer tokens of one push subscription.
#[derive(Debug)]
pub struct PushAuth {
    audience: String,
    service_account: Option<String>,
    certs_url: String,
    http: reqwest::Client,
    keys: Mutex<Option<(Instant, HashMap<String, DecodingKey>)>>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: String,
    n: String,
    e: String,
    #[serde(default)]
    kty: String,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
}

fn refused(code: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::rejected(RejectReason::SignatureInvalid, code, detail)
}

impl PushAuth {
    /// Checks tokens for `audience` (and, if given, the push service account's email), with
    /// keys from `certs_url`.
    pub fn new(
        audience: String,
        service_account: Option<String>,
        certs_url: String,
        http: reqwest::Client,
    ) -> Self {
        Self {
            audience,
            service_account,
            certs_url,
            http,
            keys: Mutex::new(None),
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, StoreError> {
        let jwks: Jwks = self
            .http
            .get(&self.certs_url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| StoreError::unavailable(format!("Google certs: {}", e.without_url())))?
            .json()
            .await
            .map_err(|e| StoreError::unavailable(format!("Google certs: {e}")))?;
        Ok(jwks
            .keys
            .into_iter()
            .filter(|k| k.kty.is_empty() || k.kty == "RSA")
            .filter_map(|k| {
                DecodingKey::from_rsa_components(&k.n, &k.e)
                    .ok()
                    .map(|key| (k.kid, key))
            })
            .collect())
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, StoreError> {
        let mut cached = self.keys.lock().await;
        let fresh = cached
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < KEYS_TTL);
        if let Some((_, keys)) = cached.as_ref().filter(|_| fresh)
            && let Some(key) = keys.get(kid)
        {
            return Ok(key.clone());
        }
        // Stale, or a key id we have not seen (Google rotates keys): fetch once.
        let keys = self.fetch().await?;
        let key = keys.get(kid).cloned();
        *cached = Some((Instant::now(), keys));
        key.ok_or_else(|| {
            refused(
                "push_token_unknown_key",
                "the push token's key is not Google's",
            )
        })
    }

    /// Verifies an `Authorization` header value.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<(), StoreError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| refused("push_token_missing", "the push carries no bearer token"))?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| refused("push_token_malformed", e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(refused(
                "push_token_malformed",
                "the push token is not RS256",
            ));
        }
        let kid = header
            .kid
            .ok_or_else(|| refused("push_token_malformed", "the push token names no key"))?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[self.audience.as_str()]);
        validation.set_issuer(&["https://accounts.google.com", "accounts.google.com"]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| refused("push_token_invalid", e.to_string()))?
            .claims;
        if let Some(expected) = &self.service_account
            && (claims.email.as_deref() != Some(expected.as_str())
                || claims.email_verified != Some(true))
        {
            return Err(refused(
                "push_token_wrong_account",
                "the push was not sent by the configured service account",
            ));
        }
        Ok(())
    }
}
