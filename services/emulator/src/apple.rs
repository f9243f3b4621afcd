//! App Store: legacy `verifyReceipt` (production and sandbox, 21007/21008, shared secret,
//! `exclude-old-transactions`), the App Store Server API (`/inApps/...`, ES256 bearer JWT), and
//! App Store Server Notifications V2. Signed data is a JWS (ES256) whose `x5c` chain runs
//! leaf → intermediate → root, generated here with Apple's OIDs, so a verifier that trusts the
//! emulator's root (`/emulator/apple/root.der`) checks it exactly as it checks Apple's.
//!
//! Receipts are the emulator's own opaque base64 blob (real receipts are PKCS#7 that only Apple
//! can sign); what matters — the `verifyReceipt` answer — follows Apple's format.

// Handlers fail with the HTTP response Apple would send; boxing it would buy nothing here.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{FixedOffset, TimeZone, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::keys::random_token;
use crate::state::{Shared, lock};

/// Apple's marker extension on the App Store receipt-signing leaf certificate.
const LEAF_OID: &[u64] = &[1, 2, 840, 113_635, 100, 6, 11, 1];
/// Apple's marker extension on the WWDR intermediate certificate.
const INTERMEDIATE_OID: &[u64] = &[1, 2, 840, 113_635, 100, 6, 2, 1];
const DAY_MS: i64 = 24 * 3600 * 1000;
const MONTH_MS: i64 = 30 * DAY_MS;

/// The signing chain and the App Store Server API key.
#[derive(Serialize, Deserialize)]
struct AppleKeys {
    root_der: Vec<u8>,
    intermediate_der: Vec<u8>,
    leaf_der: Vec<u8>,
    /// PKCS#8 DER of the leaf's key.
    leaf_key: Vec<u8>,
    api_issuer_id: String,
    api_key_id: String,
    api_private_key_pem: String,
    api_public_key_pem: String,
}

impl std::fmt::Debug for AppleKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppleKeys")
            .field("api_key_id", &self.api_key_id)
            .finish_non_exhaustive()
    }
}

fn chain_params(common_name: &str, ca: bool, marker: Option<&[u64]>) -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "iap-emulator");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    // Strict verifiers (OpenSSL's X509_STRICT, used by Apple's Python library) want the
    // authority key identifier that Apple's real certificates carry.
    params.use_authority_key_identifier_extension = true;
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    } else {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    }
    if let Some(oid) = marker {
        // Apple's marker extensions hold an ASN.1 NULL.
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(oid, vec![0x05, 0x00]));
    }
    params
}

impl AppleKeys {
    fn generate() -> Self {
        let root_key = KeyPair::generate().expect("P-256 key");
        let root_params = chain_params("iap-emulator Apple Root CA", true, None);
        let root = root_params
            .self_signed(&root_key)
            .expect("root certificate");
        let root_issuer = Issuer::new(root_params, root_key);

        let intermediate_key = KeyPair::generate().expect("P-256 key");
        let intermediate_params = chain_params(
            "iap-emulator Worldwide Developer Relations Certification Authority",
            true,
            Some(INTERMEDIATE_OID),
        );
        let intermediate = intermediate_params
            .signed_by(&intermediate_key, &root_issuer)
            .expect("intermediate");
        let intermediate_issuer = Issuer::new(intermediate_params, intermediate_key);

        let leaf_key = KeyPair::generate().expect("P-256 key");
        let leaf_params = chain_params(
            "iap-emulator App Store Receipt Signing",
            false,
            Some(LEAF_OID),
        );
        let leaf = leaf_params
            .signed_by(&leaf_key, &intermediate_issuer)
            .expect("leaf");

        let api_key = KeyPair::generate().expect("P-256 key");
        Self {
            root_der: root.der().to_vec(),
            intermediate_der: intermediate.der().to_vec(),
            leaf_der: leaf.der().to_vec(),
            leaf_key: leaf_key.serialize_der(),
            api_issuer_id: uuid::Uuid::new_v4().to_string(),
            api_key_id: random_token(8)
                .to_ascii_uppercase()
                .replace(['-', '_'], "X")
                .chars()
                .take(10)
                .collect(),
            api_private_key_pem: api_key.serialize_pem(),
            api_public_key_pem: api_key.public_key_pem(),
        }
    }

    /// A compact JWS (ES256, `x5c` = leaf, intermediate, root in standard base64 DER).
    fn sign(&self, payload: &Value) -> String {
        let header = json!({
            "alg": "ES256",
            "x5c": [STANDARD.encode(&self.leaf_der), STANDARD.encode(&self.intermediate_der), STANDARD.encode(&self.root_der)],
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let signer = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &self.leaf_key,
            &SystemRandom::new(),
        )
        .expect("the leaf key was generated here");
        let signature = signer
            .sign(&SystemRandom::new(), input.as_bytes())
            .expect("ECDSA signing");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Env {
    Production,
    Sandbox,
}

impl Env {
    fn wire(self) -> &'static str {
        match self {
            Env::Production => "Production",
            Env::Sandbox => "Sandbox",
        }
    }

    fn from_path(segment: &str) -> Option<Self> {
        match segment {
            "production" => Some(Env::Production),
            "sandbox" => Some(Env::Sandbox),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Transaction {
    transaction_id: String,
    original_transaction_id: String,
    web_order_line_item_id: Option<String>,
    bundle_id: String,
    app_apple_id: i64,
    product_id: String,
    product_type: String,
    subscription_group: Option<String>,
    quantity: u32,
    purchase_date_ms: i64,
    original_purchase_date_ms: i64,
    expires_date_ms: Option<i64>,
    app_account_token: Option<String>,
    environment: Env,
    price: i64,
    currency: String,
    free_trial: bool,
    reason: String,
    revocation_date_ms: Option<i64>,
    /// A prorated refund's share in milliunits (`REFUND_PRORATED`); `None`: a full refund.
    /// Defaulted so a state file saved before it still loads.
    #[serde(default)]
    revocation_percentage: Option<u32>,
    is_upgraded: bool,
    finished: bool,
    customer: String,
    order_id: String,
    signed_date_ms: i64,
}

impl Transaction {
    fn is_subscription(&self) -> bool {
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
    fn receipt_entry(&self) -> Value {
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
fn add_date(entry: &mut Value, name: &str, ms: i64) {
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
struct Renewal {
    auto_renew: bool,
    auto_renew_product_id: String,
    /// Get All Subscription Statuses `status`: 1 active, 2 expired, 3 billing retry, 4 grace, 5 revoked.
    status: u8,
    grace_expires_ms: Option<i64>,
    expiration_intent: Option<u8>,
}

/// The App Store's side of the emulator.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AppleStore {
    keys: AppleKeys,
    transactions: Vec<Transaction>,
    renewals: HashMap<String, Renewal>,
    shared_secrets: HashMap<String, String>,
    notifications: Vec<(i64, String, Value)>,
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

    fn new_transaction_id(&mut self, env: Env) -> String {
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

    fn find(&self, id: &str) -> Option<&Transaction> {
        self.transactions.iter().find(|t| t.transaction_id == id)
    }

    pub(crate) fn shared_secret(&mut self, bundle: &str) -> String {
        self.shared_secrets
            .entry(bundle.to_owned())
            .or_insert_with(|| hex_token(16))
            .clone()
    }

    fn signed_transaction(&self, t: &Transaction) -> String {
        self.keys.sign(&t.payload())
    }

    fn renewal_payload(&self, t: &Transaction) -> Value {
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
    fn latest_of(&self, original: &str) -> Option<&Transaction> {
        self.transactions
            .iter()
            .filter(|t| t.original_transaction_id == original)
            .max_by_key(|t| t.purchase_date_ms)
    }

    /// An ASSN v2 notification about `t`, recorded for Get Notification History.
    fn notify(&mut self, kind: &str, subtype: Option<&str>, t: &Transaction) -> Value {
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

fn api_error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        Json(json!({ "errorCode": code, "errorMessage": message })),
    )
        .into_response()
}

fn not_found() -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        4_040_010,
        "Transaction id not found.",
    )
}

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/{env}/verifyReceipt", post(verify_receipt))
        .route("/{env}/inApps/v1/transactions/{id}", get(transaction_info))
        .route("/{env}/inApps/v2/history/{id}", get(transaction_history))
        .route(
            "/{env}/inApps/v1/subscriptions/{id}",
            get(subscription_statuses),
        )
        .route("/{env}/inApps/v1/lookup/{order_id}", get(lookup_order))
        .route("/{env}/inApps/v2/refund/lookup/{id}", get(refund_history))
        .route(
            "/{env}/inApps/v1/notifications/history",
            post(notification_history),
        )
        .route(
            "/{env}/inApps/v2/transactions/consumption/{id}",
            put(consumption),
        )
}

pub(crate) fn control_router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/apple/root.der", get(root_der))
        .route("/apple/api-key", get(api_key))
        .route("/apple/apps/{bundle}/shared-secret", get(shared_secret))
        .route("/apple/purchases", post(make_purchase))
        .route(
            "/apple/transactions/{id}/{action}",
            post(transaction_control),
        )
        .route(
            "/apple/subscriptions/{original_id}/{action}",
            post(subscription_control),
        )
}

// ---- verifyReceipt ----

fn receipt_blob(bundle: &str, env: Env, customer: &str, transaction_ids: &[String]) -> String {
    STANDARD.encode(
        json!({ "emulator": "receipt-v1", "bundle_id": bundle, "environment": env.wire(), "customer": customer,
                "transaction_ids": transaction_ids })
        .to_string(),
    )
}

async fn verify_receipt(
    State(shared): State<Arc<Shared>>,
    Path(env): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    shared.count("apple.verifyReceipt");
    let Some(endpoint) = Env::from_path(&env) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let status = |code: u32| Json(json!({ "status": code })).into_response();
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return status(21000);
    };
    let receipt = request["receipt-data"]
        .as_str()
        .and_then(|r| STANDARD.decode(r).ok())
        .and_then(|r| serde_json::from_slice::<Value>(&r).ok())
        .filter(|r| r["emulator"] == "receipt-v1");
    let Some(receipt) = receipt else {
        return status(21002);
    };
    let receipt_env = if receipt["environment"] == "Sandbox" {
        Env::Sandbox
    } else {
        Env::Production
    };
    match (endpoint, receipt_env) {
        (Env::Production, Env::Sandbox) => return status(21007),
        (Env::Sandbox, Env::Production) => return status(21008),
        _ => {}
    }
    let bundle = receipt["bundle_id"].as_str().unwrap_or_default().to_owned();
    let customer = receipt["customer"].as_str().unwrap_or_default().to_owned();
    let ids: Vec<String> = receipt["transaction_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let exclude_old = request["exclude-old-transactions"]
        .as_bool()
        .unwrap_or(false);

    let mut apple = lock(&shared.apple);
    let current: Vec<Transaction> = apple
        .transactions
        .iter()
        .filter(|t| t.bundle_id == bundle && t.customer == customer && t.environment == receipt_env)
        // Finished consumables leave the receipt, as on the App Store.
        .filter(|t| !(t.product_type == "Consumable" && t.finished))
        .cloned()
        .collect();
    let has_subscription = current.iter().any(Transaction::is_subscription);
    if has_subscription {
        let expected = apple.shared_secret(&bundle);
        match request["password"].as_str() {
            None => return status(21003),
            Some(given) if given != expected => return status(21004),
            Some(_) => {}
        }
    }
    let in_app: Vec<Value> = ids
        .iter()
        .filter_map(|id| apple.find(id))
        .map(Transaction::receipt_entry)
        .collect();
    let mut latest: Vec<&Transaction> = current.iter().collect();
    if exclude_old {
        let mut newest: HashMap<&str, &Transaction> = HashMap::new();
        for t in &current {
            let slot = newest
                .entry(t.original_transaction_id.as_str())
                .or_insert(t);
            if t.purchase_date_ms > slot.purchase_date_ms {
                *slot = t;
            }
        }
        latest = newest.into_values().collect();
    }
    latest.sort_by_key(|t| t.purchase_date_ms);
    let now = Utc::now().timestamp_millis();
    let mut receipt_body = json!({
        "receipt_type": if receipt_env == Env::Sandbox { "ProductionSandbox" } else { "Production" },
        "adam_id": current.first().map_or(0, |t| t.app_apple_id),
        "bundle_id": bundle,
        "application_version": "1",
        "original_application_version": "1.0",
        "in_app": in_app,
    });
    add_date(&mut receipt_body, "receipt_creation_date", now);
    add_date(&mut receipt_body, "request_date", now);
    add_date(
        &mut receipt_body,
        "original_purchase_date",
        current.first().map_or(now, |t| t.original_purchase_date_ms),
    );
    let mut reply = json!({
        "status": 0,
        "environment": receipt_env.wire(),
        "receipt": receipt_body,
        "latest_receipt": receipt_blob(&bundle, receipt_env, &customer, &current.iter().map(|t| t.transaction_id.clone()).collect::<Vec<_>>()),
        "latest_receipt_info": latest.iter().map(|t| t.receipt_entry()).collect::<Vec<_>>(),
    });
    if has_subscription {
        let mut seen = std::collections::HashSet::new();
        let pending: Vec<Value> = current
            .iter()
            .filter(|t| t.is_subscription() && seen.insert(t.original_transaction_id.clone()))
            .map(|t| {
                let r = apple.renewals.get(&t.original_transaction_id);
                let mut p = json!({
                    "original_transaction_id": t.original_transaction_id,
                    "product_id": t.product_id,
                    "auto_renew_product_id": r.map_or(t.product_id.clone(), |r| r.auto_renew_product_id.clone()),
                    "auto_renew_status": if r.is_some_and(|r| r.auto_renew) { "1" } else { "0" },
                    "is_in_billing_retry_period": if r.is_some_and(|r| matches!(r.status, 3 | 4)) { "1" } else { "0" },
                });
                if let Some(intent) = r.and_then(|r| r.expiration_intent) {
                    p["expiration_intent"] = json!(intent.to_string());
                }
                if let Some(grace) = r.and_then(|r| r.grace_expires_ms) {
                    add_date(&mut p, "grace_period_expires_date", grace);
                }
                p
            })
            .collect();
        reply["pending_renewal_info"] = json!(pending);
    }
    Json(reply).into_response()
}

// ---- App Store Server API ----

#[derive(Debug, Deserialize)]
struct ApiClaims {
    iss: String,
    aud: String,
    bid: String,
    // Apple documents `iat`, but its Python and Java libraries leave it out.
    iat: Option<i64>,
    exp: i64,
}

/// Checks the ES256 bearer token; returns the bundle id it is for.
fn authorize(apple: &AppleStore, headers: &HeaderMap) -> Result<String, Response> {
    let unauthorized = || (StatusCode::UNAUTHORIZED, "Unauthenticated").into_response();
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(unauthorized)?;
    let header = jsonwebtoken::decode_header(token).map_err(|_| unauthorized())?;
    if header.alg != jsonwebtoken::Algorithm::ES256
        || header.kid.as_deref() != Some(apple.keys.api_key_id.as_str())
    {
        return Err(unauthorized());
    }
    let key = jsonwebtoken::DecodingKey::from_ec_pem(apple.keys.api_public_key_pem.as_bytes())
        .map_err(|_| unauthorized())?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&["appstoreconnect-v1"]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let claims = jsonwebtoken::decode::<ApiClaims>(token, &key, &validation)
        .map_err(|_| unauthorized())?
        .claims;
    // Apple refuses tokens valid for more than an hour.
    let issued = claims.iat.unwrap_or_else(|| Utc::now().timestamp());
    if claims.iss != apple.keys.api_issuer_id
        || claims.aud != "appstoreconnect-v1"
        || claims.exp - issued > 3600
    {
        return Err(unauthorized());
    }
    Ok(claims.bid)
}

/// Finds a transaction of this environment and bundle, or Apple's 404 / 400.
fn api_transaction(
    apple: &AppleStore,
    env: Env,
    bundle: &str,
    id: &str,
) -> Result<Transaction, Response> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            4_000_006,
            "Invalid transaction id.",
        ));
    }
    apple
        .find(id)
        .filter(|t| t.environment == env && t.bundle_id == bundle)
        .cloned()
        .ok_or_else(not_found)
}

fn api_context(shared: &Shared, env: &str, headers: &HeaderMap) -> Result<(Env, String), Response> {
    let env = Env::from_path(env).ok_or_else(|| StatusCode::NOT_FOUND.into_response())?;
    let bundle = authorize(&lock(&shared.apple), headers)?;
    Ok((env, bundle))
}

async fn transaction_info(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((env, id)): Path<(String, String)>,
) -> Response {
    shared.count("apple.transactions.get");
    let result = api_context(&shared, &env, &headers).and_then(|(env, bundle)| {
        let apple = lock(&shared.apple);
        let t = api_transaction(&apple, env, &bundle, &id)?;
        Ok(Json(json!({ "signedTransactionInfo": apple.signed_transaction(&t) })).into_response())
    });
    result.unwrap_or_else(|e| e)
}

async fn transaction_history(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((env, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    shared.count("apple.history.get");
    let result = api_context(&shared, &env, &headers).and_then(|(env, bundle)| {
        let apple = lock(&shared.apple);
        let t = api_transaction(&apple, env, &bundle, &id)?;
        let mut all: Vec<&Transaction> = apple
            .transactions
            .iter()
            .filter(|o| o.customer == t.customer && o.bundle_id == bundle && o.environment == env)
            .collect();
        if query.get("sort").map(String::as_str) == Some("DESCENDING") {
            all.reverse();
        }
        let offset: usize = query
            .get("revision")
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        let page: Vec<String> = all
            .iter()
            .skip(offset)
            .take(20)
            .map(|t| apple.signed_transaction(t))
            .collect();
        let next = offset + page.len();
        Ok(Json(json!({
            "revision": next.to_string(),
            "hasMore": next < all.len(),
            "bundleId": bundle,
            "appAppleId": t.app_apple_id,
            "environment": env.wire(),
            "signedTransactions": page,
        }))
        .into_response())
    });
    result.unwrap_or_else(|e| e)
}

async fn subscription_statuses(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((env, id)): Path<(String, String)>,
) -> Response {
    shared.count("apple.subscriptions.get");
    let result = api_context(&shared, &env, &headers).and_then(|(env, bundle)| {
        let apple = lock(&shared.apple);
        let t = api_transaction(&apple, env, &bundle, &id)?;
        let mut groups: HashMap<String, Vec<Value>> = HashMap::new();
        let mut originals: Vec<&String> = apple
            .transactions
            .iter()
            .filter(|o| o.customer == t.customer && o.bundle_id == bundle && o.environment == env && o.is_subscription())
            .map(|o| &o.original_transaction_id)
            .collect();
        originals.dedup();
        for original in originals {
            let Some(latest) = apple.latest_of(original) else { continue };
            if groups.values().flatten().any(|v| v["originalTransactionId"] == original.as_str()) {
                continue;
            }
            let status = apple.renewals.get(original).map_or(1, |r| r.status);
            groups.entry(latest.subscription_group.clone().unwrap_or_default()).or_default().push(json!({
                "status": status,
                "originalTransactionId": original,
                "signedTransactionInfo": apple.signed_transaction(latest),
                "signedRenewalInfo": apple.keys.sign(&apple.renewal_payload(latest)),
            }));
        }
        let data: Vec<Value> = groups
            .into_iter()
            .map(|(group, last)| json!({ "subscriptionGroupIdentifier": group, "lastTransactions": last }))
            .collect();
        Ok(Json(json!({ "environment": env.wire(), "bundleId": bundle, "appAppleId": t.app_apple_id, "data": data })).into_response())
    });
    result.unwrap_or_else(|e| e)
}

async fn lookup_order(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((env, order_id)): Path<(String, String)>,
) -> Response {
    shared.count("apple.lookup.get");
    let result = api_context(&shared, &env, &headers).map(|(env, bundle)| {
        let apple = lock(&shared.apple);
        let found: Vec<String> = apple
            .transactions
            .iter()
            .filter(|t| t.order_id == order_id && t.bundle_id == bundle && t.environment == env)
            .map(|t| apple.signed_transaction(t))
            .collect();
        let status = i32::from(found.is_empty());
        Json(json!({ "status": status, "signedTransactions": found })).into_response()
    });
    result.unwrap_or_else(|e| e)
}

async fn refund_history(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((env, id)): Path<(String, String)>,
) -> Response {
    shared.count("apple.refund.get");
    let result = api_context(&shared, &env, &headers).and_then(|(env, bundle)| {
        let apple = lock(&shared.apple);
        let t = api_transaction(&apple, env, &bundle, &id)?;
        let refunded: Vec<String> = apple
            .transactions
            .iter()
            .filter(|o| o.customer == t.customer && o.bundle_id == bundle && o.environment == env && o.revocation_date_ms.is_some())
            .map(|o| apple.signed_transaction(o))
            .collect();
        Ok(Json(json!({ "signedTransactions": refunded, "revision": refunded.len().to_string(), "hasMore": false })).into_response())
    });
    result.unwrap_or_else(|e| e)
}

async fn notification_history(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(env): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    shared.count("apple.notifications.history");
    let result = api_context(&shared, &env, &headers).map(|(env, bundle)| {
        let apple = lock(&shared.apple);
        let start = body["startDate"].as_i64().unwrap_or(0);
        let end = body["endDate"].as_i64().unwrap_or(i64::MAX);
        let only = body["transactionId"].as_str();
        let items: Vec<Value> = apple
            .notifications
            .iter()
            .filter(|(at, id, _)| *at >= start && *at <= end && only.is_none_or(|o| o == id))
            .filter(|(_, id, _)| apple.find(id).is_some_and(|t| t.bundle_id == bundle && t.environment == env))
            .map(|(at, _, body)| {
                json!({ "signedPayload": body["signedPayload"], "sendAttempts": [{ "attemptDate": at, "sendAttemptResult": "SUCCESS" }] })
            })
            .collect();
        Json(json!({ "notificationHistory": items, "hasMore": false })).into_response()
    });
    result.unwrap_or_else(|e| e)
}

async fn consumption(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((env, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    shared.count("apple.consumption.put");
    let result = api_context(&shared, &env, &headers).and_then(|(env, bundle)| {
        let apple = lock(&shared.apple);
        api_transaction(&apple, env, &bundle, &id)?;
        if body["customerConsented"] != json!(true) {
            return Err(api_error(
                StatusCode::BAD_REQUEST,
                4_000_027,
                "Invalid customer consented.",
            ));
        }
        if body["deliveryStatus"] != "DELIVERED"
            && body["consumptionPercentage"].as_i64().unwrap_or(0) != 0
        {
            return Err(api_error(
                StatusCode::BAD_REQUEST,
                4_000_049,
                "Invalid consumption percentage.",
            ));
        }
        Ok(StatusCode::ACCEPTED.into_response())
    });
    result.unwrap_or_else(|e| e)
}

// ---- control API ----

async fn root_der(State(shared): State<Arc<Shared>>) -> Response {
    let der = lock(&shared.apple).keys.root_der.clone();
    (
        [(axum::http::header::CONTENT_TYPE, "application/pkix-cert")],
        der,
    )
        .into_response()
}

async fn api_key(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let apple = lock(&shared.apple);
    Json(json!({
        "issuer_id": apple.keys.api_issuer_id,
        "key_id": apple.keys.api_key_id,
        "private_key_pem": apple.keys.api_private_key_pem,
    }))
}

async fn shared_secret(
    State(shared): State<Arc<Shared>>,
    Path(bundle): Path<String>,
) -> Json<Value> {
    let secret = lock(&shared.apple).shared_secret(&bundle);
    Json(json!({ "bundle_id": bundle, "shared_secret": secret }))
}

#[derive(Debug, Deserialize)]
struct MakePurchase {
    bundle_id: String,
    product_id: String,
    product_type: String,
    #[serde(default = "one")]
    quantity: u32,
    #[serde(default)]
    app_account_token: Option<String>,
    #[serde(default = "sandbox")]
    environment: String,
    #[serde(default = "default_price")]
    price: i64,
    #[serde(default = "default_currency")]
    currency: String,
    #[serde(default = "default_app_apple_id")]
    app_apple_id: i64,
    #[serde(default)]
    free_trial: bool,
    #[serde(default = "default_customer")]
    customer: String,
    #[serde(default)]
    subscription_group: Option<String>,
}

fn one() -> u32 {
    1
}
fn sandbox() -> String {
    "Sandbox".to_owned()
}
fn default_price() -> i64 {
    990
}
fn default_currency() -> String {
    "USD".to_owned()
}
fn default_app_apple_id() -> i64 {
    crate::DEFAULT_APP_APPLE_ID
}
/// The app download transaction of `customer` (an Apple Account) for `bundle`: one per account
/// and app, the same on every device and after a refund or re-download, as Apple's is.
fn app_transaction_id(bundle: &str, customer: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{bundle}\n{customer}"));
    let number = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default());
    format!("70{:016}", number % 10_000_000_000_000_000)
}

fn default_customer() -> String {
    "customer-1".to_owned()
}

const PRODUCT_TYPES: &[&str] = &[
    "Consumable",
    "Non-Consumable",
    "Auto-Renewable Subscription",
    "Non-Renewing Subscription",
];

fn purchase_reply(apple: &AppleStore, t: &Transaction, notification: &Value) -> Value {
    let ids: Vec<String> = apple
        .transactions
        .iter()
        .filter(|o| {
            o.bundle_id == t.bundle_id && o.customer == t.customer && o.environment == t.environment
        })
        .filter(|o| !(o.product_type == "Consumable" && o.finished))
        .map(|o| o.transaction_id.clone())
        .collect();
    json!({
        "transaction_id": t.transaction_id,
        "original_transaction_id": t.original_transaction_id,
        "order_id": t.order_id,
        "signed_transaction": apple.signed_transaction(t),
        "receipt_data": receipt_blob(&t.bundle_id, t.environment, &t.customer, &ids),
        "notification": notification,
    })
}

async fn make_purchase(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<MakePurchase>,
) -> Response {
    shared.count("control.apple.purchase");
    if !PRODUCT_TYPES.contains(&request.product_type.as_str()) {
        return (StatusCode::BAD_REQUEST, "product_type must be Consumable, Non-Consumable, Auto-Renewable Subscription or Non-Renewing Subscription").into_response();
    }
    let env = match request.environment.as_str() {
        "Production" => Env::Production,
        "Sandbox" => Env::Sandbox,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "environment must be Production or Sandbox",
            )
                .into_response();
        }
    };
    let bad_token = request
        .app_account_token
        .as_deref()
        .is_some_and(|t| uuid::Uuid::parse_str(t).is_err());
    if bad_token {
        return (StatusCode::BAD_REQUEST, "app_account_token must be a UUID").into_response();
    }
    let now = Utc::now().timestamp_millis();
    let mut apple = lock(&shared.apple);
    let id = apple.new_transaction_id(env);
    let subscription = request.product_type == "Auto-Renewable Subscription";
    let t = Transaction {
        transaction_id: id.clone(),
        original_transaction_id: id.clone(),
        web_order_line_item_id: subscription.then(|| apple.new_transaction_id(env)),
        bundle_id: request.bundle_id,
        app_apple_id: request.app_apple_id,
        product_id: request.product_id.clone(),
        product_type: request.product_type.clone(),
        subscription_group: request
            .subscription_group
            .or_else(|| subscription.then(|| "21000001".to_owned())),
        quantity: request.quantity.max(1),
        purchase_date_ms: now,
        original_purchase_date_ms: now,
        expires_date_ms: subscription.then_some(now + MONTH_MS),
        app_account_token: request.app_account_token.map(|t| t.to_ascii_lowercase()),
        environment: env,
        price: request.price,
        currency: request.currency,
        free_trial: request.free_trial,
        reason: "PURCHASE".to_owned(),
        revocation_date_ms: None,
        revocation_percentage: None,
        is_upgraded: false,
        finished: false,
        customer: request.customer,
        order_id: random_token(8)
            .to_ascii_uppercase()
            .replace(['-', '_'], "Q")
            .chars()
            .take(10)
            .collect(),
        signed_date_ms: now,
    };
    if subscription {
        apple.renewals.insert(
            id,
            Renewal {
                auto_renew: true,
                auto_renew_product_id: request.product_id,
                status: 1,
                grace_expires_ms: None,
                expiration_intent: None,
            },
        );
    }
    apple.transactions.push(t.clone());
    let notification = if subscription {
        apple.notify("SUBSCRIBED", Some("INITIAL_BUY"), &t)
    } else {
        apple.notify("ONE_TIME_CHARGE", None, &t)
    };
    Json(purchase_reply(&apple, &t, &notification)).into_response()
}

/// `refund`'s optional body: `{"percentage": n}` refunds n milliunits of the transaction
/// (Apple's `REFUND_PRORATED`, 100000 being 100 %); without it, the whole (`REFUND_FULL`).
#[derive(Debug, Default, Deserialize)]
struct RefundAction {
    #[serde(default)]
    percentage: Option<u32>,
}

async fn transaction_control(
    State(shared): State<Arc<Shared>>,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    shared.count(&format!("control.apple.transaction.{action}"));
    let refund = if body.iter().all(u8::is_ascii_whitespace) {
        RefundAction::default()
    } else {
        match serde_json::from_slice::<RefundAction>(&body) {
            Ok(refund) => refund,
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        }
    };
    let mut apple = lock(&shared.apple);
    let Some(index) = apple
        .transactions
        .iter()
        .position(|t| t.transaction_id == id)
    else {
        return (StatusCode::NOT_FOUND, "unknown transaction id").into_response();
    };
    let notification = match action.as_str() {
        // What `Transaction.finish()` does on the device: a finished consumable leaves receipts.
        "finish" => {
            apple.transactions[index].finished = true;
            Value::Null
        }
        "refund" => {
            let now = Utc::now().timestamp_millis();
            apple.transactions[index].revocation_date_ms = Some(now);
            apple.transactions[index].revocation_percentage =
                refund.percentage.filter(|p| *p < 100_000);
            apple.transactions[index].signed_date_ms = now;
            let t = apple.transactions[index].clone();
            if let Some(r) = apple.renewals.get_mut(&t.original_transaction_id) {
                r.status = 5;
                r.auto_renew = false;
            }
            apple.notify("REFUND", None, &t)
        }
        // Apple reverses a refund (REFUND_REVERSED): the signed transaction no longer carries
        // the revocation fields.
        "reverse_refund" => {
            if apple.transactions[index].revocation_date_ms.is_none() {
                return (StatusCode::CONFLICT, "transaction is not refunded").into_response();
            }
            let now = Utc::now().timestamp_millis();
            apple.transactions[index].revocation_date_ms = None;
            apple.transactions[index].revocation_percentage = None;
            apple.transactions[index].signed_date_ms = now;
            let t = apple.transactions[index].clone();
            apple.notify("REFUND_REVERSED", None, &t)
        }
        "consumption_request" => {
            let t = apple.transactions[index].clone();
            apple.notify("CONSUMPTION_REQUEST", None, &t)
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                "actions: finish, refund, reverse_refund, consumption_request",
            )
                .into_response();
        }
    };
    Json(json!({ "transaction_id": id, "notification": notification })).into_response()
}

#[derive(Debug, Default, Deserialize)]
struct SubscriptionAction {
    #[serde(default)]
    product_id: Option<String>,
}

async fn subscription_control(
    State(shared): State<Arc<Shared>>,
    Path((original, action)): Path<(String, String)>,
    body: Option<Json<SubscriptionAction>>,
) -> Response {
    shared.count(&format!("control.apple.subscription.{action}"));
    let now = Utc::now().timestamp_millis();
    let mut apple = lock(&shared.apple);
    let Some(latest) = apple.latest_of(&original).cloned() else {
        return (StatusCode::NOT_FOUND, "unknown original transaction id").into_response();
    };
    if !apple.renewals.contains_key(&original) {
        return (
            StatusCode::BAD_REQUEST,
            "not an auto-renewable subscription",
        )
            .into_response();
    }
    // A renewal is a new transaction of the same chain.
    let renew = |apple: &mut AppleStore, product: &str, reason: &'static str| -> Transaction {
        let mut next = latest.clone();
        next.transaction_id = apple.new_transaction_id(latest.environment);
        next.web_order_line_item_id = Some(apple.new_transaction_id(latest.environment));
        next.product_id = product.to_owned();
        next.purchase_date_ms = now;
        next.expires_date_ms = Some(latest.expires_date_ms.unwrap_or(now).max(now) + MONTH_MS);
        next.free_trial = false;
        next.reason = reason.to_owned();
        next.signed_date_ms = now;
        next.finished = false;
        apple.transactions.push(next.clone());
        next
    };
    let set = |apple: &mut AppleStore, f: &dyn Fn(&mut Renewal)| {
        if let Some(r) = apple.renewals.get_mut(&original) {
            f(r);
        }
    };
    if action == "restore" {
        // StoreKit 1 `restoreCompletedTransactions` on a new device: a new transaction id for
        // the same period, which keeps its `web_order_line_item_id` ("a unique identifier for
        // purchase events across devices"). Apple sends no notification for it.
        let mut restored = latest.clone();
        restored.transaction_id = apple.new_transaction_id(latest.environment);
        restored.signed_date_ms = now;
        restored.finished = false;
        apple.transactions.push(restored.clone());
        return Json(purchase_reply(&apple, &restored, &Value::Null)).into_response();
    }
    let (kind, subtype, t) = match action.as_str() {
        "renew" => {
            let t = renew(&mut apple, &latest.product_id, "RENEWAL");
            set(&mut apple, &|r| r.status = 1);
            ("DID_RENEW", None, t)
        }
        "enter_grace" => {
            set(&mut apple, &|r| {
                r.status = 4;
                r.grace_expires_ms = Some(now + 6 * DAY_MS);
                r.expiration_intent = Some(2);
            });
            ("DID_FAIL_TO_RENEW", Some("GRACE_PERIOD"), latest.clone())
        }
        "billing_retry" => {
            set(&mut apple, &|r| {
                r.status = 3;
                r.grace_expires_ms = None;
                r.expiration_intent = Some(2);
            });
            ("DID_FAIL_TO_RENEW", None, latest.clone())
        }
        "grace_expired" => {
            set(&mut apple, &|r| {
                r.status = 3;
                r.grace_expires_ms = None;
            });
            ("GRACE_PERIOD_EXPIRED", None, latest.clone())
        }
        "recover" => {
            let t = renew(&mut apple, &latest.product_id, "RENEWAL");
            set(&mut apple, &|r| {
                r.status = 1;
                r.grace_expires_ms = None;
                r.expiration_intent = None;
            });
            ("DID_RENEW", Some("BILLING_RECOVERY"), t)
        }
        "disable_auto_renew" => {
            set(&mut apple, &|r| r.auto_renew = false);
            (
                "DID_CHANGE_RENEWAL_STATUS",
                Some("AUTO_RENEW_DISABLED"),
                latest.clone(),
            )
        }
        "enable_auto_renew" => {
            set(&mut apple, &|r| r.auto_renew = true);
            (
                "DID_CHANGE_RENEWAL_STATUS",
                Some("AUTO_RENEW_ENABLED"),
                latest.clone(),
            )
        }
        "expire" => {
            let index = apple
                .transactions
                .iter()
                .position(|t| t.transaction_id == latest.transaction_id);
            if let Some(i) = index {
                apple.transactions[i].expires_date_ms = Some(now - 1000);
            }
            set(&mut apple, &|r| {
                r.status = 2;
                r.auto_renew = false;
                r.expiration_intent = Some(1);
            });
            let t = apple
                .latest_of(&original)
                .cloned()
                .unwrap_or_else(|| latest.clone());
            ("EXPIRED", Some("VOLUNTARY"), t)
        }
        "upgrade" => {
            let Some(product) = body.and_then(|Json(b)| b.product_id) else {
                return (
                    StatusCode::BAD_REQUEST,
                    "upgrade needs {\"product_id\": ...}",
                )
                    .into_response();
            };
            if let Some(i) = apple
                .transactions
                .iter()
                .position(|t| t.transaction_id == latest.transaction_id)
            {
                apple.transactions[i].is_upgraded = true;
            }
            let t = renew(&mut apple, &product, "PURCHASE");
            set(&mut apple, &move |r| {
                r.auto_renew_product_id.clone_from(&product);
                r.status = 1;
            });
            ("DID_CHANGE_RENEWAL_PREF", Some("UPGRADE"), t)
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                "actions: renew, restore, enter_grace, billing_retry, grace_expired, recover, disable_auto_renew, enable_auto_renew, expire, upgrade",
            )
                .into_response();
        }
    };
    let notification = apple.notify(kind, subtype, &t);
    Json(purchase_reply(&apple, &t, &notification)).into_response()
}
