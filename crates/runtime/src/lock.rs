//! Choosing the delivery lock from settings: Redis when `redis.url` is set, otherwise an
//! in-process lock (correct for one delivering process, as in the embedded default).

use std::sync::Arc;

use iap_lock::{LocalLock, RedisLock, WorkLock};

use crate::settings::Settings;
use crate::startup::StartupError;

/// The lock and, for Redis, a handle to probe it.
#[derive(Clone)]
pub struct LockBackend {
    /// The lock the delivery use case takes.
    pub lock: Arc<dyn WorkLock>,
    /// Set when the lock is on Redis.
    pub redis: Option<Arc<RedisLock>>,
}

impl std::fmt::Debug for LockBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.redis.is_some() {
            "LockBackend::Redis"
        } else {
            "LockBackend::InProcess"
        })
    }
}

impl LockBackend {
    /// Builds the lock the settings ask for. Redis is not contacted yet: a Redis that is down
    /// at startup must not stop delivery, which stays correct on the database fence alone.
    pub fn from_settings(settings: &Settings) -> Result<Self, StartupError> {
        match &settings.redis.url {
            Some(url) => {
                let redis = Arc::new(RedisLock::new(url, &settings.redis.key_prefix).map_err(
                    |e| {
                        StartupError::Config(crate::ConfigError::Invalid(format!("redis.url: {e}")))
                    },
                )?);
                tracing::info!(redis = %crate::database::redact(url), "delivery lock: Redis");
                Ok(Self {
                    lock: redis.clone(),
                    redis: Some(redis),
                })
            }
            None => {
                tracing::info!("delivery lock: in-process (redis.url not set)");
                Ok(Self {
                    lock: Arc::new(LocalLock::new()),
                    redis: None,
                })
            }
        }
    }

    /// A one-word state for readiness pages: `in-process`, `redis ok` or `redis down: …`.
    pub async fn describe(&self) -> String {
        match &self.redis {
            None => "in-process".to_owned(),
            Some(redis) => match redis.ping().await {
                Ok(()) => "redis ok".to_owned(),
                Err(e) => format!("redis down ({e}); delivering on the database fence alone"),
            },
        }
    }
}
