//! The emulator's in-memory world: keys, purchases per store, faults, request counts.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use crate::apple::AppleStore;
use crate::faults::Fault;
use crate::google::GoogleStore;
use crate::huawei::HuaweiStore;

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) base_url: String,
    pub(crate) apple: Mutex<AppleStore>,
    pub(crate) google: Mutex<GoogleStore>,
    pub(crate) huawei: Mutex<HuaweiStore>,
    pub(crate) faults: Mutex<Vec<Fault>>,
    pub(crate) stats: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    pub(crate) fn new(base_url: String) -> Self {
        Self {
            apple: Mutex::new(AppleStore::new()),
            google: Mutex::new(GoogleStore::new(&base_url)),
            huawei: Mutex::new(HuaweiStore::default()),
            base_url,
            faults: Mutex::new(Vec::new()),
            stats: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts one call of `what` (e.g. `google.products.consume`), for tests to assert on.
    pub(crate) fn count(&self, what: &str) {
        *lock(&self.stats).entry(what.to_owned()).or_default() += 1;
        metrics::counter!("iap_emulator_requests_total", "route" => what.to_owned()).increment(1);
    }
}

/// Locks a mutex, recovering from poisoning: every critical section leaves the maps
/// consistent, so a handler that panicked cannot have left half an update behind.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Keys generated lazily per app (RSA generation is slow, and most tests use one app).
#[derive(Debug)]
pub(crate) struct KeyCache<K> {
    keys: HashMap<String, K>,
}

impl<K> Default for KeyCache<K> {
    fn default() -> Self {
        Self {
            keys: HashMap::new(),
        }
    }
}

impl<K: Clone> KeyCache<K> {
    pub(crate) fn get_or_make(&mut self, app: &str, make: impl FnOnce() -> K) -> K {
        self.keys.entry(app.to_owned()).or_insert_with(make).clone()
    }
}
