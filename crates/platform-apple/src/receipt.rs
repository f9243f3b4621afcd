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

/// Every transaction of a verifyReceipt answer: `in_app` and `latest_receipt_info` (the latter
/// lacks finished consumables, the former may lack renewals), one entry per transaction id.
fn entries(reply: &Value) -> Vec<&Value> {
    let mut seen = std::collections::HashSet::new();
    reply["receipt"]["in_app"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            reply["latest_receipt_info"]
                .as_array()
                .into_iter()
                .flatten(),
        )
        .filter(|e| seen.insert(e["transaction_id"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

fn purchase_ms(entry: &Value) -> i64 {
    entry["purchase_date_ms"]
        .as_str()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(0)
}

/// What a verification picks from a verifyReceipt answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Pick<'a> {
    /// This transaction.
    One(&'a Value),
    /// Several transactions of the product could be meant (no transaction id was given): the
    /// caller picks among them, oldest first, by what is recorded already.
    Candidates(Vec<&'a Value>),
}

impl<'a> Pick<'a> {
    /// The transactions picked, oldest first.
    pub fn entries(&self) -> Vec<&'a Value> {
        match self {
            Pick::One(entry) => vec![entry],
            Pick::Candidates(entries) => entries.clone(),
        }
    }
}

/// Picks the transaction a verification is about: the one with the given id; else, for a
/// product, its subscription period that is newest (a subscription's current period), or —
/// for a product bought again and again, with no periods — every transaction of it, oldest
/// first, for the caller to take the oldest not yet recorded (the newest would leave an older
/// unfinished one to be finished unrecorded); else the only transaction.
pub fn pick_transaction<'a>(
    reply: &'a Value,
    transaction_id: Option<&str>,
    product_id: Option<&str>,
) -> Option<Pick<'a>> {
    let entries = entries(reply);
    if let Some(id) = transaction_id {
        return entries
            .into_iter()
            .find(|e| e["transaction_id"] == id)
            .map(Pick::One);
    }
    if let Some(product) = product_id {
        let mut of_product: Vec<&Value> = entries
            .into_iter()
            .filter(|e| e["product_id"] == product)
            .collect();
        of_product.sort_by_key(|e| purchase_ms(e));
        if of_product
            .iter()
            .any(|e| e.get("expires_date_ms").is_some())
        {
            return of_product.last().copied().map(Pick::One);
        }
        return match of_product.len() {
            0 => None,
            1 => Some(Pick::One(of_product[0])),
            _ => Some(Pick::Candidates(of_product)),
        };
    }
    match entries.as_slice() {
        [only] => Some(Pick::One(only)),
        _ => None,
    }
}
