//! Reading settings in layers: the defaults (a process's own, for iapd), then the TOML file,
//! then `IAP_*` environment variables, with figment; errors come out as one line naming the key.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};

use super::{ConfigError, Settings};

/// Top-level sections, for reading `IAP_<SECTION>_<KEY>` variables.
const SECTIONS: &[&str] = &[
    "database",
    "redis",
    "verifier",
    "delivery",
    "scheduler",
    "emulator",
    "telemetry",
    "auth",
    "apps",
    "jobs",
];

impl Settings {
    /// Reads defaults, then `file` (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, Env::prefixed("IAP_"))
    }

    /// Like [`Settings::load`], with `defaults` as the base layer (iapd's embedded defaults).
    pub fn load_with_defaults(
        defaults: &Settings,
        file: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let figment = Figment::from(Serialized::defaults(defaults));
        Self::extract(figment, file, Env::prefixed("IAP_"))
    }

    /// Settings from TOML text over the defaults, without the environment (tests, embedding).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let figment =
            Figment::from(Serialized::defaults(Settings::default())).merge(Toml::string(text));
        let settings: Settings = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(one_line(&e)))?;
        settings.validate()?;
        Ok(settings)
    }

    fn load_from(file: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        Self::extract(
            Figment::from(Serialized::defaults(Settings::default())),
            file,
            env,
        )
    }

    fn extract(mut figment: Figment, file: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Invalid(format!(
                    "configuration file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        let env = env.filter_map(|key| env_key_path(key.as_str()).map(Into::into));
        figment = figment.merge(env);
        let settings: Settings = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(one_line(&e)))?;
        settings.validate()?;
        Ok(settings)
    }
}

/// Maps an environment key (prefix removed, lowercased) to a dotted settings path:
/// `database_url` → `database.url`, `verifier__grpc_listen` → `verifier.grpc_listen`.
/// Variables that name no section (`IAP_CONFIG`, test harness variables) are not settings.
fn env_key_path(key: &str) -> Option<String> {
    let key = key.to_ascii_lowercase();
    if key.contains("__") {
        let path = key.replace("__", ".");
        let section = path.split('.').next()?;
        return SECTIONS.contains(&section).then_some(path);
    }
    SECTIONS.iter().find_map(|section| {
        key.strip_prefix(section)
            .and_then(|rest| rest.strip_prefix('_'))
            .filter(|rest| !rest.is_empty())
            .map(|rest| format!("{section}.{rest}"))
    })
}

fn one_line(err: &figment::Error) -> String {
    // figment's Display spans lines for nested errors and names the source; one line is what
    // an operator reads in a crash loop.
    err.clone()
        .into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!("{}: ", e.path.join("."))
            };
            let from = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            format!("{key}{}{from}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
// figment's Jail closures return figment::Error, which is large; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;
    use iap_domain::{AppId, ProductId, ProductKind};
    use std::time::Duration;

    #[test]
    fn env_keys_map_to_sections() {
        assert_eq!(
            env_key_path("database_url").as_deref(),
            Some("database.url")
        );
        assert_eq!(
            env_key_path("DATABASE_MAX_CONNECTIONS").as_deref(),
            Some("database.max_connections")
        );
        assert_eq!(
            env_key_path("verifier__grpc_listen").as_deref(),
            Some("verifier.grpc_listen")
        );
        assert_eq!(env_key_path("config"), None);
        assert_eq!(env_key_path("test_postgres_url"), None);
        assert_eq!(env_key_path("database"), None);
    }

    // figment's Jail serialises tests that touch the environment and restores it afterwards.
    #[test]
    fn file_then_environment_override() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "iap.toml",
                r#"
                [database]
                url = "postgres://file@127.0.0.1/iap"
                acquire_timeout = "2s"
                [apps."com.example.game".products.gems_100]
                kind = "consumable"
                max_quantity = 10
                "#,
            )?;
            jail.set_env("IAP_DATABASE_URL", "postgres://env@127.0.0.1/iap");
            jail.set_env("IAP_VERIFIER_GRPC_LISTEN", "127.0.0.1:6000");
            jail.set_env("IAP_CONFIG", "ignored.toml");
            let settings = Settings::load(Some(Path::new("iap.toml"))).expect("valid");
            assert_eq!(
                settings.database.url.as_deref(),
                Some("postgres://env@127.0.0.1/iap")
            );
            assert_eq!(settings.database.acquire_timeout, Duration::from_secs(2));
            assert_eq!(settings.verifier.grpc_listen.port(), 6000);
            let catalog = settings.catalog().expect("catalog");
            let app = catalog
                .app(&AppId::parse("com.example.game").unwrap())
                .expect("app");
            let gems = app
                .product(&ProductId::parse("gems_100").unwrap())
                .expect("product");
            assert_eq!(gems.kind, ProductKind::Consumable);
            assert_eq!(gems.max_quantity, 10);
            Ok(())
        });
    }

    #[test]
    fn mistakes_are_reported_by_key() {
        Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "[database]\nurll = \"postgres://x\"\n")?;
            let err = Settings::load(Some(Path::new("typo.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("urll"), "{err}");
            assert!(!err.contains('\n'), "one line: {err}");

            jail.create_file("kind.toml", "[apps.a.products.p]\nkind = \"gem\"\n")?;
            let err = Settings::load(Some(Path::new("kind.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("apps.a.products.p.kind"), "{err}");

            jail.set_env("IAP_DATABASE_MAX_CONNECTIONS", "many");
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("max_connections"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("IAP_DATABASE_URL", "mysql://x");
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.starts_with("database.url"), "{err}");
            let err = Settings::load(Some(Path::new("missing.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("does not exist"), "{err}");
            Ok(())
        });
    }
}
