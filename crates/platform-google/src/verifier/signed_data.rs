//! The local check of `Purchase.getOriginalJson()` and its signature: a fast reject of
//! forgeries, and, when the licence key refuses a purchase Google confirms, the sign that the
//! key is the wrong one.

use serde_json::Value;

use iap_domain::ports::StoreError;
use iap_domain::purchase::{PurchaseStatus, SignedData, VerifiedPurchase};
use iap_domain::{ProductId, RejectReason};

use crate::signature::LicenseKey;

use super::{GoogleApp, GoogleVerifier, rejected};

/// The local fast reject: the JSON must be signed by the licence key and name this token and
/// product of this package.
pub(crate) fn check_signed_data(
    package: &str,
    license_key: Option<&LicenseKey>,
    signed: &SignedData,
    token: &str,
    product: &ProductId,
) -> Result<(), StoreError> {
    let forged = license_key.is_some_and(|key| !key.verifies(&signed.data, &signed.signature));
    if forged {
        return Err(rejected(
            RejectReason::SignatureInvalid,
            "signature_invalid",
            "the purchase JSON is not signed by the licence key",
        ));
    }
    let json: Value = serde_json::from_str(&signed.data).map_err(|_| {
        rejected(
            RejectReason::Malformed,
            "original_json_malformed",
            "original_json is not JSON",
        )
    })?;
    if json["packageName"].as_str().is_some_and(|p| p != package) {
        return Err(rejected(
            RejectReason::BundleMismatch,
            "package_mismatch",
            "the purchase is for another package",
        ));
    }
    let json_token = json["purchaseToken"]
        .as_str()
        .or_else(|| json["token"].as_str());
    if json_token.is_some_and(|t| t != token) {
        return Err(rejected(
            RejectReason::Malformed,
            "token_mismatch",
            "original_json names another purchase token",
        ));
    }
    let json_product = json["productId"]
        .as_str()
        .or_else(|| json["productIds"][0].as_str());
    if json_product.is_some_and(|p| p != product.as_str()) {
        return Err(rejected(
            RejectReason::ProductMismatch,
            "product_mismatch",
            "original_json names another product",
        ));
    }
    Ok(())
}

/// The keys `Purchase.getOriginalJson()` holds (platforms/google.md §4).
const ORIGINAL_JSON_KEYS: &[&str] = &[
    "orderId",
    "packageName",
    "productId",
    "productIds",
    "purchaseTime",
    "purchaseState",
    "purchaseToken",
    "token",
    "quantity",
    "acknowledged",
    "autoRenewing",
    "obfuscatedAccountId",
    "obfuscatedProfileId",
    "developerPayload",
];

/// Whether `json` says exactly what Google says of the purchase: only Google's keys, and the
/// same package, token, product, order, quantity, payment state and account ids. An edited JSON
/// (a client changing what it bought) differs somewhere; a genuine one refused by the licence
/// key means the key is the wrong one.
fn genuine_json(
    package: &str,
    token: &str,
    product: &ProductId,
    json: &Value,
    google: &VerifiedPurchase,
) -> bool {
    let Some(fields) = json.as_object() else {
        return false;
    };
    let text = |key: &str| json[key].as_str();
    let json_product = text("productId").or_else(|| json["productIds"][0].as_str());
    let json_token = text("purchaseToken").or_else(|| text("token"));
    let pending = json["purchaseState"].as_i64() == Some(4);
    fields
        .keys()
        .all(|k| ORIGINAL_JSON_KEYS.contains(&k.as_str()))
        && text("packageName") == Some(package)
        && json_token == Some(token)
        && json_product == Some(product.as_str())
        && text("orderId") == google.store_order_id.as_deref()
        && json["quantity"].as_u64().unwrap_or(1) == u64::from(google.quantity)
        && pending == (google.status == PurchaseStatus::Pending)
        && text("obfuscatedProfileId") == google.carried_order_id.as_deref()
        && text("obfuscatedAccountId") == google.store_account_id.as_deref()
}

impl GoogleVerifier {
    /// The licence key refused `original_json`. Either the JSON is forged or edited (then Google
    /// does not know the purchase as the JSON describes it, and the refusal stands: `None`), or
    /// our key is the wrong one — Google confirms the very purchase the JSON describes, field by
    /// field — and refusing it for good would make the client finish a paid purchase: that is
    /// our configuration's fault, reported as such. Google unreachable: nothing decided.
    pub(super) async fn forged_or_wrong_key(
        &self,
        app: &GoogleApp,
        token: &str,
        product: &ProductId,
        subscription: bool,
        signed: Option<&str>,
    ) -> Option<StoreError> {
        let purchase = match self.ask(app, token, product, subscription).await {
            Ok(purchase) => purchase,
            Err(e @ (StoreError::Unavailable { .. } | StoreError::Misconfigured(_))) => {
                return Some(e);
            }
            Err(StoreError::Rejected { .. }) => return None,
        };
        let json: Value = serde_json::from_str(signed?).ok()?;
        genuine_json(&app.package, token, product, &json, &purchase).then(|| {
            StoreError::Misconfigured(format!(
                "the licence key (license_key_base64) of package {} does not verify a purchase \
                 Google confirms: the key is the wrong one",
                app.package
            ))
        })
    }
}
