//! Legacy receipts through verifyReceipt: which transaction of a receipt a request means, and
//! a subscription's state from the receipt Apple returned last.

use iap_domain::ports::StoreError;
use iap_domain::purchase::{PurchaseStatus, StoreReceipt, VerifiedPurchase};
use iap_domain::subscriptions::{SubscriptionRef, SubscriptionSnapshot, SubscriptionState};
use iap_domain::{Platform, ProductId, RejectReason};

use crate::receipt::{Pick, pick_transaction};

use super::{AppleApp, AppleVerifier, chrono_from_ms};

impl AppleVerifier {
    pub(super) async fn verify_receipt(
        &self,
        app: &AppleApp,
        receipt: &str,
        product: Option<&ProductId>,
        transaction_id: Option<&str>,
        ledger: Option<&dyn iap_domain::ports::PaymentLedger>,
    ) -> Result<VerifiedPurchase, StoreError> {
        let reply = app
            .receipts
            .verify(receipt, app.shared_secret.as_deref())
            .await?;
        // Several transactions the client may mean: which of them are recorded already.
        let candidates: Vec<String> =
            match pick_transaction(&reply, transaction_id, product.map(ProductId::as_str)) {
                Some(Pick::Candidates(entries)) => entries
                    .iter()
                    .filter_map(|e| e["transaction_id"].as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
        let recorded = match ledger {
            Some(ledger) if !candidates.is_empty() => ledger
                .recorded_among(Platform::Apple, &candidates)
                .await
                .map_err(|e| StoreError::unavailable(format!("recorded transactions: {e}")))?,
            _ => Vec::new(),
        };
        receipt_purchase(&app.bundle_id, &reply, product, transaction_id, &recorded)
    }
}

/// Maps a verifyReceipt answer (status 0 or 21006) to the purchase it proves for `bundle_id`.
/// Without a transaction id, of several transactions of the product the oldest paid one not in
/// `recorded` is taken — two unfinished consumables are granted one each, oldest first — and
/// while another such one remains, the client is told not to finish (it cannot know which of
/// its transactions the answer is about). When every one is recorded or refunded, the newest
/// answers (a retry, or a refund).
pub(crate) fn receipt_purchase(
    bundle_id: &str,
    reply: &serde_json::Value,
    product: Option<&ProductId>,
    transaction_id: Option<&str>,
    recorded: &[String],
) -> Result<VerifiedPurchase, StoreError> {
    if reply["receipt"]["bundle_id"] != bundle_id {
        return Err(StoreError::rejected(
            RejectReason::BundleMismatch,
            "bundle_mismatch",
            "the receipt is for another bundle",
        ));
    }
    let not_found = || {
        StoreError::rejected(
            RejectReason::NotFoundAtStore,
            "transaction_not_in_receipt",
            "the receipt holds no matching transaction",
        )
    };
    let (entry, finish_withheld) =
        match pick_transaction(reply, transaction_id, product.map(ProductId::as_str)) {
            None => return Err(not_found()),
            Some(Pick::One(entry)) => (entry, false),
            Some(Pick::Candidates(entries)) => {
                let open: Vec<&serde_json::Value> = entries
                    .iter()
                    .copied()
                    .filter(|e| {
                        e.get("cancellation_date_ms").is_none()
                            && !recorded.iter().any(|id| e["transaction_id"] == id.as_str())
                    })
                    .collect();
                match open.first() {
                    Some(oldest) => (*oldest, open.len() > 1),
                    None => (*entries.last().ok_or_else(not_found)?, false),
                }
            }
        };
    entry_purchase(reply, entry, finish_withheld)
}

/// One `in_app` / `latest_receipt_info` entry of a verifyReceipt answer as a purchase. An
/// auto-renewable one carries the answer's `latest_receipt`, kept with the subscription.
fn entry_purchase(
    reply: &serde_json::Value,
    entry: &serde_json::Value,
    finish_withheld: bool,
) -> Result<VerifiedPurchase, StoreError> {
    let environment = match reply["environment"].as_str() {
        Some("Production") => iap_domain::Environment::Production,
        _ => iap_domain::Environment::Sandbox,
    };
    let text = |field: &str| {
        entry[field]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let millis = |field: &str| {
        text(field)
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(chrono_from_ms)
    };
    let transaction = text("transaction_id").ok_or_else(|| {
        StoreError::rejected(
            RejectReason::Malformed,
            "field_missing",
            "receipt entry without transaction_id",
        )
    })?;
    let product_id = ProductId::parse(text("product_id").unwrap_or_default()).map_err(|e| {
        StoreError::rejected(RejectReason::Malformed, "field_invalid", e.to_string())
    })?;
    let status = match millis("cancellation_date_ms") {
        Some(at) => PurchaseStatus::Refunded {
            at: Some(at),
            reason: text("cancellation_reason"),
        },
        None => PurchaseStatus::Purchased,
    };
    Ok(VerifiedPurchase {
        platform: Platform::Apple,
        environment,
        store_transaction_id: transaction,
        original_transaction_id: text("original_transaction_id"),
        purchase_token: None,
        store_order_id: text("web_order_line_item_id"),
        product_id,
        quantity: text("quantity")
            .and_then(|q| q.parse().ok())
            .unwrap_or(1)
            .max(1),
        status,
        purchased_at: millis("purchase_date_ms"),
        expires_at: millis("expires_date_ms"),
        carried_order_id: text("app_account_token").map(|t| t.to_ascii_lowercase()),
        // verifyReceipt names no Apple Account.
        store_account_id: None,
        is_trial: text("is_trial_period").as_deref() == Some("true"),
        price: None,
        kind: None,
        linked_purchase_token: None,
        acknowledged: None,
        consumed: None,
        subscription_status: None,
        subscription_group: text("subscription_group_identifier"),
        raw: entry.clone(),
        finish_withheld,
        latest_receipt: millis("expires_date_ms")
            .and(reply["latest_receipt"].as_str())
            .filter(|r| !r.is_empty())
            .map(StoreReceipt::new),
    })
}

/// A subscription's state from a verifyReceipt answer: its newest period in
/// `latest_receipt_info` and its `pending_renewal_info` entry, as of `now_ms`.
pub(crate) fn receipt_subscription(
    bundle_id: &str,
    reply: &serde_json::Value,
    subscription: &SubscriptionRef,
    now_ms: i64,
) -> Result<SubscriptionSnapshot, StoreError> {
    if reply["receipt"]["bundle_id"] != bundle_id {
        return Err(StoreError::rejected(
            RejectReason::BundleMismatch,
            "bundle_mismatch",
            "the kept receipt is for another bundle",
        ));
    }
    let ms =
        |v: &serde_json::Value, field: &str| v[field].as_str().and_then(|s| s.parse::<i64>().ok());
    let of_this =
        |v: &&serde_json::Value| v["original_transaction_id"] == subscription.key.as_str();
    let newest = reply["latest_receipt_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(of_this)
        .max_by_key(|e| (ms(e, "purchase_date_ms"), ms(e, "expires_date_ms")))
        .ok_or_else(|| {
            StoreError::rejected(
                RejectReason::NotFoundAtStore,
                "subscription_not_in_receipt",
                "the kept receipt lists no period of the subscription",
            )
        })?;
    let latest = entry_purchase(reply, newest, false)?;
    if subscription
        .environment
        .is_some_and(|env| env != latest.environment)
    {
        return Err(StoreError::rejected(
            RejectReason::NotFoundAtStore,
            "environment_mismatch",
            "the kept receipt answers from another environment",
        ));
    }
    let empty = serde_json::Value::Null;
    let renewal = reply["pending_renewal_info"]
        .as_array()
        .into_iter()
        .flatten()
        .find(of_this)
        .unwrap_or(&empty);
    let expires = ms(newest, "expires_date_ms");
    let grace = ms(renewal, "grace_period_expires_date_ms");
    let state = if ms(newest, "cancellation_date_ms").is_some() {
        SubscriptionState::Revoked
    } else if expires.is_some_and(|e| e > now_ms) {
        SubscriptionState::Active
    } else if grace.is_some_and(|g| g > now_ms) {
        SubscriptionState::InGrace
    } else if renewal["is_in_billing_retry_period"] == "1" {
        SubscriptionState::BillingRetry
    } else {
        SubscriptionState::Expired
    };
    Ok(SubscriptionSnapshot {
        state,
        expires_at: latest.expires_at,
        grace_until: grace.and_then(chrono_from_ms),
        auto_renew: renewal["auto_renew_status"].as_str().map(|s| s == "1"),
        auto_renew_product_id: renewal["auto_renew_product_id"].as_str().map(str::to_owned),
        // `price_consent_status` is present only while a price increase awaits the customer.
        price_change_state: renewal["price_consent_status"].as_str().map(|s| match s {
            "1" => "PRICE_INCREASE_CONSENTED".to_owned(),
            _ => "PRICE_INCREASE_PENDING".to_owned(),
        }),
        latest,
    })
}

#[cfg(test)]
mod receipt_subscription_tests {
    use super::*;
    use iap_domain::AppId;
    use serde_json::{Value, json};

    const NOW: i64 = 1_800_000_000_000;
    const DAY: i64 = 86_400_000;

    fn reference(environment: Option<iap_domain::Environment>) -> SubscriptionRef {
        SubscriptionRef {
            app_id: AppId::parse("game").unwrap(),
            platform: Platform::Apple,
            key: "1000".into(),
            product_id: None,
            purchase_token: None,
            environment,
            receipt: None,
        }
    }

    fn period(transaction: &str, original: &str, bought: i64, expires: i64) -> Value {
        json!({
            "transaction_id": transaction, "original_transaction_id": original,
            "web_order_line_item_id": format!("w{transaction}"), "product_id": "premium_monthly",
            "quantity": "1", "purchase_date_ms": bought.to_string(),
            "expires_date_ms": expires.to_string(),
        })
    }

    fn reply(periods: Vec<Value>, renewal: Value) -> Value {
        let (periods, renewal) = (Value::Array(periods), renewal);
        json!({
            "status": 0, "environment": "Production",
            "receipt": { "bundle_id": "com.example.game" },
            "latest_receipt": "bmV3ZXI=",
            "latest_receipt_info": periods,
            "pending_renewal_info": [renewal],
        })
    }

    fn renewal(fields: Value) -> Value {
        let mut r = json!({ "original_transaction_id": "1000", "auto_renew_status": "1",
                            "auto_renew_product_id": "premium_yearly" });
        if let (Some(r), Value::Object(fields)) = (r.as_object_mut(), fields) {
            r.extend(fields);
        }
        r
    }

    fn snapshot(reply: &Value) -> Result<SubscriptionSnapshot, StoreError> {
        receipt_subscription("com.example.game", reply, &reference(None), NOW)
    }

    #[test]
    fn the_newest_period_of_the_chain_is_the_latest() {
        let answer = reply(
            vec![
                period("1002", "1000", NOW - DAY, NOW + 29 * DAY),
                period("1000", "1000", NOW - 31 * DAY, NOW - DAY),
                // Another subscription of the same customer is not this one.
                period("2001", "2000", NOW, NOW + 365 * DAY),
            ],
            renewal(json!({})),
        );
        let now = snapshot(&answer).unwrap();
        assert_eq!(now.latest.store_transaction_id, "1002");
        assert_eq!(now.latest.store_order_id.as_deref(), Some("w1002"));
        assert_eq!(now.state, SubscriptionState::Active);
        assert_eq!(now.auto_renew, Some(true));
        assert_eq!(now.auto_renew_product_id.as_deref(), Some("premium_yearly"));
        assert_eq!(
            now.latest.latest_receipt,
            Some(StoreReceipt::new("bmV3ZXI="))
        );
    }

    #[test]
    fn lapsed_periods_read_as_grace_retry_or_expired() {
        let lapsed = || vec![period("1000", "1000", NOW - 31 * DAY, NOW - DAY)];
        let grace = reply(
            lapsed(),
            renewal(
                json!({ "grace_period_expires_date_ms": (NOW + DAY).to_string(),
                            "is_in_billing_retry_period": "1" }),
            ),
        );
        let now = snapshot(&grace).unwrap();
        assert_eq!(now.state, SubscriptionState::InGrace);
        assert_eq!(now.grace_until, chrono_from_ms(NOW + DAY));

        let retry = reply(
            lapsed(),
            renewal(
                json!({ "grace_period_expires_date_ms": (NOW - 1).to_string(),
                            "is_in_billing_retry_period": "1" }),
            ),
        );
        assert_eq!(
            snapshot(&retry).unwrap().state,
            SubscriptionState::BillingRetry
        );

        let off = reply(
            lapsed(),
            renewal(json!({ "auto_renew_status": "0", "is_in_billing_retry_period": "0" })),
        );
        let now = snapshot(&off).unwrap();
        assert_eq!(now.state, SubscriptionState::Expired);
        assert_eq!(now.auto_renew, Some(false));
    }

    #[test]
    fn a_cancelled_period_is_revoked_even_before_it_ends() {
        let mut refunded = period("1000", "1000", NOW - DAY, NOW + 29 * DAY);
        refunded["cancellation_date_ms"] = json!(NOW.to_string());
        let now = snapshot(&reply(vec![refunded], renewal(json!({})))).unwrap();
        assert_eq!(now.state, SubscriptionState::Revoked);
    }

    #[test]
    fn a_pending_price_increase_is_reported() {
        let answer = reply(
            vec![period("1000", "1000", NOW - DAY, NOW + 29 * DAY)],
            renewal(json!({ "price_consent_status": "0" })),
        );
        assert_eq!(
            snapshot(&answer).unwrap().price_change_state.as_deref(),
            Some("PRICE_INCREASE_PENDING")
        );
    }

    #[test]
    fn another_bundle_environment_or_chain_is_refused() {
        let answer = reply(
            vec![period("1000", "1000", NOW - DAY, NOW + 29 * DAY)],
            renewal(json!({})),
        );
        let code = |r: Result<SubscriptionSnapshot, StoreError>| match r {
            Err(StoreError::Rejected { code, .. }) => code,
            other => panic!("expected a rejection, got {other:?}"),
        };
        assert_eq!(
            code(receipt_subscription(
                "com.other.game",
                &answer,
                &reference(None),
                NOW
            )),
            "bundle_mismatch"
        );
        assert_eq!(
            code(receipt_subscription(
                "com.example.game",
                &answer,
                &reference(Some(iap_domain::Environment::Sandbox)),
                NOW
            )),
            "environment_mismatch"
        );
        let mut other = reference(None);
        other.key = "9999".into();
        assert_eq!(
            code(receipt_subscription(
                "com.example.game",
                &answer,
                &other,
                NOW
            )),
            "subscription_not_in_receipt"
        );
    }
}
