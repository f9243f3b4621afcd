//! Property tests: the identifier parsers and stored-enum parsers take any text without
//! panicking, accept exactly what their rules allow, and round-trip what they accept.

use std::str::FromStr;

use proptest::prelude::*;

use iap_domain::{
    AppId, BindingReason, Environment, OrderId, OrderState, Platform, ProductId, ProductKind,
    RejectReason, UserId,
};

/// Mostly printable text with some whitespace and control characters mixed in.
fn id_like() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,200}",
        "[ \t\n\r\u{0}\u{7f}\u{85}a-z0-9._-]{0,20}",
        "[a-zA-Z0-9._-]{1,160}",
        any::<Vec<char>>().prop_map(|c| c.into_iter().collect()),
    ]
}

/// UUIDs spelled every way `OrderId::parse` accepts, plus near misses.
fn uuid_like() -> impl Strategy<Value = String> {
    let uuid = any::<u128>().prop_map(uuid::Uuid::from_u128);
    prop_oneof![
        uuid.clone().prop_map(|u| u.hyphenated().to_string()),
        uuid.clone()
            .prop_map(|u| u.hyphenated().to_string().to_uppercase()),
        uuid.clone().prop_map(|u| u.simple().to_string()),
        uuid.clone().prop_map(|u| u.braced().to_string()),
        uuid.prop_map(|u| u.urn().to_string()),
        "[0-9a-fA-F-]{30,40}",
        ".{0,40}",
    ]
}

macro_rules! text_id_properties {
    ($name:ident, $test:ident) => {
        proptest! {
            #[test]
            fn $test(s in id_like()) {
                let rule_allows = !s.is_empty()
                    && s.len() <= $name::MAX_LEN
                    && s.trim() == s
                    && !s.chars().any(char::is_control);
                match $name::parse(s.clone()) {
                    Ok(id) => {
                        prop_assert!(rule_allows);
                        prop_assert_eq!(id.as_str(), s.as_str());
                        prop_assert_eq!(id.to_string(), s.clone());
                        // Deserializing applies the same rules.
                        let json = serde_json::to_string(&s).unwrap();
                        prop_assert_eq!(serde_json::from_str::<$name>(&json).unwrap(), id);
                    }
                    Err(_) => {
                        prop_assert!(!rule_allows);
                        let json = serde_json::to_string(&s).unwrap();
                        prop_assert!(serde_json::from_str::<$name>(&json).is_err());
                    }
                }
            }
        }
    };
}

text_id_properties!(AppId, app_ids_accept_exactly_what_the_rules_allow);
text_id_properties!(UserId, user_ids_accept_exactly_what_the_rules_allow);
text_id_properties!(ProductId, product_ids_accept_exactly_what_the_rules_allow);

proptest! {
    #[test]
    fn order_ids_parse_any_uuid_spelling_and_refuse_the_rest(s in uuid_like()) {
        match OrderId::parse(&s) {
            Ok(id) => {
                let expected = uuid::Uuid::parse_str(s.trim()).unwrap();
                prop_assert_eq!(id.as_uuid(), expected);
                // Stored lower-case hyphenated, and that form parses back to the same id.
                let text = id.to_string();
                prop_assert_eq!(&text, &expected.hyphenated().to_string());
                prop_assert_eq!(OrderId::parse(&text).unwrap(), id);
            }
            Err(e) => {
                prop_assert!(uuid::Uuid::parse_str(s.trim()).is_err());
                prop_assert_eq!(e.field, "order_id");
            }
        }
    }

    #[test]
    fn stored_enum_values_parse_only_their_own_text(s in ".{0,40}") {
        fn check<T>(s: &str, all: &[T]) -> Result<(), TestCaseError>
        where
            T: FromStr + Copy + PartialEq + std::fmt::Debug + std::fmt::Display,
        {
            match T::from_str(s) {
                Ok(v) => prop_assert_eq!(v.to_string(), s),
                Err(_) => prop_assert!(all.iter().all(|v| v.to_string() != s)),
            }
            for v in all {
                prop_assert_eq!(T::from_str(&v.to_string()).ok(), Some(*v));
            }
            Ok(())
        }
        check(&s, Platform::ALL)?;
        check(&s, OrderState::ALL)?;
        check(&s, ProductKind::ALL)?;
        check(&s, Environment::ALL)?;
        check(&s, BindingReason::ALL)?;
        check(&s, RejectReason::ALL)?;
    }
}
