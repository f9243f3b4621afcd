//! The Redis lock: `SET key token NX PX ttl` to acquire; renew and release are Lua scripts that
//! act only if the key still holds our token, so a worker whose lease expired can never extend
//! or delete someone else's.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};
use tokio::sync::Mutex;

use iap_domain::ports::{Lease, LockError, WorkLock};

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// A lock on a Redis server (or a Redis Cluster node; keys are single-slot).
pub struct RedisLock {
    client: Client,
    prefix: String,
    timeout: Duration,
    // Connected lazily and reconnected by the manager, so a Redis that is down at startup or
    // restarts later never stops the process; calls fail fast with `Unavailable` meanwhile.
    connection: Mutex<Slot>,
    renew: Script,
    release: Script,
}

/// The shared connection, or when the last attempt to make one failed: while Redis is down,
/// callers fail fast for a short while instead of queueing behind one connect attempt each.
#[derive(Default)]
struct Slot {
    manager: Option<ConnectionManager>,
    failed_at: Option<std::time::Instant>,
}

/// How long a failed connect is remembered before the next caller tries again.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

impl std::fmt::Debug for RedisLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLock")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisLock {
    /// A lock on `url` whose keys all start with `prefix`. Does not connect yet.
    pub fn new(url: &str, prefix: &str) -> Result<Self, LockError> {
        let client =
            Client::open(url).map_err(|e| LockError::Unavailable(format!("bad Redis URL: {e}")))?;
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            timeout: Duration::from_millis(500),
            connection: Mutex::new(Slot::default()),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
        })
    }

    /// Checks the server answers (readiness).
    pub async fn ping(&self) -> Result<(), LockError> {
        let mut connection = self.connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    fn key(&self, key: &str) -> String {
        format!("{}lock:{key}", self.prefix)
    }

    async fn connection(&self) -> Result<ConnectionManager, LockError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.manager.as_ref() {
            return Ok(connection.clone());
        }
        if slot
            .failed_at
            .is_some_and(|at| at.elapsed() < RECONNECT_PAUSE)
        {
            return Err(LockError::Unavailable(
                "Redis unreachable (retrying shortly)".into(),
            ));
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let connected = tokio::time::timeout(
            self.timeout * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| LockError::Unavailable("Redis connect timed out".into()))
        .and_then(|r| r.map_err(unavailable));
        match connected {
            Ok(connection) => {
                *slot = Slot {
                    manager: Some(connection.clone()),
                    failed_at: None,
                };
                Ok(connection)
            }
            Err(e) => {
                slot.failed_at = Some(std::time::Instant::now());
                Err(e)
            }
        }
    }
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "shaped for `.map_err(unavailable)`"
)]
fn unavailable(err: redis::RedisError) -> LockError {
    LockError::Unavailable(err.to_string())
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl WorkLock for RedisLock {
    async fn acquire(&self, key: &str, ttl: Duration) -> Result<Option<Lease>, LockError> {
        let mut connection = self.connection().await?;
        let token = crate::new_token();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(set.map(|_| Lease {
            key: key.to_owned(),
            token,
        }))
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, LockError> {
        let mut connection = self.connection().await?;
        let renewed: i64 = self
            .renew
            .key(self.key(&lease.key))
            .arg(&lease.token)
            .arg(millis(ttl))
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(renewed == 1)
    }

    async fn release(&self, lease: &Lease) -> Result<bool, LockError> {
        let mut connection = self.connection().await?;
        let released: i64 = self
            .release
            .key(self.key(&lease.key))
            .arg(&lease.token)
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(released == 1)
    }
}
