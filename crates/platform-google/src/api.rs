//! A small Android Publisher v3 client: the purchase reads and confirmations this system needs,
//! with Google's error bodies mapped to the domain's store errors and one token refresh on 401.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use iap_domain::ports::StoreError;
use iap_domain::store_calls::StoreCall;
use iap_domain::{Platform, RejectReason};

use crate::auth::{AuthError, TokenSource};

/// The Android Publisher API at `root` (`https://androidpublisher.googleapis.com/` in
/// production, `{emulator}/google/` in tests).
#[derive(Debug, Clone)]
pub struct AndroidPublisher {
    http: reqwest::Client,
    root: String,
    tokens: Arc<TokenSource>,
}

impl AndroidPublisher {
    /// A client for `root` authenticated by `tokens`.
    pub fn new(http: reqwest::Client, root: &str, tokens: Arc<TokenSource>) -> Self {
        let root = if root.ends_with('/') {
            root.to_owned()
        } else {
            format!("{root}/")
        };
        Self { http, root, tokens }
    }

    /// `…/applications/{package}/purchases/{rest}`, where the package is percent-encoded as one
    /// path segment here and every id in `rest` was by [`segment`]: no value can add a segment,
    /// a query or a fragment, or walk to another package with `..`.
    fn purchases_url(&self, package: &str, rest: &str) -> Result<String, StoreError> {
        Ok(format!(
            "{}androidpublisher/v3/applications/{}/purchases/{rest}",
            self.root,
            segment("package_name", package)?
        ))
    }

    /// `purchases.productsv2.getproductpurchasev2`.
    pub async fn product_v2(&self, package: &str, token: &str) -> Result<Value, StoreError> {
        let rest = format!("productsv2/tokens/{}", segment("purchase_token", token)?);
        let url = self.purchases_url(package, &rest)?;
        self.call(Method::GET, &url, "productsv2.get").await
    }

    /// `purchases.subscriptionsv2.get`.
    pub async fn subscription_v2(&self, package: &str, token: &str) -> Result<Value, StoreError> {
        let rest = format!(
            "subscriptionsv2/tokens/{}",
            segment("purchase_token", token)?
        );
        let url = self.purchases_url(package, &rest)?;
        self.call(Method::GET, &url, "subscriptionsv2.get").await
    }

    /// `…/purchases/{collection}/{product}/tokens/{token}:{action}`.
    fn token_action_url(
        &self,
        package: &str,
        collection: &str,
        product: &str,
        token: &str,
        action: &str,
    ) -> Result<String, StoreError> {
        let rest = format!(
            "{collection}/{}/tokens/{}:{action}",
            segment("product_id", product)?,
            segment("purchase_token", token)?
        );
        self.purchases_url(package, &rest)
    }

    /// `purchases.products.consume`.
    pub async fn consume(
        &self,
        package: &str,
        product: &str,
        token: &str,
    ) -> Result<Value, StoreError> {
        let url = self.token_action_url(package, "products", product, token, "consume")?;
        self.call(Method::POST, &url, "products.consume").await
    }

    /// `purchases.products.acknowledge`.
    pub async fn acknowledge_product(
        &self,
        package: &str,
        product: &str,
        token: &str,
    ) -> Result<Value, StoreError> {
        let url = self.token_action_url(package, "products", product, token, "acknowledge")?;
        self.call(Method::POST, &url, "products.acknowledge").await
    }

    /// `purchases.subscriptions.acknowledge`.
    pub async fn acknowledge_subscription(
        &self,
        package: &str,
        product: &str,
        token: &str,
    ) -> Result<Value, StoreError> {
        let url = self.token_action_url(package, "subscriptions", product, token, "acknowledge")?;
        self.call(Method::POST, &url, "subscriptions.acknowledge")
            .await
    }

    /// `purchases.voidedpurchases.list`, one page: purchases voided between `start_ms` and
    /// `end_ms`, subscriptions included (`type=1`), quantity-based partial refunds too
    /// (`includeQuantityBasedPartialRefund=true`; Google leaves them out otherwise).
    pub async fn voided_purchases(
        &self,
        package: &str,
        start_ms: i64,
        end_ms: i64,
        page_token: Option<&str>,
    ) -> Result<Value, StoreError> {
        let mut url = self.purchases_url(
            package,
            &format!(
                "voidedpurchases?startTime={start_ms}&endTime={end_ms}&type=1&includeQuantityBasedPartialRefund=true&maxResults=1000"
            ),
        )?;
        if let Some(token) = page_token {
            url.push_str("&token=");
            url.extend(url::form_urlencoded::byte_serialize(token.as_bytes()));
        }
        self.call(Method::GET, &url, "voidedpurchases.list").await
    }

    async fn call(
        &self,
        method: Method,
        url: &str,
        endpoint: &'static str,
    ) -> Result<Value, StoreError> {
        let mut call = StoreCall::start(Platform::Google, endpoint);
        let mut refreshed = false;
        let result = loop {
            let token = match self.tokens.token().await {
                Ok(token) => token,
                Err(e) => break Err(auth_error(e)),
            };
            let mut request = self
                .http
                .request(method.clone(), url)
                .bearer_auth(token)
                .timeout(Duration::from_secs(10));
            if method == Method::POST {
                request = request.json(&serde_json::json!({}));
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => {
                    break Err(StoreError::unavailable(format!(
                        "Google Play unreachable: {}",
                        e.without_url()
                    )));
                }
            };
            let status = response.status();
            call.saw_status(status.as_u16());
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                // A revoked or expired token: one fresh token, then the answer stands.
                self.tokens.invalidate().await;
                refreshed = true;
                continue;
            }
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = response.text().await.unwrap_or_default();
            break classify(status, &text, retry_after);
        };
        call.finish(&result);
        result
    }
}

/// One id as one path segment; an id that cannot be one (empty, `.`, `..`) is never sent.
fn segment(field: &'static str, value: &str) -> Result<String, StoreError> {
    iap_domain::store_ids::path_segment(field, value).map_err(|e| {
        StoreError::rejected(RejectReason::Malformed, "identifier_invalid", e.to_string())
    })
}

fn auth_error(e: AuthError) -> StoreError {
    match e {
        AuthError::Unreachable(detail) => StoreError::unavailable(detail),
        other => StoreError::Misconfigured(other.to_string()),
    }
}

/// Google's answer, as the domain sees it.
fn classify(
    status: StatusCode,
    body: &str,
    retry_after: Option<Duration>,
) -> Result<Value, StoreError> {
    if status.is_success() {
        return Ok(if body.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(body).unwrap_or(Value::Null)
        });
    }
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let reason = parsed["error"]["errors"][0]["reason"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let message = parsed["error"]["message"]
        .as_str()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect::<String>();
    let detail = format!(
        "Google Play answered HTTP {}: {reason} {message}",
        status.as_u16()
    );
    Err(match status.as_u16() {
        410 => StoreError::rejected(
            RejectReason::NotFoundAtStore,
            "token_no_longer_valid",
            detail,
        ),
        404 => StoreError::rejected(RejectReason::NotFoundAtStore, "not_found", detail),
        // Another package's token, sent with this package's name (platforms/google.md; issue
        // hyochan/react-native-iap#815): not this app's purchase.
        400 if reason == "purchaseTokenDoesNotMatchPackageName" => {
            StoreError::rejected(RejectReason::BundleMismatch, "package_mismatch", detail)
        }
        400 if reason == "invalidPurchaseState" => {
            StoreError::rejected(RejectReason::NotPaid, "invalid_purchase_state", detail)
        }
        400 => StoreError::rejected(RejectReason::NotFoundAtStore, "invalid_token", detail),
        401 | 403 => StoreError::Misconfigured(detail),
        _ => StoreError::Unavailable {
            detail,
            retry_after,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_errors_map_to_domain_errors() {
        let body =
            r#"{"error":{"code":400,"message":"x","errors":[{"reason":"invalidPurchaseState"}]}}"#;
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, body, None),
            Err(StoreError::Rejected {
                code: "invalid_purchase_state",
                ..
            })
        ));
        assert!(matches!(
            classify(StatusCode::GONE, "", None),
            Err(StoreError::Rejected {
                reason: RejectReason::NotFoundAtStore,
                ..
            })
        ));
        assert!(matches!(
            classify(StatusCode::CONFLICT, "", None),
            Err(StoreError::Unavailable { .. })
        ));
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, "", None),
            Err(StoreError::Misconfigured(_))
        ));
        let limited = classify(
            StatusCode::TOO_MANY_REQUESTS,
            "",
            Some(Duration::from_secs(3)),
        );
        assert!(
            matches!(limited, Err(StoreError::Unavailable { retry_after: Some(d), .. }) if d == Duration::from_secs(3))
        );
        assert_eq!(
            classify(StatusCode::NO_CONTENT, "", None).unwrap(),
            Value::Null
        );
    }
}
