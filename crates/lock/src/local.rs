//! An in-process lock with the same semantics as the Redis one (expiring, token-checked).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use iap_domain::ports::{Lease, LockError, WorkLock};

/// Locks that live in this process only: enough when one process delivers (iapd).
#[derive(Debug, Default)]
pub struct LocalLock {
    held: Mutex<HashMap<String, (String, Instant)>>,
}

impl LocalLock {
    /// An empty lock table.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_table<T>(&self, f: impl FnOnce(&mut HashMap<String, (String, Instant)>) -> T) -> T {
        // A panic while holding the mutex cannot leave the table half-updated (each operation is
        // one insert or remove), so a poisoned lock is still safe to use.
        let mut table = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        table.retain(|_, (_, until)| *until > now);
        f(&mut table)
    }
}

#[async_trait]
impl WorkLock for LocalLock {
    async fn acquire(&self, key: &str, ttl: Duration) -> Result<Option<Lease>, LockError> {
        Ok(self.with_table(|table| {
            if table.contains_key(key) {
                return None;
            }
            let token = crate::new_token();
            table.insert(key.to_owned(), (token.clone(), Instant::now() + ttl));
            Some(Lease {
                key: key.to_owned(),
                token,
            })
        }))
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, LockError> {
        Ok(self.with_table(|table| match table.get_mut(&lease.key) {
            Some((token, until)) if *token == lease.token => {
                *until = Instant::now() + ttl;
                true
            }
            _ => false,
        }))
    }

    async fn release(&self, lease: &Lease) -> Result<bool, LockError> {
        Ok(self.with_table(|table| match table.get(&lease.key) {
            Some((token, _)) if *token == lease.token => table.remove(&lease.key).is_some(),
            _ => false,
        }))
    }
}
