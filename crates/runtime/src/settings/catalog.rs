//! The catalog the domain checks orders against, built from `[apps.<app_id>]`: ids parsed,
//! product kinds and quantities checked, sandbox users listed.

use std::collections::{HashMap, HashSet};

use iap_domain::{
    AppId, AppPolicy, Catalog, ProductId, ProductKind, ProductPolicy, SandboxPolicy, UserId,
};

use super::{ConfigError, Settings};

impl Settings {
    /// The apps' policies, validated.
    pub fn catalog(&self) -> Result<Catalog, ConfigError> {
        let mut apps = Vec::with_capacity(self.apps.len());
        for (app_key, app) in &self.apps {
            let at = |rest: &str| format!("apps.{app_key}.{rest}");
            let app_id = app_id(app_key)?;
            let mut products = HashMap::with_capacity(app.products.len());
            for (product_key, product) in &app.products {
                let key = at(&format!("products.{product_key}"));
                let id = ProductId::parse(product_key.as_str())
                    .map_err(|e| ConfigError::value(&key, e.to_string()))?;
                let kind: ProductKind = product.kind.parse().map_err(|_| {
                    ConfigError::value(
                        format!("{key}.kind"),
                        "must be consumable, non_consumable, auto_renewable or non_renewing",
                    )
                })?;
                if product.max_quantity == 0 {
                    return Err(ConfigError::value(
                        format!("{key}.max_quantity"),
                        "must be at least 1",
                    ));
                }
                let policy = ProductPolicy {
                    kind,
                    max_quantity: product.max_quantity,
                    subscription_group: product.subscription_group.clone(),
                };
                products.insert(id, policy);
            }
            let allowed_users = app
                .sandbox
                .users
                .iter()
                .map(|u| UserId::parse(u.as_str()))
                .collect::<Result<HashSet<_>, _>>()
                .map_err(|e| ConfigError::value(at("sandbox.users"), e.to_string()))?;
            apps.push(AppPolicy {
                app_id,
                products,
                sandbox: SandboxPolicy {
                    allow_all: app.sandbox.allow_all,
                    allowed_users,
                },
                flag_repeat_trials: app.flag_repeat_trials,
                max_open_orders_per_user: app.max_open_orders_per_user,
                compensation_match_window: std::time::Duration::from_secs(
                    app.compensation_match_window_secs,
                ),
            });
        }
        Ok(Catalog::new(apps))
    }
}

/// The app id `[apps.<key>]` names, or the error naming that section.
pub(super) fn app_id(key: &str) -> Result<AppId, ConfigError> {
    AppId::parse(key).map_err(|e| ConfigError::value(format!("apps.{key}"), e.to_string()))
}
