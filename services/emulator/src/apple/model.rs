//! The App Store's records — transactions, renewal states, shared secrets, notification
//! history — and their wire shapes: the signed transaction and renewal payloads, receipt
//! entries, the emulator's receipt blob and ASSN v2 notifications.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{FixedOffset, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::signing::AppleKeys;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Env {
    Production,
    Sandbox,
}

impl Env {
    pub(super) fn wire(self) -> &'static str {
        match self {
            Env::Production => "Production",
            Env::Sandbox => "Sandbox",
        }
    }

    pub(super) fn from_path(segment: &str) -> Option<Self> {
        match segment {
            "production" => Some(Env::Production),
            "sandbox" => Some(Env::Sandbox),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Transaction {
    pub(super) transaction_id: String,
    pub(super) original_transaction_id: String,
    pub(super) web_order_line_item_id: Option<String>,
    pub(super) bundle_id: String,
    pub(super) app_apple_id: i64,
    pub(super) product_id: String,
    pub(super) product_type: String,
    pub(super) subscription_group: Option<String>,
    pub(super) quantity: u32,
    pub(super) purchase_date_ms: i64,
    pub(super) original_purchase_date_ms: i64,
    pub(super) expires_date_ms: Option<i64>,
    pub(super) app_account_token: Option<String>,
    pub(super) environment: Env,
    pub(super) price: i64,
    pub(super) currency: String,
    pub(super) free_trial: bool,
    pub(super) reason: String,
    pub(super) revocation_date_ms: Option<i64>,
    /// A prorated refund's share in milliunits (`REFUND_PRORATED`); `None`: a full refund.
    /// Defaulted so a state file saved before it still loads.
    #[serde(default)]
    pub(super) revocation_percentage: Option<u32>,
    pub(super) is_upgraded: bool,
    pub(super) finished: bool,
    pub(super) customer: String,
    pub(super) order_id: String,
    pub(super) signed_date_ms: i64,
}

impl Transaction {
    pub(super) fn is_subscription(&self) -> bool {
        self.product_type == "Auto-Renewable Subscription"
    }

    fn payload(&self) -> Value {
        let mut p = json!({
            "transactionId": self.transaction_id,
            "originalTransactionId": self.original_transaction_id,
            "bundleId": self.bundle_id,
            "productId": self.product_id,
            "purchaseDate": self.purchase_date_ms,
            "originalPurchaseDate": self.original_purchase_date_ms,
            "quantity": self.quantity,
            "type": self.product_type,
            "inAppOwnershipType": "PURCHASED",
            "signedDate": self.signed_date_ms,
            "environment": self.environment.wire(),
            "transactionReason": self.reason,
            "storefront": "USA",
            "storefrontId": "143441",
            "price": self.price,
            "currency": self.currency,
            "appTransactionId": app_transaction_id(&self.bundle_id, &self.customer),
        });
        if let Some(id) = &self.web_order_line_item_id {
            p["webOrderLineItemId"] = json!(id);
        }
        if let Some(group) = &self.subscription_group {
            p["subscriptionGroupIdentifier"] = json!(group);
        }
        if let Some(expires) = self.expires_date_ms {
            p["expiresDate"] = json!(expires);
        }
        if let Some(token) = &self.app_account_token {
            p["appAccountToken"] = json!(token);
        }
        if self.free_trial {
            p["offerType"] = json!(1);
            p["offerDiscountType"] = json!("FREE_TRIAL");
            p["price"] = json!(0);
        }
        if self.is_upgraded {
            p["isUpgraded"] = json!(true);
        }
        if let Some(revoked) = self.revocation_date_ms {
            p["revocationDate"] = json!(revoked);
            p["revocationReason"] = json!(0);
            match self.revocation_percentage {
                Some(milli) => {
                    p["revocationType"] = json!("REFUND_PRORATED");
                    p["revocationPercentage"] = json!(milli);
                }
                None => {
                    p["revocationType"] = json!("REFUND_FULL");
                    p["revocationPercentage"] = json!(100_000);
                }
            }
        }
        p
    }

    /// One `in_app` / `latest_receipt_info` entry: every value a string, as Apple sends them.
    pub(super) fn receipt_entry(&self) -> Value {
        let mut e = json!({
            "quantity": self.quantity.to_string(),
            "product_id": self.product_id,
            "transaction_id": self.transaction_id,
            "original_transaction_id": self.original_transaction_id,
            "is_trial_period": self.free_trial.to_string(),
            "is_in_intro_offer_period": "false",
            "in_app_ownership_type": "PURCHASED",
        });
        add_date(&mut e, "purchase_date", self.purchase_date_ms);
        add_date(
            &mut e,
            "original_purchase_date",
            self.original_purchase_date_ms,
        );
        if let Some(expires) = self.expires_date_ms {
            add_date(&mut e, "expires_date", expires);
        }
        if let Some(id) = &self.web_order_line_item_id {
            e["web_order_line_item_id"] = json!(id);
        }
        if let Some(group) = &self.subscription_group {
            e["subscription_group_identifier"] = json!(group);
        }
        if let Some(token) = &self.app_account_token {
            e["app_account_token"] = json!(token);
        }
        if let Some(revoked) = self.revocation_date_ms {
            add_date(&mut e, "cancellation_date", revoked);
            e["cancellation_reason"] = json!("0");
        }
        if self.is_upgraded {
            e["is_upgraded"] = json!("true");
        }
        e
    }
}

/// Adds `name`, `name_ms` and `name_pst` the way receipts spell dates.
pub(super) fn add_date(entry: &mut Value, name: &str, ms: i64) {
    let at = Utc
        .timestamp_millis_opt(ms)
        .single()
        .unwrap_or_else(Utc::now);
    // Receipts print Pacific time with a fixed -08:00 offset here (Apple follows DST).
    let pacific = FixedOffset::west_opt(8 * 3600).map(|tz| at.with_timezone(&tz));
    entry[name] = json!(at.format("%Y-%m-%d %H:%M:%S Etc/GMT").to_string());
    entry[format!("{name}_ms")] = json!(ms.to_string());
    if let Some(pacific) = pacific {
        entry[format!("{name}_pst")] = json!(
            pacific
                .format("%Y-%m-%d %H:%M:%S America/Los_Angeles")
                .to_string()
        );
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Renewal {
    pub(super) auto_renew: bool,
    pub(super) auto_renew_product_id: String,
    /// Get All Subscription Statuses `status`: 1 active, 2 expired, 3 billing retry, 4 grace, 5 revoked.
    pub(super) status: u8,
    pub(super) grace_expires_ms: Option<i64>,
    pub(super) expiration_intent: Option<u8>,
}

/// The App Store's side of the emulator.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AppleStore {
    pub(super) keys: AppleKeys,
    pub(super) transactions: Vec<Transaction>,
    pub(super) renewals: HashMap<String, Renewal>,
    shared_secrets: HashMap<String, String>,
    pub(super) notifications: Vec<(i64, String, Value)>,
    next_id: u64,
    /// Notifications made since the last request finished, for the push dispatcher.
    #[serde(skip)]
    pub(crate) outbox: Vec<Value>,
}

impl AppleStore {
    pub(crate) fn new() -> Self {
        Self {
            keys: AppleKeys::generate(),
            transactions: Vec::new(),
            renewals: HashMap::new(),
            shared_secrets: HashMap::new(),
            notifications: Vec::new(),
            next_id: 0,
            outbox: Vec::new(),
        }
    }

    pub(crate) fn api_key(&self) -> (String, String, String) {
        (
            self.keys.api_issuer_id.clone(),
            self.keys.api_key_id.clone(),
            self.keys.api_private_key_pem.clone(),
        )
    }

    pub(crate) fn root_der(&self) -> Vec<u8> {
        self.keys.root_der.clone()
    }

    pub(super) fn new_transaction_id(&mut self, env: Env) -> String {
        self.next_id += 1;
        let base: u64 = if env == Env::Production {
            1_000_000_000_000_000
        } else {
            2_000_000_000_000_000
        };
        (base
            + u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0) % 1_000_000_000 * 1000
            + self.next_id)
            .to_string()
    }

    pub(super) fn find(&self, id: &str) -> Option<&Transaction> {
        self.transactions.iter().find(|t| t.transaction_id == id)
    }

    pub(crate) fn shared_secret(&mut self, bundle: &str) -> String {
        self.shared_secrets
            .entry(bundle.to_owned())
            .or_insert_with(|| hex_token(16))
            .clone()
    }

    pub(super) fn signed_transaction(&self, t: &Transaction) -> String {
        self.keys.sign(&t.payload())
    }

    pub(super) fn renewal_payload(&self, t: &Transaction) -> Value {
        let r = self.renewals.get(&t.original_transaction_id);
        let mut p = json!({
            "originalTransactionId": t.original_transaction_id,
            "productId": t.product_id,
            "autoRenewProductId": r.map_or(t.product_id.clone(), |r| r.auto_renew_product_id.clone()),
            "autoRenewStatus": i32::from(r.is_some_and(|r| r.auto_renew)),
            "isInBillingRetryPeriod": r.is_some_and(|r| matches!(r.status, 3 | 4)),
            "signedDate": Utc::now().timestamp_millis(),
            "environment": t.environment.wire(),
            "recentSubscriptionStartDate": t.original_purchase_date_ms,
            "renewalDate": t.expires_date_ms,
            "currency": t.currency,
            "renewalPrice": t.price,
        });
        if let Some(grace) = r.and_then(|r| r.grace_expires_ms) {
            p["gracePeriodExpiresDate"] = json!(grace);
        }
        if let Some(intent) = r.and_then(|r| r.expiration_intent) {
            p["expirationIntent"] = json!(intent);
        }
        if let Some(token) = &t.app_account_token {
            p["appAccountToken"] = json!(token);
        }
        p
    }

    /// The latest transaction of a subscription chain.
    pub(super) fn latest_of(&self, original: &str) -> Option<&Transaction> {
        self.transactions
            .iter()
            .filter(|t| t.original_transaction_id == original)
            .max_by_key(|t| t.purchase_date_ms)
    }

    /// An ASSN v2 notification about `t`, recorded for Get Notification History.
    pub(super) fn notify(&mut self, kind: &str, subtype: Option<&str>, t: &Transaction) -> Value {
        let mut data = json!({
            "appAppleId": t.app_apple_id,
            "bundleId": t.bundle_id,
            "bundleVersion": "1",
            "environment": t.environment.wire(),
            "signedTransactionInfo": self.signed_transaction(t),
        });
        if t.is_subscription() {
            data["signedRenewalInfo"] = json!(self.keys.sign(&self.renewal_payload(t)));
            data["status"] = json!(
                self.renewals
                    .get(&t.original_transaction_id)
                    .map_or(1, |r| r.status)
            );
        }
        if kind == "CONSUMPTION_REQUEST" {
            data["consumptionRequestReason"] = json!("UNINTENDED_PURCHASE");
        }
        let now = Utc::now().timestamp_millis();
        let mut payload = json!({
            "notificationType": kind,
            "notificationUUID": uuid::Uuid::new_v4().to_string(),
            "version": "2.0",
            "signedDate": now,
            "data": data,
        });
        if let Some(subtype) = subtype {
            payload["subtype"] = json!(subtype);
        }
        let body = json!({ "signedPayload": self.keys.sign(&payload) });
        self.notifications
            .push((now, t.transaction_id.clone(), body.clone()));
        self.outbox.push(body.clone());
        body
    }
}

fn hex_token(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn receipt_blob(
    bundle: &str,
    env: Env,
    customer: &str,
    transaction_ids: &[String],
) -> String {
    STANDARD.encode(
        json!({ "emulator": "receipt-v1", "bundle_id": bundle, "environment": env.wire(), "customer": customer,
                "transaction_ids": transaction_ids })
        .to_string(),
    )
}

/// The app download transaction of `customer` (an Apple Account) for `bundle`: one per account
/// and app, the same on every device and after a refund or re-download, as Apple's is.
fn app_transaction_id(bundle: &str, customer: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{bundle}\n{customer}"));
    let number = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default());
    format!("70{:016}", number % 10_000_000_000_000_000)
}
