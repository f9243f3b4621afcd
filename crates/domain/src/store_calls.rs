//! Metrics of calls to the stores' server APIs, in one shape for the three store clients:
//! latency, outcome and rate limiting per store and endpoint. Endpoints are a fixed set of names
//! the clients choose (`products.get`, `orders.verify`, …), so label cardinality stays bounded.

use std::time::Instant;

use crate::order::Platform;
use crate::ports::StoreError;

/// One call to a store's server API, from its first request to its final answer (token
/// refreshes and retries included, as the caller waits for all of them).
#[derive(Debug)]
pub struct StoreCall {
    store: Platform,
    endpoint: &'static str,
    started: Instant,
    rate_limited: bool,
}

impl StoreCall {
    /// Starts timing a call to `endpoint` of `store`.
    pub fn start(store: Platform, endpoint: &'static str) -> Self {
        Self {
            store,
            endpoint,
            started: Instant::now(),
            rate_limited: false,
        }
    }

    /// Notes an HTTP status the store answered; call it for every response, retries included,
    /// so a 429 is counted even when a later retry succeeds.
    pub fn saw_status(&mut self, status: u16) {
        if status == 429 {
            self.rate_limited = true;
        }
    }

    /// Records the call's latency and outcome: `ok`, `rejected` (the store answered that the
    /// purchase is not acceptable, which is not an API failure), `rate_limited`, `unavailable`
    /// or `misconfigured` (our credentials or settings).
    pub fn finish<T>(self, result: &Result<T, StoreError>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(StoreError::Rejected { .. }) => "rejected",
            Err(StoreError::Unavailable { .. }) if self.rate_limited => "rate_limited",
            Err(StoreError::Unavailable { .. }) => "unavailable",
            Err(StoreError::Misconfigured(_)) => "misconfigured",
        };
        let store = self.store.as_str();
        metrics::counter!("iap_store_requests_total", "store" => store, "endpoint" => self.endpoint, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("iap_store_request_seconds", "store" => store, "endpoint" => self.endpoint)
            .record(self.started.elapsed().as_secs_f64());
        if self.rate_limited {
            metrics::counter!("iap_store_rate_limited_total", "store" => store, "endpoint" => self.endpoint)
                .increment(1);
        }
    }
}
