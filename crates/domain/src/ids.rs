//! Identifiers parsed once at the edge, so the rest of the code never re-checks them.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A malformed identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct IdError {
    /// Which field was wrong.
    pub field: &'static str,
    /// What was wrong with it.
    pub problem: &'static str,
}

/// Our order id: a UUIDv7, so ids sort by creation time and can be used as Apple's
/// `appAccountToken` (which must be a UUID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OrderId(Uuid);

impl OrderId {
    /// A new, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Parses the textual form (any UUID spelling; stored lower-case hyphenated).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        Uuid::parse_str(s.trim()).map(Self).map_err(|_| IdError {
            field: "order_id",
            problem: "is not a UUID",
        })
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for OrderId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Longest accepted value, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Accepts 1..=MAX_LEN printable characters without surrounding whitespace.
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                if s.is_empty() {
                    return Err(IdError { field: $field, problem: "is required" });
                }
                if s.len() > Self::MAX_LEN {
                    return Err(IdError { field: $field, problem: "is too long" });
                }
                if s.trim() != s || s.chars().any(char::is_control) {
                    return Err(IdError {
                        field: $field,
                        problem: "has control characters or surrounding whitespace",
                    });
                }
                Ok(Self(s))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

text_id!(
    /// The studio's application id, the key of `apps.<id>` in the configuration.
    AppId,
    "app_id",
    64
);
text_id!(
    /// The game's user id.
    UserId,
    "user_id",
    128
);
text_id!(
    /// A store product id (SKU). Apple allows up to 100 bytes, Google 139 (package-qualified).
    ProductId,
    "product_id",
    150
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn order_ids_sort_by_creation() {
        let a = OrderId::new();
        let b = OrderId::new();
        assert!(a < b);
        assert_eq!(OrderId::parse(&a.to_string()).unwrap(), a);
    }

    #[test]
    fn text_ids_reject_empty_padded_and_long_values() {
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse(" u1").is_err());
        assert!(UserId::parse("u\n1").is_err());
        assert!(UserId::parse("x".repeat(129)).is_err());
        assert_eq!(UserId::parse("player-1").unwrap().as_str(), "player-1");
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in ".*") {
            let _ = UserId::parse(s.clone());
            let _ = OrderId::parse(&s);
        }
    }
}
