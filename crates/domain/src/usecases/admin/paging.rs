//! How listings are paged: the page size, the segments orders are listed in, and the opaque
//! keyset token that carries a listing position from one page to the next.

use chrono::DateTime;

use super::{AdminError, invalid};
use crate::admin::{KeysetPosition, SortDirection};
use crate::order::OrderState;

/// Largest page of a listing.
pub const MAX_PAGE_SIZE: u32 = 500;
/// Page size when the caller gives none.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// Page size from the wire: 0 is the default, otherwise 1..=MAX_PAGE_SIZE.
pub fn page_size(raw: i32) -> Result<u32, AdminError> {
    match raw {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => Err(invalid("page_size", "must not be negative")),
        n => {
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            if n > MAX_PAGE_SIZE {
                Err(invalid(
                    "page_size",
                    format!("must be at most {MAX_PAGE_SIZE}"),
                ))
            } else {
                Ok(n)
            }
        }
    }
}

/// A page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// Rows.
    pub items: Vec<T>,
    /// Token of the next page; empty when there is none.
    pub next_page_token: String,
}

/// The listing segments, in order: stuck orders first. Lost orders are what operators look for,
/// so the longest-waiting paid-but-undelivered ones lead, then the DEAD ones (oldest first), then
/// everything else, newest first.
pub(super) const SEGMENTS: [(&[OrderState], SortDirection); 3] = [
    (
        &[OrderState::Paid, OrderState::Delivering],
        SortDirection::OldestFirst,
    ),
    (&[OrderState::Dead], SortDirection::OldestFirst),
    (
        &[
            OrderState::Created,
            OrderState::Delivered,
            OrderState::Confirmed,
            OrderState::Rejected,
            OrderState::Refunded,
            OrderState::Revoked,
        ],
        SortDirection::NewestFirst,
    ),
];

pub(super) fn segment_of(state: OrderState) -> usize {
    SEGMENTS
        .iter()
        .position(|(states, _)| states.contains(&state))
        .unwrap_or(SEGMENTS.len() - 1)
}

/// A listing position, written as an opaque token: `<kind>:<segment>:<micros>:<uuid>` in hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PageToken {
    pub(super) segment: usize,
    pub(super) position: KeysetPosition,
}

impl PageToken {
    pub(super) fn encode(self, kind: &str) -> String {
        hex::encode(format!(
            "{kind}:{}:{}:{}",
            self.segment,
            self.position.at.timestamp_micros(),
            self.position.id
        ))
    }

    pub(super) fn decode(kind: &str, token: &str) -> Result<Option<Self>, AdminError> {
        if token.is_empty() {
            return Ok(None);
        }
        let bad = || invalid("page_token", "is not a token from a previous page");
        let text = hex::decode(token).map_err(|_| bad())?;
        let text = String::from_utf8(text).map_err(|_| bad())?;
        let mut parts = text.split(':');
        if parts.next() != Some(kind) {
            return Err(bad());
        }
        let segment: usize = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let micros: i64 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let id = parts
            .next()
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .ok_or_else(bad)?;
        let at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
        if segment >= SEGMENTS.len() || parts.next().is_some() {
            return Err(bad());
        }
        Ok(Some(Self {
            segment,
            position: KeysetPosition { at, id },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_foreign_text() {
        let token = PageToken {
            segment: 1,
            position: KeysetPosition {
                at: DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap(),
                id: uuid::Uuid::now_v7(),
            },
        };
        let text = token.encode("orders");
        assert_eq!(PageToken::decode("orders", &text).unwrap(), Some(token));
        assert!(PageToken::decode("notifications", &text).is_err());
        assert!(PageToken::decode("orders", "zz").is_err());
        assert!(PageToken::decode("orders", &hex::encode("orders:9:1:x")).is_err());
        assert_eq!(PageToken::decode("orders", "").unwrap(), None);
    }

    #[test]
    fn every_state_has_exactly_one_segment() {
        for state in OrderState::ALL {
            let holding = SEGMENTS
                .iter()
                .filter(|(states, _)| states.contains(state))
                .count();
            assert_eq!(holding, 1, "{state}");
        }
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(7).unwrap(), 7);
        assert!(page_size(-1).is_err());
        assert!(page_size(501).is_err());
    }
}
