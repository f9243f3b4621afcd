//! Checks that go beyond the types: URL schemes, token strength, TLS files that go together,
//! jobs, and everything the catalog and the store clients refuse. A process with settings that
//! fail here does not start (exit 78), so a mistake shows at deploy time, not at the first
//! purchase.

use super::{AuthSettings, ConfigError, Settings};

/// Shortest token accepted: long enough that guessing is hopeless.
const MIN_TOKEN_LEN: usize = 16;

impl AuthSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        for (key, token) in [
            ("auth.admin_token", &self.admin_token),
            ("auth.service_token", &self.service_token),
            ("auth.game_server_token", &self.game_server_token),
        ] {
            if let Some(token) = token {
                let t = token.expose();
                if t.len() < MIN_TOKEN_LEN {
                    return Err(ConfigError::value(
                        key,
                        format!(
                            "must be at least {MIN_TOKEN_LEN} characters (unset it to run open)"
                        ),
                    ));
                }
                if t.trim() != t || !t.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
                    return Err(ConfigError::value(
                        key,
                        "must be printable ASCII without surrounding spaces",
                    ));
                }
            }
        }
        if self.admin_token.is_some() && self.admin_token == self.service_token {
            return Err(ConfigError::value(
                "auth.admin_token",
                "must differ from auth.service_token",
            ));
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err(ConfigError::value(
                "auth.tls_key_file",
                "auth.tls_cert_file and auth.tls_key_file go together",
            ));
        }
        if self.tls_client_ca_file.is_some() && self.tls_cert_file.is_none() {
            return Err(ConfigError::value(
                "auth.tls_client_ca_file",
                "needs auth.tls_cert_file and auth.tls_key_file (mutual TLS is TLS first)",
            ));
        }
        Ok(())
    }
}

impl Settings {
    /// Every check; the first problem found is the error.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let known_scheme = |url: &str| {
            ["postgres://", "postgresql://", "sqlite:"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
        };
        if self
            .database
            .url
            .as_deref()
            .is_some_and(|url| !known_scheme(url))
        {
            return Err(ConfigError::value(
                "database.url",
                "must start with postgres://, postgresql:// or sqlite:",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::value(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        if let Some(url) = &self.redis.url {
            let parsed = url::Url::parse(url)
                .map_err(|e| ConfigError::value("redis.url", format!("not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "redis" | "rediss") {
                return Err(ConfigError::value(
                    "redis.url",
                    "must start with redis:// or rediss://",
                ));
            }
        }
        self.auth.validate()?;
        self.validate_jobs()?;
        self.catalog()?;
        self.store_clients().map(|_| ())
    }

    /// The database URL, or the error a standalone service reports when it is missing.
    pub fn database_url(&self) -> Result<&str, ConfigError> {
        self.database.url.as_deref().ok_or_else(|| {
            ConfigError::value(
                "database.url",
                "is not set (set IAP_DATABASE_URL or [database] url)",
            )
        })
    }
}
