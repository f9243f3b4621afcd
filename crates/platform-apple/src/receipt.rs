//! Legacy `verifyReceipt` (platforms/apple.md §1): production first, sandbox on 21007, back to
//! production on 21008; 21002, 21005, 21009, 5xx and retryable 211xx are retried with backoff,
//! and still count as an outage (never as a refusal) when they persist, so a paid order is not
//! lost to a transient answer.

use std::time::Duration;

use serde_json::{Value, json};

use iap_domain::ports::StoreError;
use iap_domain::store_calls::StoreCall;
use iap_domain::{Platform, RejectReason};

/// Apple's production endpoint.
pub const PRODUCTION_URL: &str = "https://buy.itunes.apple.com/verifyReceipt";
/// Apple's sandbox endpoint.
pub const SANDBOX_URL: &str = "https://sandbox.itunes.apple.com/verifyReceipt";

const ATTEMPTS: u32 = 3;

/// A verifyReceipt client.
#[derive(Debug, Clone)]
pub struct ReceiptClient {
    http: reqwest::Client,
    production_url: String,
    sandbox_url: String,
}

pub(crate) fn retryable(status: i64, body: &Value) -> bool {
    let flagged = match (&body["is-retryable"], &body["is_retryable"]) {
        (Value::Bool(b), _) | (_, Value::Bool(b)) => *b,
        (Value::String(s), _) | (_, Value::String(s)) => s == "1" || s == "true",
        (Value::Number(n), _) | (_, Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    };
    matches!(status, 21002 | 21005 | 21009) || ((21100..=21199).contains(&status) && flagged)
}

impl ReceiptClient {
    /// A client for the given endpoints.
    pub fn new(http: reqwest::Client, production_url: String, sandbox_url: String) -> Self {
        Self {
            http,
            production_url,
            sandbox_url,
        }
    }

    /// The decoded verifyReceipt answer (status 0 or 21006) for `receipt`.
    pub async fn verify(&self, receipt: &str, password: Option<&str>) -> Result<Value, StoreError> {
        let mut call = StoreCall::start(Platform::Apple, "verifyReceipt");
        let result = self.verify_counted(receipt, password, &mut call).await;
        call.finish(&result);
        result
    }

    async fn verify_counted(
        &self,
        receipt: &str,
        password: Option<&str>,
        call: &mut StoreCall,
    ) -> Result<Value, StoreError> {
        let mut body = json!({ "receipt-data": receipt, "exclude-old-transactions": false });
        if let Some(password) = password {
            body["password"] = json!(password);
        }
        let mut url = self.production_url.as_str();
        let mut redirects = 0;
        loop {
            let reply = self.post_with_retries(url, &body, call).await?;
            let status = reply["status"].as_i64().unwrap_or(-1);
            match status {
                0 | 21006 => return Ok(reply),
                21007 | 21008 if redirects < 2 => {
                    redirects += 1;
                    url = if status == 21007 {
                        &self.sandbox_url
                    } else {
                        &self.production_url
                    };
                }
                21003 => {
                    return Err(StoreError::rejected(
                        RejectReason::SignatureInvalid,
                        "receipt_unauthenticated",
                        "Apple could not authenticate the receipt",
                    ));
                }
                21004 => {
                    return Err(StoreError::Misconfigured(
                        "Apple refused the app's shared secret (21004)".into(),
                    ));
                }
                21010 => {
                    return Err(StoreError::rejected(
                        RejectReason::NotFoundAtStore,
                        "account_not_found",
                        "Apple no longer knows the account (21010)",
                    ));
                }
                21000 => {
                    return Err(StoreError::rejected(
                        RejectReason::Malformed,
                        "receipt_request_malformed",
                        "Apple could not read the request (21000)",
                    ));
                }
                other => {
                    return Err(StoreError::unavailable(format!(
                        "verifyReceipt answered status {other}"
                    )));
                }
            }
        }
    }

    async fn post_with_retries(
        &self,
        url: &str,
        body: &Value,
        call: &mut StoreCall,
    ) -> Result<Value, StoreError> {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 * 4u64.pow(attempt - 1))).await;
            }
            let response = self
                .http
                .post(url)
                .json(body)
                .timeout(Duration::from_secs(15))
                .send()
                .await;
            let response = match response {
                Ok(r) => r,
                Err(e) => {
                    last = format!("verifyReceipt unreachable: {}", e.without_url());
                    continue;
                }
            };
            call.saw_status(response.status().as_u16());
            if response.status().is_server_error() || response.status().as_u16() == 429 {
                last = format!("verifyReceipt answered HTTP {}", response.status());
                continue;
            }
            let reply: Value = match response.json().await {
                Ok(v) => v,
                Err(e) => {
                    last = format!("verifyReceipt answer unreadable: {e}");
                    continue;
                }
            };
            let status = reply["status"].as_i64().unwrap_or(-1);
            if retryable(status, &reply) {
                last = format!("verifyReceipt answered retryable status {status}");
                continue;
            }
            return Ok(reply);
        }
        Err(StoreError::unavailable(last))
    }
}

/// Picks the transaction a verification is about from a verifyReceipt answer: the one with the
/// given id, else the newest of the given product, else the only one. Both `in_app` and
/// `latest_receipt_info` are searched (the latter lacks finished consumables, the former may
/// lack renewals).
pub fn pick_transaction<'a>(
    reply: &'a Value,
    transaction_id: Option<&str>,
    product_id: Option<&str>,
) -> Option<&'a Value> {
    let entries: Vec<&Value> = reply["receipt"]["in_app"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            reply["latest_receipt_info"]
                .as_array()
                .into_iter()
                .flatten(),
        )
        .collect();
    if let Some(id) = transaction_id {
        return entries.into_iter().find(|e| e["transaction_id"] == id);
    }
    let purchase_ms = |e: &Value| {
        e["purchase_date_ms"]
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    if let Some(product) = product_id {
        return entries
            .into_iter()
            .filter(|e| e["product_id"] == product)
            .max_by_key(|e| purchase_ms(e));
    }
    let mut ids: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["transaction_id"].as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() == 1 {
        entries.into_iter().next()
    } else {
        None
    }
}
