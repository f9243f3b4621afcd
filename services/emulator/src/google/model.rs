//! Google Play's records — the service account and its access tokens, licence keys,
//! purchases and subscriptions, voided purchases — and their wire shapes: the Android
//! Publisher resources, the client's `getOriginalJson()` and the RTDN Pub/Sub push body.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::keys::{KeyCache, RsaKey, random_token};

pub(super) const CLIENT_EMAIL: &str = "iap-emulator@iap-emulator.iam.gserviceaccount.com";

/// Google Play's side of the emulator.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GoogleStore {
    pub(super) service_account: RsaKey,
    service_account_key_id: String,
    // Derived from the address the emulator runs at, which may change between runs.
    #[serde(skip)]
    token_uri: String,
    #[serde(skip)]
    pub(super) access_tokens: HashMap<String, i64>,
    license_keys: KeyCache<RsaKey>,
    pub(super) purchases: HashMap<String, Purchase>,
    pub(super) voided: Vec<Value>,
    message_ids: u64,
    /// Notifications made since the last request finished, for the push dispatcher.
    #[serde(skip)]
    pub(crate) outbox: Vec<Value>,
}

impl GoogleStore {
    pub(crate) fn new(base_url: &str) -> Self {
        Self {
            service_account: RsaKey::generate(2048),
            service_account_key_id: random_token(20),
            token_uri: format!("{base_url}/google/oauth2/token"),
            access_tokens: HashMap::new(),
            license_keys: KeyCache::default(),
            purchases: HashMap::new(),
            voided: Vec::new(),
            message_ids: 0,
            outbox: Vec::new(),
        }
    }

    pub(super) fn license_key(&mut self, package: &str) -> RsaKey {
        self.license_keys
            .get_or_make(package, || RsaKey::generate(2048))
    }

    /// The Pub/Sub push body carrying a DeveloperNotification.
    #[allow(
        clippy::needless_pass_by_value,
        reason = "callers build the body in place"
    )]
    pub(super) fn rtdn(&mut self, package: &str, notification: (&str, Value)) -> Value {
        self.message_ids += 1;
        let now = Utc::now();
        let developer_notification = json!({
            "version": "1.0",
            "packageName": package,
            "eventTimeMillis": now.timestamp_millis().to_string(),
            notification.0: notification.1,
        });
        let data = STANDARD.encode(developer_notification.to_string());
        let id = (9_000_000_000_u64 + self.message_ids).to_string();
        let published = rfc3339(now.timestamp_millis());
        let envelope = json!({
            "message": {
                "attributes": {},
                "data": data,
                "messageId": id, "message_id": id,
                "publishTime": published, "publish_time": published,
            },
            "subscription": "projects/iap-emulator/subscriptions/play-rtdn",
        });
        self.outbox.push(envelope.clone());
        envelope
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Kind {
    Inapp,
    Subs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum PurchaseState {
    Purchased,
    Cancelled,
    Pending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum SubscriptionState {
    Pending,
    Active,
    Paused,
    InGracePeriod,
    OnHold,
    Canceled,
    Expired,
}

impl SubscriptionState {
    fn wire(self) -> &'static str {
        match self {
            SubscriptionState::Pending => "SUBSCRIPTION_STATE_PENDING",
            SubscriptionState::Active => "SUBSCRIPTION_STATE_ACTIVE",
            SubscriptionState::Paused => "SUBSCRIPTION_STATE_PAUSED",
            SubscriptionState::InGracePeriod => "SUBSCRIPTION_STATE_IN_GRACE_PERIOD",
            SubscriptionState::OnHold => "SUBSCRIPTION_STATE_ON_HOLD",
            SubscriptionState::Canceled => "SUBSCRIPTION_STATE_CANCELED",
            SubscriptionState::Expired => "SUBSCRIPTION_STATE_EXPIRED",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Subscription {
    pub(super) state: SubscriptionState,
    pub(super) expiry_ms: i64,
    pub(super) auto_renew: bool,
    pub(super) latest_order_id: String,
    /// The renewal Google is collecting in grace or on hold (`renewalDeclined.pendingOrderId`;
    /// also the deprecated top-level `latestOrderId` then).
    #[serde(default)]
    pub(super) pending_order_id: Option<String>,
    pub(super) renewals: u32,
    pub(super) linked_purchase_token: Option<String>,
    pub(super) free_trial: bool,
    pub(super) auto_resume_ms: Option<i64>,
    pub(super) cancellation: Option<String>,
    pub(super) etag: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Purchase {
    pub(super) package: String,
    pub(super) product_id: String,
    pub(super) token: String,
    pub(super) order_id: String,
    pub(super) kind: Kind,
    pub(super) purchase_time_ms: i64,
    pub(super) state: PurchaseState,
    pub(super) consumed: bool,
    pub(super) acknowledged: bool,
    pub(super) test: bool,
    pub(super) quantity: u32,
    pub(super) refundable_quantity: u32,
    pub(super) account_id: Option<String>,
    pub(super) profile_id: Option<String>,
    pub(super) developer_payload: String,
    pub(super) region: String,
    pub(super) price_micros: i64,
    pub(super) currency: String,
    // Google stops answering for a token 60 days after expiry (410).
    pub(super) gone: bool,
    pub(super) subscription: Option<Subscription>,
}

pub(super) fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_else(Utc::now)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn product_purchase(p: &Purchase) -> Value {
    let mut body = json!({
        "kind": "androidpublisher#productPurchase",
        "purchaseTimeMillis": p.purchase_time_ms.to_string(),
        "purchaseState": match p.state { PurchaseState::Purchased => 0, PurchaseState::Cancelled => 1, PurchaseState::Pending => 2 },
        "consumptionState": i32::from(p.consumed),
        "developerPayload": p.developer_payload,
        "orderId": p.order_id,
        "acknowledgementState": i32::from(p.acknowledged),
        "quantity": p.quantity,
        "refundableQuantity": p.refundable_quantity,
        "regionCode": p.region,
    });
    if p.test {
        body["purchaseType"] = json!(0);
    }
    if let Some(id) = &p.account_id {
        body["obfuscatedExternalAccountId"] = json!(id);
    }
    if let Some(id) = &p.profile_id {
        body["obfuscatedExternalProfileId"] = json!(id);
    }
    body
}

pub(super) fn product_purchase_v2(p: &Purchase) -> Value {
    let state = match p.state {
        PurchaseState::Purchased => "PURCHASED",
        PurchaseState::Cancelled => "CANCELLED",
        PurchaseState::Pending => "PENDING",
    };
    let mut body = json!({
        "kind": "androidpublisher#productPurchaseV2",
        "orderId": p.order_id,
        "purchaseStateContext": { "purchaseState": state },
        "acknowledgementState": if p.acknowledged { "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED" } else { "ACKNOWLEDGEMENT_STATE_PENDING" },
        "regionCode": p.region,
        "productLineItem": [{
            "productId": p.product_id,
            "productOfferDetails": {
                "consumptionState": if p.consumed { "CONSUMPTION_STATE_CONSUMED" } else { "CONSUMPTION_STATE_YET_TO_BE_CONSUMED" },
                "quantity": p.quantity,
                "refundableQuantity": p.refundable_quantity,
                "offerTags": [],
            },
        }],
    });
    if p.state != PurchaseState::Pending {
        body["purchaseCompletionTime"] = json!(rfc3339(p.purchase_time_ms));
    }
    if p.test {
        body["testPurchaseContext"] = json!({ "fopType": "TEST" });
    }
    if let Some(id) = &p.account_id {
        body["obfuscatedExternalAccountId"] = json!(id);
    }
    if let Some(id) = &p.profile_id {
        body["obfuscatedExternalProfileId"] = json!(id);
    }
    body
}

pub(super) fn subscription_purchase_v2(p: &Purchase) -> Value {
    let Some(s) = &p.subscription else {
        return json!({});
    };
    let units = p.price_micros / 1_000_000;
    let nanos = (p.price_micros % 1_000_000) * 1000;
    let mut body = json!({
        "kind": "androidpublisher#subscriptionPurchaseV2",
        "regionCode": p.region,
        "subscriptionState": s.state.wire(),
        "acknowledgementState": if p.acknowledged { "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED" } else { "ACKNOWLEDGEMENT_STATE_PENDING" },
        "etag": s.etag.to_string(),
        "externalAccountIdentifiers": {},
        "lineItems": [{
            "productId": p.product_id,
            "expiryTime": rfc3339(s.expiry_ms),
            "latestSuccessfulOrderId": s.latest_order_id,
            "autoRenewingPlan": {
                "autoRenewEnabled": s.auto_renew,
                "recurringPrice": { "currencyCode": p.currency, "units": units.to_string(), "nanos": nanos },
            },
            "offerDetails": { "basePlanId": "monthly", "offerTags": [] },
            "offerPhase": if s.free_trial && s.renewals == 0 { json!({ "freeTrial": {} }) } else { json!({ "basePrice": {} }) },
        }],
    });
    if s.state != SubscriptionState::Pending {
        body["startTime"] = json!(rfc3339(p.purchase_time_ms));
    }
    if let Some(id) = &p.account_id {
        body["externalAccountIdentifiers"]["obfuscatedExternalAccountId"] = json!(id);
    }
    if let Some(id) = &p.profile_id {
        body["externalAccountIdentifiers"]["obfuscatedExternalProfileId"] = json!(id);
    }
    if p.test {
        body["testPurchase"] = json!({});
    }
    if let Some(linked) = &s.linked_purchase_token {
        body["linkedPurchaseToken"] = json!(linked);
    }
    if let (SubscriptionState::Paused, Some(resume)) = (s.state, s.auto_resume_ms) {
        body["pausedStateContext"] = json!({ "autoResumeTime": rfc3339(resume) });
    }
    if let Some(kind) = &s.cancellation {
        body["canceledStateContext"] = json!({ kind.as_str(): {} });
    }
    // Deprecated but still sent: the newest order, which in grace or on hold is the renewal
    // Google has not collected yet.
    body["latestOrderId"] = json!(s.pending_order_id.as_ref().unwrap_or(&s.latest_order_id));
    if let Some(pending) = &s.pending_order_id {
        let context = json!({ "renewalDeclined": { "pendingOrderId": pending } });
        match s.state {
            SubscriptionState::InGracePeriod => body["inGracePeriodStateContext"] = context,
            SubscriptionState::OnHold => body["onHoldStateContext"] = context,
            _ => {}
        }
    }
    body
}

/// How a refund is recorded: Google's `voidedSource` and `voidedReason`, and for a
/// quantity-based partial refund of a one-time product the units refunded.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(super) struct VoidSpec {
    #[serde(default)]
    source: u8,
    #[serde(default = "remorse")]
    reason: u8,
    #[serde(default)]
    pub(super) quantity: Option<u32>,
}

fn remorse() -> u8 {
    1
}

impl VoidSpec {
    /// A whole refund by `source`, for remorse.
    pub(super) fn whole(source: u8) -> Self {
        Self {
            source,
            reason: remorse(),
            quantity: None,
        }
    }
}

/// Records a refund the way Google reports it (voided purchases list) and returns the RTDN.
pub(super) fn void(
    google: &mut GoogleStore,
    token: &str,
    spec: VoidSpec,
    revoke: bool,
) -> Option<Value> {
    let notification = record_void(google, token, spec, revoke)?;
    let package = google.purchases.get(token)?.package.clone();
    Some(google.rtdn(&package, ("voidedPurchaseNotification", notification)))
}

/// Lists a refund or revocation among the voided purchases, as Google does for every refund,
/// chargeback and revocation of a one-time product or a subscription, and ends what it paid for.
/// Returns the body of the voided-purchase notification, for the caller to send or not.
pub(super) fn record_void(
    google: &mut GoogleStore,
    token: &str,
    spec: VoidSpec,
    revoke: bool,
) -> Option<Value> {
    let now = Utc::now().timestamp_millis();
    let p = google.purchases.get_mut(token)?;
    let subscription = p.kind == Kind::Subs;
    // A quantity-based partial refund of a one-time product: fewer units than are still
    // refundable. Anything else refunds the whole purchase.
    let partial = spec
        .quantity
        .filter(|q| !subscription && *q > 0 && *q < p.refundable_quantity);
    let order_id = p
        .subscription
        .as_ref()
        .map_or_else(|| p.order_id.clone(), |s| s.latest_order_id.clone());
    let mut record = json!({
        "kind": "androidpublisher#voidedPurchase",
        "purchaseToken": p.token,
        "orderId": order_id,
        "purchaseTimeMillis": p.purchase_time_ms.to_string(),
        "voidedTimeMillis": now.to_string(),
        "voidedSource": spec.source,
        "voidedReason": spec.reason,
        "packageName": p.package,
        "_subscription": subscription,
        "_recordedMillis": now,
    });
    match partial {
        Some(units) => {
            // Listed only to callers that ask for partial refunds, as Google does.
            record["voidedQuantity"] = json!(units);
            record["_partial"] = json!(true);
            p.refundable_quantity -= units;
        }
        None => p.refundable_quantity = 0,
    }
    if let Some(s) = p.subscription.as_mut().filter(|_| revoke || subscription) {
        s.state = SubscriptionState::Expired;
        s.auto_renew = false;
        s.expiry_ms = now;
        s.etag += 1;
    }
    let notification = json!({
        "purchaseToken": token,
        "orderId": order_id,
        "productType": if subscription { 1 } else { 2 },
        // 1 a full refund, 2 a quantity-based partial refund.
        "refundType": if partial.is_some() { 2 } else { 1 },
    });
    google.voided.push(record);
    Some(notification)
}

impl GoogleStore {
    /// The service-account key file the token endpoint accepts.
    pub(crate) fn service_account_json(&self) -> Value {
        let google = self;
        json!({
            "type": "service_account",
            "project_id": "iap-emulator",
            "private_key_id": google.service_account_key_id,
            "private_key": google.service_account.private_pkcs8_pem(),
            "client_email": CLIENT_EMAIL,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": google.token_uri,
        })
    }

    /// A package's licence key, base64 DER SPKI.
    pub(crate) fn license_key_base64(&mut self, package: &str) -> String {
        self.license_key(package).public_spki_base64()
    }
}

/// The client-side `Purchase.getOriginalJson()`, with Google's field names.
pub(super) fn original_json(p: &Purchase) -> String {
    let mut json = json!({
        "orderId": p.order_id,
        "packageName": p.package,
        "productId": p.product_id,
        "purchaseTime": p.purchase_time_ms,
        // In the raw JSON 4 means PENDING; purchases are 0.
        "purchaseState": if p.state == PurchaseState::Pending { 4 } else { 0 },
        "purchaseToken": p.token,
        "quantity": p.quantity,
        "acknowledged": p.acknowledged,
    });
    if p.kind == Kind::Subs {
        json["autoRenewing"] = json!(true);
    }
    if let Some(id) = &p.account_id {
        json["obfuscatedAccountId"] = json!(id);
    }
    if let Some(id) = &p.profile_id {
        json["obfuscatedProfileId"] = json!(id);
    }
    json.to_string()
}

impl GoogleStore {
    /// After loading a saved state: the parts that depend on where the emulator runs now.
    pub(crate) fn rebase(&mut self, base_url: &str) {
        self.token_uri = format!("{base_url}/google/oauth2/token");
    }
}
