//! What a store says about a purchase once its proof has been checked.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::ProductId;
use crate::order::{Environment, Money, Platform, ProductKind};

/// The proof of purchase a client sent, per store. Serializable so a purchase kept unclaimed can
/// be verified again when it is claimed (see [`crate::unclaimed`]); it is secret either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PurchaseProof {
    /// StoreKit 2 `Transaction.jwsRepresentation`.
    AppleSignedTransaction(String),
    /// A legacy base64 receipt plus the hints needed to pick the right `in_app` entry.
    AppleReceipt {
        /// Base64 receipt.
        receipt_data: String,
        /// Product the client bought, if known.
        product_id: Option<ProductId>,
        /// Transaction the client is finishing, if known.
        transaction_id: Option<String>,
    },
    /// Only an App Store transaction id; the signed transaction is fetched from Apple.
    AppleTransactionId(String),
    /// A Google Play purchase.
    Google {
        /// Purchase token.
        purchase_token: String,
        /// Product id.
        product_id: ProductId,
        /// `Purchase.getOriginalJson()` and its signature, for the optional local check.
        signed_data: Option<SignedData>,
    },
    /// A Huawei IAP purchase.
    Huawei {
        /// Purchase token.
        purchase_token: String,
        /// Product id.
        product_id: ProductId,
        /// `InAppPurchaseData` with its signature.
        signed_data: SignedData,
        /// `SHA256WithRSA` or `SHA256WithRSA/PSS`.
        signature_algorithm: Option<String>,
    },
}

impl PurchaseProof {
    /// The store the proof comes from.
    pub fn platform(&self) -> Platform {
        match self {
            PurchaseProof::AppleSignedTransaction(_)
            | PurchaseProof::AppleReceipt { .. }
            | PurchaseProof::AppleTransactionId(_) => Platform::Apple,
            PurchaseProof::Google { .. } => Platform::Google,
            PurchaseProof::Huawei { .. } => Platform::Huawei,
        }
    }
}

/// Exact bytes a store signed, and the base64 signature over them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedData {
    /// The signed text, never re-serialized.
    pub data: String,
    /// Base64 signature.
    pub signature: String,
}

/// Payment state according to the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PurchaseStatus {
    /// Paid.
    Purchased,
    /// Payment not completed yet (never granted).
    Pending,
    /// Cancelled or failed before payment.
    Cancelled,
    /// Refunded or revoked after payment.
    Refunded {
        /// When the store recorded it.
        at: Option<DateTime<Utc>>,
        /// Store's reason code or text.
        reason: Option<String>,
    },
}

/// Store-side subscription state, as far as one verification tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubscriptionStatus {
    /// Entitled and renewing (or cancelled but not yet expired).
    Active,
    /// Renewal failed; access continues until the grace period ends.
    InGracePeriod,
    /// Renewal failed; access suspended while the store retries billing.
    BillingRetry,
    /// Google account hold.
    OnHold,
    /// Paused by the user.
    Paused,
    /// Lapsed.
    Expired,
    /// Refunded or revoked.
    Revoked,
}

/// A purchase the store vouched for (signature, chain and app checked by the adapter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifiedPurchase {
    /// Store.
    pub platform: Platform,
    /// Production or sandbox.
    pub environment: Environment,
    /// The store's unique id of this charge as the store returned or signed it, the replay key:
    /// Apple's signed `transactionId`; Google's `orderId` (each subscription renewal has its
    /// own; a one-time purchase without an order falls back to its checked `purchaseToken`);
    /// Huawei's signed `orderId`.
    pub store_transaction_id: String,
    /// Apple `originalTransactionId`, Huawei `subscriptionId`: ties renewals together.
    pub original_transaction_id: Option<String>,
    /// Google and Huawei purchase token.
    pub purchase_token: Option<String>,
    /// Store order id (Google `GPA.…`, Huawei `orderId`).
    pub store_order_id: Option<String>,
    /// Product bought.
    pub product_id: ProductId,
    /// Units.
    pub quantity: u32,
    /// Payment state.
    pub status: PurchaseStatus,
    /// When the charge happened.
    pub purchased_at: Option<DateTime<Utc>>,
    /// Subscription period end.
    pub expires_at: Option<DateTime<Utc>>,
    /// Our order id as the purchase carried it (Apple `appAccountToken`, Google
    /// `obfuscatedExternalProfileId`, Huawei `developerPayload`), unparsed.
    pub carried_order_id: Option<String>,
    /// The paying store account, where the store names one (Apple `appTransactionId`, one per
    /// Apple Account and app; Google's Subscribe with Google `profileId`, else the
    /// `obfuscatedExternalAccountId` the app set; Huawei names none), used against repeated
    /// trials (docs/stores.md, "Who paid").
    pub store_account_id: Option<String>,
    /// A free-trial period.
    pub is_trial: bool,
    /// Price paid, when the store reports it.
    pub price: Option<Money>,
    /// Kind, when the store reports it.
    pub kind: Option<ProductKind>,
    /// Google `linkedPurchaseToken`: the subscription this one replaces.
    pub linked_purchase_token: Option<String>,
    /// Store-side acknowledgement (Google) or confirmation (Huawei) already done.
    pub acknowledged: Option<bool>,
    /// Store-side consumption already done.
    pub consumed: Option<bool>,
    /// Subscription state, for subscriptions.
    pub subscription_status: Option<SubscriptionStatus>,
    /// Subscription group, when the store reports it.
    pub subscription_group: Option<String>,
    /// The decoded, verified payload as the store sent it, kept for audit.
    pub raw: serde_json::Value,
    /// The client must not finish the store transaction even once this purchase is recorded:
    /// the proof holds further paid transactions not yet recorded (a legacy receipt verified
    /// without a transaction id), and the client cannot tell which one the answer is about.
    #[serde(default)]
    pub finish_withheld: bool,
    /// The store's newest receipt for this subscription (Apple `latest_receipt` from
    /// verifyReceipt), kept with the subscription so a deployment without App Store Server API
    /// credentials can still ask Apple about renewals. Secret, and never serialized.
    #[serde(skip)]
    pub latest_receipt: Option<StoreReceipt>,
}

/// A receipt the store issued, kept to ask the store again later (Apple's `latest_receipt`).
/// Whoever holds it can read the purchases it proves, so it is never logged: `Debug` shows only
/// its length.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreReceipt(String);

impl StoreReceipt {
    /// Wraps the store's receipt.
    pub fn new(receipt: impl Into<String>) -> Self {
        Self(receipt.into())
    }

    /// The receipt itself, for the store call (and the database column) only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for StoreReceipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreReceipt(<{} bytes>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::StoreReceipt;

    #[test]
    fn a_receipt_never_shows_in_debug_output() {
        let receipt = StoreReceipt::new("ewoic2lnbmF0dXJlIjoic2VjcmV0In0=");
        let shown = format!("{:?}", Some(receipt.clone()));
        assert!(!shown.contains(receipt.expose()), "{shown}");
        assert_eq!(shown, "Some(StoreReceipt(<32 bytes>))");
    }
}
