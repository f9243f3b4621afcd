//! `docs/configuration.md` lists every settings key with its real default, and nothing else:
//! the keys come from serialising `Settings` (the defaults, plus one app with every optional
//! section present and one job section so their nested keys show), the documented keys from the
//! doc's tables. The table of jobs gives each job's defaults, checked against the resolver.

use std::collections::BTreeMap;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde_json::Value;

use iap_runtime::Settings;
use iap_runtime::settings::JOB_NAMES;

const DOC: &str = include_str!("../../../docs/configuration.md");

/// One app with each optional section given, and only the values that have no default.
const FULL_APP: &str = r#"
[apps.sample.products.sku]
kind = "consumable"

[apps.sample.apple]
bundle_id = "required"
app_apple_id = 1

[apps.sample.apple.api]
issuer_id = "required"
key_id = "required"
private_key_pem = "required"

[apps.sample.apple.consumption]
customer_consented = true

[apps.sample.google]
package_name = "required"
service_account_json = "required"

[apps.sample.huawei]
app_id = "required"
client_secret = "required"
public_key_base64 = "required"
"#;

/// One job section, with no key set: every key of `[jobs.<name>]` is optional.
const ONE_JOB: &str = "[jobs.order_sweep]\n";

/// Every settings value, by dotted key, with its default; the map keys of apps and products
/// written as the doc writes them (`<app_id>`, `<sku>`).
fn settings_keys() -> BTreeMap<String, Value> {
    let settings: Settings = Figment::from(Serialized::defaults(Settings::default()))
        .merge(Toml::string(FULL_APP))
        .merge(Toml::string(ONE_JOB))
        .extract()
        .expect("the sample app deserialises");
    let value = serde_json::to_value(&settings).expect("settings serialise");
    let mut keys = BTreeMap::new();
    walk(&value, "", &mut keys);
    keys
}

fn walk(value: &Value, path: &str, keys: &mut BTreeMap<String, Value>) {
    let Value::Object(fields) = value else {
        keys.insert(path.to_owned(), value.clone());
        return;
    };
    for (name, child) in fields {
        let name = match path {
            "apps" => "<app_id>",
            "apps.<app_id>.products" => "<sku>",
            "jobs" => "<name>",
            _ => name.as_str(),
        };
        let child_path = if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
        walk(child, &child_path, keys);
    }
}

/// Documented keys and their default cells: table rows whose first cell is a backticked key.
fn documented_keys() -> BTreeMap<String, String> {
    DOC.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let key = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let default = cells.get(2).copied().unwrap_or_default();
            key.contains('.')
                .then(|| (key.to_owned(), default.to_owned()))
        })
        .collect()
}

#[test]
fn every_settings_key_is_documented_and_every_documented_key_exists() {
    let keys = settings_keys();
    let documented = documented_keys();
    let missing: Vec<_> = keys
        .keys()
        .filter(|k| !documented.contains_key(*k))
        .collect();
    // A documented optional section (`apps.<app_id>.apple.api`) exists when keys lie under it.
    let unknown: Vec<_> = documented
        .keys()
        .filter(|d| {
            !keys
                .keys()
                .any(|k| k == *d || k.starts_with(&format!("{d}.")))
        })
        .collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "keys not documented: {missing:?}; documented keys that do not exist: {unknown:?}"
    );
}

#[test]
fn documented_defaults_are_the_real_defaults() {
    let keys = settings_keys();
    let mut checked = 0;
    for (key, cell) in documented_keys() {
        let Some(value) = keys.get(&key) else {
            continue;
        };
        if cell.starts_with("required") {
            continue;
        }
        let matches = match value {
            Value::Null => cell.starts_with("none"),
            Value::String(s) => cell == format!("`{s}`"),
            Value::Array(items) if items.is_empty() => cell == "`[]`",
            other => cell == format!("`{other}`"),
        };
        assert!(
            matches,
            "{key}: documented default {cell}, real default {value}"
        );
        checked += 1;
    }
    assert!(checked > 40, "only {checked} defaults checked");
}

/// The rows of the table of jobs: the job's name and its `interval_ms`, `batch`, `concurrency`
/// and `hold_ms` cells.
fn documented_jobs() -> BTreeMap<String, [String; 4]> {
    DOC.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            JOB_NAMES.contains(&name).then(|| {
                let cell = |i: usize| cells.get(i).copied().unwrap_or_default().to_owned();
                (name.to_owned(), [cell(2), cell(3), cell(4), cell(5)])
            })
        })
        .collect()
}

#[test]
fn the_table_of_jobs_gives_every_jobs_defaults_and_settings() {
    let documented = documented_jobs();
    assert_eq!(
        documented.keys().map(String::as_str).collect::<Vec<_>>(),
        {
            let mut names = JOB_NAMES.to_vec();
            names.sort_unstable();
            names
        },
        "one row per job"
    );
    let defaults = Settings::default();
    for (name, [interval, batch, concurrency, hold]) in documented {
        let job = defaults.job(&name);
        let has = |key: &str| Settings::from_toml(&format!("[jobs.{name}]\n{key} = 1\n")).is_ok();
        assert_eq!(
            interval,
            format!("`{}`", job.interval.as_millis()),
            "{name}"
        );
        for (key, cell, value) in [
            ("batch", batch, job.batch.to_string()),
            ("concurrency", concurrency, job.concurrency.to_string()),
            ("hold_ms", hold, job.hold.as_millis().to_string()),
        ] {
            if cell == "—" {
                assert!(!has(key), "{name}.{key} is documented as absent");
            } else {
                assert!(has(key), "{name}.{key} is documented");
                assert!(
                    cell.contains(&format!("`{value}`")) || cell.starts_with("the interval"),
                    "{name}.{key}: documented {cell}, real default {value}"
                );
            }
        }
    }
}
