//! The stores' identifiers, checked against each store's documented alphabet and length before
//! anything else looks at them, and the one way such a value is put into a URL.
//!
//! A purchase token, transaction id or product id comes from a game client (through the game
//! server) or from the open notification port: it is the attacker's text until checked. A value
//! outside the store's alphabet is refused, not cleaned: a cleaned value could name another
//! purchase than the one the store knows, and two spellings of one purchase must never make two
//! rows under the replay fence. The formats and their sources are listed in `docs/stores.md`
//! ("Identifier formats").

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::notifications::{DecodedNotification, StoreEvent};
use crate::order::Platform;
use crate::purchase::PurchaseProof;
use crate::subscriptions::SubscriptionRef;

/// An identifier outside its store's format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct StoreIdError {
    /// The request or notification field, e.g. `google.purchase_token`.
    pub field: &'static str,
    /// What is wrong, in a few words (never the value: it may be a secret token).
    pub problem: &'static str,
}

/// Longest purchase token accepted. Google documents no length; Huawei's are 92 characters
/// today. The columns are `TEXT`: a Google purchase without an order id is keyed by its token.
pub const MAX_TOKEN_LEN: usize = 1024;

/// Longest store order id or transaction id accepted.
pub const MAX_ORDER_ID_LEN: usize = 255;

/// Longest signed payload or receipt accepted from a client (a StoreKit JWS is about 3–6 KB
/// with its three certificates; a legacy receipt with years of history can be much larger).
pub const MAX_SIGNED_LEN: usize = 512 * 1024;

fn err(field: &'static str, problem: &'static str) -> StoreIdError {
    StoreIdError { field, problem }
}

/// Length and alphabet, byte by byte: every alphabet here is ASCII, so a multi-byte character
/// (a Unicode look-alike, a no-break or zero-width space) fails the alphabet test.
fn check(
    field: &'static str,
    value: &str,
    max: usize,
    allowed: impl Fn(u8) -> bool,
) -> Result<(), StoreIdError> {
    if value.is_empty() {
        return Err(err(field, "is required"));
    }
    if value.len() > max {
        return Err(err(field, "is too long for the store's format"));
    }
    if !value.bytes().all(allowed) {
        return Err(err(field, "has a character outside the store's alphabet"));
    }
    Ok(())
}

/// URL-safe base64 plus the dot: the characters of every opaque token and order id the stores
/// issue. None of them is URL syntax except the dot, whose dot-only values are refused below.
fn token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// `.` and `..` are path navigation, not names, whatever encoding they are sent in.
fn not_dots_only(field: &'static str, value: &str) -> Result<(), StoreIdError> {
    if value.bytes().all(|b| b == b'.') {
        return Err(err(field, "is not an identifier"));
    }
    Ok(())
}

/// A Google Play or Huawei purchase token: 1..=1024 of `[A-Za-z0-9._-]`, not dots only.
pub fn purchase_token(field: &'static str, value: &str) -> Result<(), StoreIdError> {
    check(field, value, MAX_TOKEN_LEN, token_char)?;
    not_dots_only(field, value)
}

/// A store order id (Google `GPA.1234-5678-9012-34567` with renewals `..N`, Huawei's order id)
/// or a Huawei subscription id: 1..=255 of `[A-Za-z0-9._-]`, not dots only.
pub fn order_id(field: &'static str, value: &str) -> Result<(), StoreIdError> {
    check(field, value, MAX_ORDER_ID_LEN, token_char)?;
    not_dots_only(field, value)
}

/// An App Store transaction id (`transactionId`, `originalTransactionId`): StoreKit's
/// `Transaction.id` is a `UInt64`, so decimal digits that fit 64 bits.
pub fn apple_transaction_id(field: &'static str, value: &str) -> Result<(), StoreIdError> {
    check(field, value, 20, |b| b.is_ascii_digit())?;
    value
        .parse::<u64>()
        .map(|_| ())
        .map_err(|_| err(field, "is not a 64-bit transaction number"))
}

/// A product id in the store's format: Apple `[A-Za-z0-9._-]{1,100}`; Google lower-case
/// `[a-z0-9._]`, starting with a letter or digit; Huawei `[A-Za-z0-9._-]`. Longest kept: 150.
pub fn product_id(
    platform: Platform,
    field: &'static str,
    value: &str,
) -> Result<(), StoreIdError> {
    match platform {
        Platform::Apple => check(field, value, 100, token_char),
        Platform::Google => {
            check(field, value, 150, |b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.')
            })?;
            if !value
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            {
                return Err(err(field, "must start with a lower-case letter or a digit"));
            }
            Ok(())
        }
        Platform::Huawei => {
            check(field, value, 150, token_char)?;
            not_dots_only(field, value)
        }
    }
}

/// An Android package name: two or more dot-separated segments of `[A-Za-z0-9_]`, each starting
/// with a letter.
pub fn package_name(field: &'static str, value: &str) -> Result<(), StoreIdError> {
    check(field, value, 255, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.')
    })?;
    let segments: Vec<&str> = value.split('.').collect();
    if segments.len() < 2
        || segments
            .iter()
            .any(|s| !s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic()))
    {
        return Err(err(
            field,
            "is not a package name (two or more segments, each starting with a letter)",
        ));
    }
    Ok(())
}

/// An Apple bundle id: `[A-Za-z0-9.-]`, reverse-DNS.
pub fn bundle_id(field: &'static str, value: &str) -> Result<(), StoreIdError> {
    check(field, value, 255, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.')
    })
}

/// A numeric app id (Huawei `applicationId`, Apple `appAppleId`).
pub fn numeric_app_id(field: &'static str, value: &str) -> Result<(), StoreIdError> {
    check(field, value, 20, |b| b.is_ascii_digit())
}

/// A signed payload or receipt a client relays (StoreKit JWS, legacy receipt, Google
/// `original_json` and signature, Huawei `InAppPurchaseData`): bounded, and free of control
/// characters other than the whitespace JSON allows. Its content is judged by its signature.
pub fn signed_blob(field: &'static str, value: &str) -> Result<(), StoreIdError> {
    if value.is_empty() {
        return Err(err(field, "is required"));
    }
    if value.len() > MAX_SIGNED_LEN {
        return Err(err(field, "is too long"));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(err(field, "has control characters"));
    }
    Ok(())
}

/// Checks every store identifier a proof of purchase carries, under the request's field names.
pub fn check_proof(proof: &PurchaseProof) -> Result<(), StoreIdError> {
    match proof {
        PurchaseProof::AppleSignedTransaction(jws) => {
            signed_blob("apple.signed_transaction", jws)?;
            // A compact JWS is three base64url parts joined by dots.
            check("apple.signed_transaction", jws, MAX_SIGNED_LEN, |b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'=')
            })
        }
        PurchaseProof::AppleReceipt {
            receipt_data,
            product_id: product,
            transaction_id,
        } => {
            signed_blob("apple.receipt_data", receipt_data)?;
            if let Some(product) = product {
                product_id(Platform::Apple, "apple.product_id", product.as_str())?;
            }
            if let Some(id) = transaction_id {
                apple_transaction_id("apple.receipt_transaction_id", id)?;
            }
            Ok(())
        }
        PurchaseProof::AppleTransactionId(id) => apple_transaction_id("apple.transaction_id", id),
        PurchaseProof::Google {
            purchase_token: token,
            product_id: product,
            signed_data,
        } => {
            purchase_token("google.purchase_token", token)?;
            product_id(Platform::Google, "google.product_id", product.as_str())?;
            if let Some(signed) = signed_data {
                signed_blob("google.original_json", &signed.data)?;
                signed_blob("google.signature", &signed.signature)?;
            }
            Ok(())
        }
        PurchaseProof::Huawei {
            purchase_token: token,
            product_id: product,
            signed_data,
            signature_algorithm: _,
        } => {
            purchase_token("huawei.purchase_token", token)?;
            product_id(Platform::Huawei, "huawei.product_id", product.as_str())?;
            signed_blob("huawei.in_app_purchase_data", &signed_data.data)?;
            signed_blob("huawei.signature", &signed_data.signature)
        }
    }
}

/// The store ids a purchase token or charge id field may hold on `platform`: Apple's are
/// transaction numbers, Google's and Huawei's tokens or order ids.
fn charge_id(platform: Platform, field: &'static str, value: &str) -> Result<(), StoreIdError> {
    match platform {
        Platform::Apple => apple_transaction_id(field, value),
        Platform::Google | Platform::Huawei => purchase_token(field, value),
    }
}

/// Checks every store identifier a decoded notification carries (the open notification port is
/// the internet's): the proof of a reported purchase, the charge a refund names, the
/// subscription a change names, and the inbox subject.
pub fn check_notification(decoded: &DecodedNotification) -> Result<(), StoreIdError> {
    let platform = decoded.inbound.platform;
    if let Some(subject) = &decoded.inbound.subject {
        charge_id(platform, "notification.subject", subject)?;
    }
    let subscription = |s: &SubscriptionRef| -> Result<(), StoreIdError> {
        match s.platform {
            Platform::Apple => apple_transaction_id("subscription.key", &s.key)?,
            Platform::Google => purchase_token("subscription.key", &s.key)?,
            Platform::Huawei => order_id("subscription.key", &s.key)?,
        }
        if let Some(token) = &s.purchase_token {
            purchase_token("subscription.purchase_token", token)?;
        }
        if let Some(product) = &s.product_id {
            product_id(s.platform, "subscription.product_id", product.as_str())?;
        }
        Ok(())
    };
    match &decoded.event {
        StoreEvent::Purchased { proof, .. } | StoreEvent::Recheck { proof, .. } => {
            check_proof(proof)
        }
        StoreEvent::Refunded {
            platform,
            store_transaction_id,
            subscription: sub,
            ..
        } => {
            charge_id(
                *platform,
                "refund.store_transaction_id",
                store_transaction_id,
            )?;
            sub.as_ref().map_or(Ok(()), subscription)
        }
        StoreEvent::SubscriptionChanged {
            subscription: sub,
            paid,
            ..
        } => {
            subscription(sub)?;
            paid.as_ref().map_or(Ok(()), check_proof)
        }
        StoreEvent::ConsumptionRequested {
            store_transaction_id,
            ..
        } => apple_transaction_id("consumption.transaction_id", store_transaction_id),
        StoreEvent::RefundReversed {
            platform,
            store_transaction_id,
        } => charge_id(
            *platform,
            "refund_reversed.store_transaction_id",
            store_transaction_id,
        ),
        StoreEvent::Ignored(_) => Ok(()),
    }
}

/// Everything but RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`) is encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `value` as exactly one URL path segment: every byte outside the unreserved set
/// percent-encoded, so `/`, `?`, `#`, `%`, whitespace and non-ASCII cannot change which resource
/// the URL names. `.` and `..` (and the empty string) cannot be one segment in any encoding (URL
/// parsers treat `%2E%2E` as `..`), so they are refused.
pub fn path_segment(field: &'static str, value: &str) -> Result<String, StoreIdError> {
    if value.is_empty() {
        return Err(err(field, "is required"));
    }
    if value == "." || value == ".." {
        return Err(err(field, "is not an identifier"));
    }
    Ok(utf8_percent_encode(value, SEGMENT).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TOKEN: &str = "kcbhpejnmoakpjklkdgjdjoi.AO-J1Ox2Iq_TlrY3n8yWm5qgQ";

    #[test]
    fn real_looking_identifiers_pass() {
        purchase_token("t", TOKEN).unwrap();
        purchase_token("t", "00000173741056a37eef310dff9c6a86fec57efa.1.102932647").unwrap();
        order_id("o", "GPA.3326-1192-0251-53155").unwrap();
        order_id("o", "GPA.3326-1192-0251-53155..3").unwrap();
        apple_transaction_id("a", "2000000712345678").unwrap();
        product_id(Platform::Google, "p", "gems_100").unwrap();
        product_id(Platform::Google, "p", "com.some.thing.inapp1").unwrap();
        product_id(Platform::Apple, "p", "com.example.Gems-100").unwrap();
        product_id(Platform::Huawei, "p", "gems_100").unwrap();
        package_name("n", "com.example.game").unwrap();
        bundle_id("b", "com.example.game-ios").unwrap();
    }

    #[test]
    fn url_syntax_whitespace_and_look_alikes_are_refused() {
        for bad in [
            "tok#x",
            "tok?x",
            "tok/../x",
            "tok%2Fx",
            " tok",
            "tok\t",
            "tok\n",
            "to\u{a0}k",
            "to\u{200b}k",
            "tоk", // Cyrillic о
            "..",
            ".",
            "",
        ] {
            assert!(purchase_token("t", bad).is_err(), "{bad:?}");
        }
        assert!(purchase_token("t", &"a".repeat(MAX_TOKEN_LEN + 1)).is_err());
        assert!(apple_transaction_id("a", "123abc").is_err());
        assert!(apple_transaction_id("a", "99999999999999999999").is_err());
        assert!(product_id(Platform::Google, "p", "Gems_100").is_err());
        assert!(product_id(Platform::Google, "p", "_gems").is_err());
        assert!(product_id(Platform::Apple, "p", &"a".repeat(101)).is_err());
        assert!(package_name("n", "game").is_err());
        assert!(package_name("n", "com.1game").is_err());
        assert!(bundle_id("b", "com.example/x").is_err());
    }

    #[test]
    fn a_path_segment_cannot_leave_its_segment() {
        assert_eq!(path_segment("t", TOKEN).unwrap(), TOKEN);
        assert_eq!(path_segment("t", "a/../b").unwrap(), "a%2F..%2Fb");
        assert_eq!(path_segment("t", "a#b?c d%").unwrap(), "a%23b%3Fc%20d%25");
        assert_eq!(path_segment("t", "é").unwrap(), "%C3%A9");
        assert!(path_segment("t", "..").is_err());
        assert!(path_segment("t", ".").is_err());
        assert!(path_segment("t", "").is_err());
    }

    proptest! {
        #[test]
        fn an_encoded_segment_holds_only_unreserved_characters_and_escapes(s in "\\PC{1,40}") {
            if let Ok(encoded) = path_segment("t", &s) {
                prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
                let decoded = percent_encoding::percent_decode_str(&encoded).decode_utf8().unwrap();
                prop_assert_eq!(decoded, s);
            }
        }

        #[test]
        fn checks_never_panic(s in ".*") {
            let _ = purchase_token("t", &s);
            let _ = order_id("o", &s);
            let _ = apple_transaction_id("a", &s);
            let _ = product_id(Platform::Google, "p", &s);
            let _ = package_name("n", &s);
            let _ = signed_blob("s", &s);
        }
    }
}
