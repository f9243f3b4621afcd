//! Google's records of a refund, read as Google documents them: who voided a purchase
//! (`voidedSource` 0 user, 1 developer, 2 Google), why (`voidedReason` 0 other, 1 remorse,
//! 2 not received, 3 defective, 4 accidental purchase, 5 fraud, 6 friendly fraud, 7 chargeback),
//! and how much of a one-time purchase is refunded (productsv2: the line items' `quantity` less
//! their `refundableQuantity`, which counts every quantity-based partial refund so far).
//! Sources: docs/stores.md ("Google Play: voided purchases and partial refunds").

use iap_domain::refunds::{RefundCause, RefundShare};
use serde_json::Value;

fn number(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

/// The name of a `voidedSource`.
fn source_name(source: i64) -> Option<&'static str> {
    Some(match source {
        0 => "user",
        1 => "developer",
        2 => "google",
        _ => return None,
    })
}

/// The name of a `voidedReason`.
fn reason_name(reason: i64) -> Option<&'static str> {
    Some(match reason {
        0 => "other",
        1 => "remorse",
        2 => "not_received",
        3 => "defective",
        4 => "accidental_purchase",
        5 => "fraud",
        6 => "friendly_fraud",
        7 => "chargeback",
        8 => "unacknowledged_purchase",
        _ => return None,
    })
}

/// Who voided the purchase and why, from the latest of its voided records.
pub(crate) fn cause(entries: &[Value]) -> RefundCause {
    let latest = entries
        .iter()
        .max_by_key(|v| number(&v["voidedTimeMillis"]).unwrap_or(0));
    let Some(latest) = latest else {
        return RefundCause::default();
    };
    RefundCause {
        source: number(&latest["voidedSource"])
            .and_then(source_name)
            .map(str::to_owned),
        reason: number(&latest["voidedReason"])
            .and_then(reason_name)
            .map(str::to_owned),
    }
}

/// A void the player disputed or Google found fraudulent (fraud, friendly fraud, chargeback):
/// revoked rather than refunded. The initiator does not decide it: Google (`voidedSource` 2)
/// also grants ordinary refunds the player asked for.
pub(crate) fn is_revocation(entry: &Value) -> bool {
    matches!(number(&entry["voidedReason"]), Some(5..=7))
}

/// How much of a one-time purchase Google has refunded, from its productsv2 answer: `Whole`
/// when nothing is refundable any more, `Units` after quantity-based partial refunds, `None`
/// when the answer shows no refund.
pub(crate) fn share_from_product(v2: &Value) -> Option<RefundShare> {
    let (mut quantity, mut refundable, mut seen) = (0u64, 0u64, false);
    for line in v2["productLineItem"].as_array().into_iter().flatten() {
        let offer = &line["productOfferDetails"];
        let Some(left) = offer["refundableQuantity"].as_u64() else {
            continue;
        };
        seen = true;
        quantity += offer["quantity"].as_u64().unwrap_or(1);
        refundable += left;
    }
    if !seen {
        return None;
    }
    if refundable == 0 {
        return Some(RefundShare::Whole);
    }
    match quantity.saturating_sub(refundable) {
        0 => None,
        refunded => Some(RefundShare::Units(
            u32::try_from(refunded).unwrap_or(u32::MAX),
        )),
    }
}

/// The share the voided records alone show, when productsv2 cannot be read: the sum of the
/// quantity-based partial refunds when every record is one (`voidedQuantity`), else the whole.
pub(crate) fn share_from_records(entries: &[Value]) -> RefundShare {
    let partial: Option<u64> = entries
        .iter()
        .map(|v| number(&v["voidedQuantity"]).and_then(|q| u64::try_from(q).ok()))
        .try_fold(0u64, |sum, q| q.filter(|q| *q > 0).map(|q| sum + q));
    match partial {
        Some(units) if !entries.is_empty() => {
            RefundShare::Units(u32::try_from(units).unwrap_or(u32::MAX))
        }
        _ => RefundShare::Whole,
    }
}

/// Whether a voided record is a quantity-based partial refund.
pub(crate) fn is_partial(entry: &Value) -> bool {
    number(&entry["voidedQuantity"]).is_some_and(|q| q > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn source_and_reason_read_as_documented() {
        let google_remorse =
            json!({ "voidedSource": 2, "voidedReason": 1, "voidedTimeMillis": "5" });
        let cause = cause(std::slice::from_ref(&google_remorse));
        assert_eq!(cause.source.as_deref(), Some("google"));
        assert_eq!(cause.reason.as_deref(), Some("remorse"));
        assert!(
            !is_revocation(&google_remorse),
            "Google granting a refund is no chargeback"
        );
        let chargeback = json!({ "voidedSource": 0, "voidedReason": 7 });
        assert!(is_revocation(&chargeback));
    }

    #[test]
    fn the_share_counts_every_partial_refund() {
        let line = |quantity: u64, refundable: u64| {
            json!({ "productLineItem": [{ "productOfferDetails":
                { "quantity": quantity, "refundableQuantity": refundable } }] })
        };
        assert_eq!(share_from_product(&line(5, 3)), Some(RefundShare::Units(2)));
        assert_eq!(share_from_product(&line(5, 0)), Some(RefundShare::Whole));
        assert_eq!(share_from_product(&line(5, 5)), None);
        let two = [
            json!({ "voidedQuantity": 2 }),
            json!({ "voidedQuantity": 1 }),
        ];
        assert_eq!(share_from_records(&two), RefundShare::Units(3));
        assert_eq!(share_from_records(&[json!({})]), RefundShare::Whole);
    }
}
