//! Every store adapter is put together the same way: one HTTP client for all of its apps
//! (rustls with ring's provider, a bounded connect time), then each app's
//! `[apps.<id>.<store>]` settings turned into the clients and keys that app needs. The first
//! value that cannot be used stops the process from starting, naming the setting. Once built,
//! a request for an app without settings for the store is a misconfiguration, worded the same
//! way by every adapter.

use std::collections::HashMap;
use std::time::Duration;

use iap_domain::AppId;
use iap_domain::ports::StoreError;

/// How long a store adapter waits for a connection to the store.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A store as its settings and messages name it.
#[derive(Debug, Clone, Copy)]
pub struct Store {
    /// The settings table under `[apps.<id>]`: `apple`, `google` or `huawei`.
    pub settings_key: &'static str,
    /// The store's name in messages: `App Store`, `Google Play`, `Huawei`.
    pub name: &'static str,
}

impl Store {
    /// The error for a request about an app that has no settings for this store.
    pub fn not_configured(&self, app: &AppId) -> StoreError {
        StoreError::Misconfigured(format!("no {} settings for app {app}", self.name))
    }

    /// `app`'s part of `apps`, or the error for an app without settings for this store.
    pub fn app<'a, A>(
        &self,
        apps: &'a HashMap<AppId, A>,
        app: &AppId,
    ) -> Result<&'a A, StoreError> {
        apps.get(app).ok_or_else(|| self.not_configured(app))
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("apps.{app}.{store}: {problem}")]
pub struct ConfigError {
    store: &'static str,
    app: String,
    problem: String,
}

/// Builds each app's part of a store adapter from its settings with `build`, which is given
/// the settings and the HTTP client every app of the adapter shares, and answers what cannot
/// be used. The client is built first (`*` names it in the error when it cannot be).
pub fn build_apps<'a, C: 'a, A>(
    store: Store,
    configs: impl IntoIterator<Item = (&'a AppId, &'a C)>,
    mut build: impl FnMut(&C, &reqwest::Client) -> Result<A, String>,
) -> Result<HashMap<AppId, A>, ConfigError> {
    let error = |app: String, problem: String| ConfigError {
        store: store.settings_key,
        app,
        problem,
    };
    let http = http_client().map_err(|e| error("*".into(), format!("HTTP client: {e}")))?;
    let mut built = HashMap::new();
    for (app_id, config) in configs {
        let app = build(config, &http).map_err(|problem| error(app_id.to_string(), problem))?;
        built.insert(app_id.clone(), app);
    }
    Ok(built)
}

/// The client a store adapter talks to its store with.
fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    // reqwest is built without a bundled TLS provider; the process uses ring's (a no-op if one
    // is installed already).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORE: Store = Store {
        settings_key: "example",
        name: "Example Store",
    };

    #[test]
    fn each_app_is_built_and_the_first_unusable_one_is_named() {
        let (good, bad) = (AppId::parse("good").unwrap(), AppId::parse("bad").unwrap());
        let built = build_apps(STORE, [(&good, &1)], |n: &i32, _| Ok(n * 2)).unwrap();
        assert_eq!(STORE.app(&built, &good).unwrap(), &2);

        let refused = build_apps(STORE, [(&good, &1), (&bad, &-1)], |n: &i32, _| {
            if *n < 0 {
                Err("key: negative".to_owned())
            } else {
                Ok(*n)
            }
        })
        .unwrap_err();
        assert_eq!(refused.to_string(), "apps.bad.example: key: negative");
    }

    #[test]
    fn an_app_without_settings_is_a_misconfiguration() {
        let apps: HashMap<AppId, ()> = HashMap::new();
        let game = AppId::parse("game").unwrap();
        match STORE.app(&apps, &game) {
            Err(StoreError::Misconfigured(message)) => {
                assert_eq!(message, "no Example Store settings for app game");
            }
            other => panic!("expected a misconfiguration, got {other:?}"),
        }
    }
}
