//! The advisory lock that keeps two workers from calling the game for one order at once.
//! Correctness never rests on it (the database fence does); adapter: `iap-lock`.

use std::time::Duration;

use async_trait::async_trait;

/// A held lock: the key and the random token that proves ownership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Key locked (without any deployment prefix).
    pub key: String,
    /// Random token; only its holder can renew or release.
    pub token: String,
}

/// Why a lock operation could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock server cannot be reached. Callers go on without the lock: correctness rests on
    /// the database fence, the lock only keeps two workers from calling the game at once.
    #[error("lock unavailable: {0}")]
    Unavailable(String),
}

/// An advisory, expiring lock (Redis `SET NX PX` with a token, or in-process).
#[async_trait]
pub trait WorkLock: Send + Sync {
    /// Takes `key` for `ttl` if nobody holds it; `None` when it is held.
    async fn acquire(&self, key: &str, ttl: Duration) -> Result<Option<Lease>, LockError>;

    /// Extends a lease still held by its token; `false` when it was lost (expired or taken).
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, LockError>;

    /// Releases a lease still held by its token; `false` when it had already been lost.
    async fn release(&self, lease: &Lease) -> Result<bool, LockError>;
}
