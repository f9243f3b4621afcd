//! Implementations of the domain's [`WorkLock`]: [`RedisLock`] for fleets and [`LocalLock`] for a
//! single process (the embedded default). Both are advisory: the database fence decides, the
//! lock only keeps two workers from calling the game server for one order at the same moment.

mod local;
mod redis_lock;

pub use iap_domain::ports::{Lease, LockError, WorkLock};
pub use local::LocalLock;
pub use redis_lock::RedisLock;

/// A fresh random token (128 bits, hex): unguessable, so no other worker can release our lease.
pub(crate) fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
