//! Opening the database from settings, with startup errors an operator can act on.

use iap_storage::{PoolOptions, Storage};

use crate::settings::Settings;
use crate::startup::StartupError;

/// Connects to `url` with the pool settings, and migrates when configured to.
pub async fn open(settings: &Settings, url: &str) -> Result<Storage, StartupError> {
    let pool = PoolOptions {
        max_connections: settings.database.max_connections,
        acquire_timeout: settings.database.acquire_timeout,
        connect_timeout: settings.database.connect_timeout,
    };
    let storage = Storage::connect(url, &pool)
        .await
        .map_err(|e| StartupError::Database(format!("{e} (database.url = {})", redact(url))))?;
    if settings.database.migrate_on_start {
        storage
            .migrate()
            .await
            .map_err(|e| StartupError::Database(format!("migrations failed: {e}")))?;
    }
    tracing::info!(database = %redact(url), backend = ?storage.backend(), "database ready");
    Ok(storage)
}

/// The URL with any password replaced, for logs and errors.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            super::redact("postgres://iap:s3cret@db:5432/iap"),
            "postgres://iap:***@db:5432/iap"
        );
        assert_eq!(
            super::redact("postgres://iap@db/iap"),
            "postgres://iap@db/iap"
        );
        assert_eq!(
            super::redact("sqlite://iapd.db?mode=rwc"),
            "sqlite://iapd.db?mode=rwc"
        );
    }
}
