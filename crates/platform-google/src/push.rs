//! Authenticated Pub/Sub push: Google signs each push with an OIDC token (RS256) in
//! `Authorization: Bearer …`. We check the signature against Google's published keys (cached,
//! refetched for an unknown key id at most once per [`MIN_REFETCH_INTERVAL`]), the issuer, the
//! audience the subscription was created with, the expiry, and — when configured — the push
//! service account's verified email.
//!
//! The key cache is read without waiting for a fetch: a push whose key is cached never waits for
//! Google, and a flood of pushes naming unknown keys (anyone can send them) makes one fetch per
//! interval, not one per push.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
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

/// The shortest time between two fetches of Google's keys (an unknown key id within it is
/// refused without a fetch; Pub/Sub retries the push later).
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// Keys as last fetched.
type KeySet = Arc<HashMap<String, DecodingKey>>;

/// Verifies the bearer tokens of one push subscription.
#[derive(Debug)]
pub struct PushAuth {
    audience: String,
    service_account: Option<String>,
    certs_url: String,
    http: reqwest::Client,
    /// The keys and when they were fetched; held only to read or swap, never across a fetch.
    keys: RwLock<Option<(Instant, KeySet)>>,
    /// Held by the one task fetching; holds when the last fetch was tried.
    fetching: Mutex<Option<Instant>>,
    /// The shortest time between two fetches.
    refetch_interval: Duration,
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
            keys: RwLock::new(None),
            fetching: Mutex::new(None),
            refetch_interval: MIN_REFETCH_INTERVAL,
        }
    }

    /// Fetches at most once per `interval` instead of [`MIN_REFETCH_INTERVAL`].
    #[must_use]
    pub fn with_refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
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

    /// The cached keys and whether they are within their TTL.
    fn cached(&self) -> Option<(bool, KeySet)> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|(at, keys)| (at.elapsed() < KEYS_TTL, keys.clone()))
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, StoreError> {
        if let Some((true, keys)) = self.cached()
            && let Some(key) = keys.get(kid)
        {
            return Ok(key.clone());
        }
        // Stale, or a key id we have not seen (Google rotates keys). One task fetches; the others
        // wait for it here (pushes with cached keys do not), then find its result below.
        let mut last_try = self.fetching.lock().await;
        let cached = self.cached();
        if let Some((true, keys)) = &cached
            && let Some(key) = keys.get(kid)
        {
            return Ok(key.clone());
        }
        let recently = last_try.is_some_and(|at| at.elapsed() < self.refetch_interval);
        let keys = if recently {
            // Fetched a moment ago: what Google published then is what it publishes now. Stale
            // keys still serve until the next fetch is allowed.
            match cached {
                Some((_, keys)) => keys,
                None => {
                    return Err(StoreError::unavailable(
                        "Google certs: the last fetch failed; retried shortly",
                    ));
                }
            }
        } else {
            let fetched = self.fetch().await;
            // From the end of the fetch: waiters that queued during a slow one do not fetch again.
            *last_try = Some(Instant::now());
            let keys: KeySet = Arc::new(fetched?);
            *self
                .keys
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some((Instant::now(), keys.clone()));
            keys
        };
        keys.get(kid).cloned().ok_or_else(|| {
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
