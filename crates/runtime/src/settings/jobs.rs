//! `[jobs.<name>]`: how often each background job runs and how much one pass takes, in one
//! place per job instead of keys scattered over `[delivery]` and `[scheduler]`.
//!
//! The keys these replace still work for one version: when a job's own key is not set, the old
//! key is read (with the clamps the services apply to it today) and a deprecation warning is
//! logged once per process. The warning is logged when a job's settings are resolved, not when
//! the file is read: logging is not set up yet while settings load. An old key counts as set
//! when it differs from its default (one set to its default value changes nothing either way).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Settings};
use crate::jobs::NotificationInboxJob;

/// The order sweep: paid orders not delivered or not confirmed at the store yet.
pub const ORDER_SWEEP: &str = "order_sweep";
/// Subscription changes sent to the game server (`GameServerService.UpdateSubscription`).
pub const ENTITLEMENT_SYNC: &str = "entitlement_sync";
/// The store-notification inbox.
pub const NOTIFICATION_INBOX: &str = "notification_inbox";
/// Subscriptions checked at the store (periods and grace periods ending, suspended ones).
pub const SUBSCRIPTION_CHECKS: &str = "subscription_checks";
/// The stores' histories read for what the live path missed.
pub const RECONCILIATION: &str = "reconciliation";
/// The operations gauges read from the database.
pub const GAUGES: &str = "gauges";

/// Every job `[jobs]` may name, as the jobs name themselves in logs and the `job` label.
pub const JOB_NAMES: [&str; 6] = [
    ORDER_SWEEP,
    ENTITLEMENT_SYNC,
    NOTIFICATION_INBOX,
    SUBSCRIPTION_CHECKS,
    RECONCILIATION,
    GAUGES,
];

/// `[jobs.<name>]`: every key optional; unset keys take the job's default (or the old key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobSettings {
    /// Pause between two passes (ms; 0 = the job is off). A pass that took a full batch is
    /// followed by the next at once.
    pub interval_ms: Option<u64>,
    /// Items one pass takes at most (at least 1).
    pub batch: Option<u32>,
    /// Items one pass works on at once (at least 1).
    pub concurrency: Option<usize>,
    /// How long a pass keeps what it took from other replicas (ms); if the replica dies, the
    /// items come due again after it.
    pub hold_ms: Option<u64>,
}

/// One job's settings with every default and old key applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedJob {
    /// Pause between two passes; zero: the job is off.
    pub interval: Duration,
    /// Items one pass takes at most (1 for a job that looks at everything each pass).
    pub batch: u32,
    /// Items one pass works on at once (1 for a job that works one at a time).
    pub concurrency: usize,
    /// How long a pass keeps what it took from other replicas (zero for a job that holds
    /// nothing).
    pub hold: Duration,
}

/// A key `[jobs]` replaces, as one job setting reads it.
struct OldKey {
    /// Dotted key.
    key: &'static str,
    /// Its value.
    read: fn(&Settings) -> u64,
    /// The smallest value the services use today (they raise smaller ones to it).
    floor: u64,
}

impl OldKey {
    const fn new(key: &'static str, read: fn(&Settings) -> u64) -> Self {
        Self {
            key,
            read,
            floor: 0,
        }
    }

    const fn at_least(self, floor: u64) -> Self {
        Self { floor, ..self }
    }

    fn is_set(&self, settings: &Settings) -> bool {
        (self.read)(settings) != (self.read)(&Settings::default())
    }

    fn value(&self, settings: &Settings) -> u64 {
        (self.read)(settings).max(self.floor)
    }
}

/// Where one setting of a job comes from when its own key is not set.
enum Fallback {
    /// The first old key that is set, else the first one's value (its default).
    Old(&'static [OldKey]),
    /// A fixed default.
    Fixed(u64),
    /// The job's interval, but at least this many milliseconds.
    IntervalAtLeast(u64),
}

/// The settings one job reads; `None`: the job has no such setting (setting it is an error).
struct JobSpec {
    name: &'static str,
    interval: Fallback,
    batch: Option<Fallback>,
    concurrency: Option<Fallback>,
    hold: Option<Fallback>,
}

const SCHEDULER_SWEEP_HOLD: OldKey =
    OldKey::new("scheduler.sweep_hold_ms", |s| s.scheduler.sweep_hold_ms);
const DELIVERY_SWEEP_INTERVAL: OldKey = OldKey::new("delivery.sweep_interval_ms", |s| {
    s.delivery.sweep_interval_ms
});
const DELIVERY_SWEEP_BATCH: OldKey = OldKey::new("delivery.sweep_batch", |s| {
    u64::from(s.delivery.sweep_batch)
})
.at_least(1);

/// Every job's settings. The order sweep replaces two sweeps (iap-delivery's own and
/// iap-scheduler's), so it reads both sections' keys, the scheduler's first.
static JOBS: [JobSpec; 6] = [
    JobSpec {
        name: ORDER_SWEEP,
        interval: Fallback::Old(&[
            OldKey::new("scheduler.sweep_interval_ms", |s| {
                s.scheduler.sweep_interval_ms
            })
            .at_least(50),
            DELIVERY_SWEEP_INTERVAL,
        ]),
        batch: Some(Fallback::Old(&[
            OldKey::new("scheduler.sweep_batch", |s| {
                u64::from(s.scheduler.sweep_batch)
            })
            .at_least(1),
            DELIVERY_SWEEP_BATCH,
        ])),
        concurrency: Some(Fallback::Old(&[
            OldKey::new("scheduler.sweep_concurrency", |s| {
                s.scheduler.sweep_concurrency as u64
            })
            .at_least(1),
            OldKey::new("delivery.sweep_concurrency", |s| {
                s.delivery.sweep_concurrency as u64
            })
            .at_least(1),
        ])),
        hold: Some(Fallback::Old(&[SCHEDULER_SWEEP_HOLD.at_least(1_000)])),
    },
    JobSpec {
        name: ENTITLEMENT_SYNC,
        interval: Fallback::Old(&[DELIVERY_SWEEP_INTERVAL]),
        batch: Some(Fallback::Old(&[DELIVERY_SWEEP_BATCH])),
        concurrency: None,
        hold: None,
    },
    JobSpec {
        name: NOTIFICATION_INBOX,
        // Notifications must not wait for a slow (or switched off) sweep.
        interval: Fallback::Old(&[DELIVERY_SWEEP_INTERVAL.at_least(200)]),
        batch: Some(Fallback::Fixed(NotificationInboxJob::DEFAULT_BATCH as u64)),
        concurrency: None,
        hold: None,
    },
    JobSpec {
        name: SUBSCRIPTION_CHECKS,
        interval: Fallback::Old(&[OldKey::new("scheduler.subscription_interval_ms", |s| {
            s.scheduler.subscription_interval_ms
        })
        .at_least(50)]),
        batch: Some(Fallback::Old(&[OldKey::new(
            "scheduler.subscription_batch",
            |s| u64::from(s.scheduler.subscription_batch),
        )
        .at_least(1)])),
        concurrency: None,
        hold: Some(Fallback::Old(&[SCHEDULER_SWEEP_HOLD])),
    },
    JobSpec {
        name: RECONCILIATION,
        interval: Fallback::Old(&[OldKey::new("scheduler.reconcile_interval_ms", |s| {
            s.scheduler.reconcile_interval_ms
        })]),
        batch: None,
        concurrency: None,
        // A store's window is held at least a minute, and longer than the pause between passes.
        hold: Some(Fallback::IntervalAtLeast(60_000)),
    },
    JobSpec {
        name: GAUGES,
        interval: Fallback::Old(&[OldKey::new("scheduler.gauges_interval_ms", |s| {
            s.scheduler.gauges_interval_ms
        })]),
        batch: None,
        concurrency: None,
        hold: None,
    },
];

fn spec(name: &str) -> Option<&'static JobSpec> {
    JOBS.iter().find(|spec| spec.name == name)
}

/// A resolved job and the old keys it read (or found set but overridden).
#[derive(Debug)]
struct Resolution {
    job: ResolvedJob,
    deprecated: Vec<Deprecation>,
}

/// An old key that is set.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Deprecation {
    old: &'static str,
    new: String,
    /// The job's own key is set too, so the old one is not read.
    overridden: bool,
}

impl Deprecation {
    fn warn(&self) {
        if self.overridden {
            tracing::warn!(
                key = self.old,
                replacement = %self.new,
                "deprecated setting ignored: its replacement is set; remove it"
            );
        } else {
            tracing::warn!(
                key = self.old,
                replacement = %self.new,
                "deprecated setting: still read for now, but it goes away in the next version; \
                 set its replacement instead"
            );
        }
    }
}

/// Old keys already warned about in this process.
static WARNED: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

/// Logs the deprecation unless this process already did for that key; true when it logged.
fn warn_once(deprecation: &Deprecation) -> bool {
    let first = WARNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(deprecation.old);
    if first {
        deprecation.warn();
    }
    first
}

/// Resolves one job's settings key by key, noting the old keys it meets.
struct Resolver<'a> {
    settings: &'a Settings,
    name: &'static str,
    deprecated: Vec<Deprecation>,
}

impl Resolver<'_> {
    /// One setting: the job's own key, else the first old key that is set (any later one is
    /// overridden by it), else the default.
    fn value(&mut self, key: &str, own: Option<u64>, fallback: &Fallback, interval: u64) -> u64 {
        match fallback {
            Fallback::Fixed(default) => own.unwrap_or(*default),
            Fallback::IntervalAtLeast(floor) => own.unwrap_or(interval.max(*floor)),
            Fallback::Old(old_keys) => {
                let set = old_keys.iter().filter(|old| old.is_set(self.settings));
                let new = format!("jobs.{}.{key}", self.name);
                let mut read = None;
                for old in set {
                    let overridden = own.is_some() || read.is_some();
                    self.deprecated.push(Deprecation {
                        old: old.key,
                        new: new.clone(),
                        overridden,
                    });
                    if !overridden {
                        read = Some(old.value(self.settings));
                    }
                }
                own.or(read)
                    .unwrap_or_else(|| old_keys[0].value(self.settings))
            }
        }
    }
}

impl JobSpec {
    fn resolve(&'static self, settings: &Settings) -> Resolution {
        let own = settings.jobs.get(self.name).cloned().unwrap_or_default();
        let mut resolver = Resolver {
            settings,
            name: self.name,
            deprecated: Vec::new(),
        };
        let interval = resolver.value("interval_ms", own.interval_ms, &self.interval, 0);
        let mut optional =
            |key: &str, own: Option<u64>, fallback: &Option<Fallback>, unused: u64| {
                fallback.as_ref().map_or(unused, |fallback| {
                    resolver.value(key, own, fallback, interval)
                })
            };
        let batch = optional("batch", own.batch.map(u64::from), &self.batch, 1);
        let concurrency = optional(
            "concurrency",
            own.concurrency.map(|c| c as u64),
            &self.concurrency,
            1,
        );
        let hold = optional("hold_ms", own.hold_ms, &self.hold, 0);
        Resolution {
            job: ResolvedJob {
                interval: Duration::from_millis(interval),
                batch: u32::try_from(batch).unwrap_or(u32::MAX),
                concurrency: usize::try_from(concurrency).unwrap_or(usize::MAX),
                hold: Duration::from_millis(hold),
            },
            deprecated: resolver.deprecated,
        }
    }
}

impl Settings {
    /// The settings of the job called `name` (one of [`JOB_NAMES`]): its `[jobs.<name>]` keys,
    /// else the old keys they replace, else the defaults. Logs a deprecation warning, once per
    /// process and key, for every old key that is set.
    ///
    /// # Panics
    ///
    /// When `name` is not one of [`JOB_NAMES`]: a job without settings is a programming error.
    pub fn job(&self, name: &str) -> ResolvedJob {
        let spec = spec(name)
            .unwrap_or_else(|| panic!("no job named {name:?}; the jobs are {JOB_NAMES:?}"));
        let resolution = spec.resolve(self);
        for deprecation in &resolution.deprecated {
            warn_once(deprecation);
        }
        resolution.job
    }

    pub(super) fn validate_jobs(&self) -> Result<(), ConfigError> {
        for (name, job) in &self.jobs {
            let Some(spec) = spec(name) else {
                return Err(ConfigError::value(
                    format!("jobs.{name}"),
                    format!("is not a job; the jobs are {}", JOB_NAMES.join(", ")),
                ));
            };
            let unused = [
                ("batch", job.batch.is_some() && spec.batch.is_none()),
                (
                    "concurrency",
                    job.concurrency.is_some() && spec.concurrency.is_none(),
                ),
                ("hold_ms", job.hold_ms.is_some() && spec.hold.is_none()),
            ];
            if let Some((key, _)) = unused.iter().find(|(_, unused)| *unused) {
                return Err(ConfigError::value(
                    format!("jobs.{name}.{key}"),
                    format!("is not a setting of {name} (remove it)"),
                ));
            }
            if job.batch == Some(0) {
                return Err(ConfigError::value(
                    format!("jobs.{name}.batch"),
                    "must be at least 1",
                ));
            }
            if job.concurrency == Some(0) {
                return Err(ConfigError::value(
                    format!("jobs.{name}.concurrency"),
                    "must be at least 1",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
// figment's Jail closures return figment::Error, which is large; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    fn job(interval_ms: u64, batch: u32, concurrency: usize, hold_ms: u64) -> ResolvedJob {
        ResolvedJob {
            interval: Duration::from_millis(interval_ms),
            batch,
            concurrency,
            hold: Duration::from_millis(hold_ms),
        }
    }

    fn resolve(settings: &Settings, name: &str) -> Resolution {
        spec(name).expect("a job").resolve(settings)
    }

    #[test]
    fn the_defaults_are_the_values_the_services_use_today() {
        let settings = Settings::default();
        let expected = [
            (ORDER_SWEEP, job(2_000, 200, 16, 30_000)),
            (ENTITLEMENT_SYNC, job(2_000, 200, 1, 0)),
            (NOTIFICATION_INBOX, job(2_000, 100, 1, 0)),
            (SUBSCRIPTION_CHECKS, job(30_000, 100, 1, 30_000)),
            (RECONCILIATION, job(300_000, 1, 1, 300_000)),
            (GAUGES, job(15_000, 1, 1, 0)),
        ];
        for (name, expected) in expected {
            let resolution = resolve(&settings, name);
            assert_eq!(resolution.job, expected, "{name}");
            assert!(resolution.deprecated.is_empty(), "{name}");
        }
        assert_eq!(
            JOB_NAMES.to_vec(),
            JOBS.iter().map(|spec| spec.name).collect::<Vec<_>>()
        );
    }

    #[test]
    fn an_old_key_is_read_with_a_deprecation_warning_once() {
        let settings = Settings::from_toml(
            "[scheduler]\nsweep_batch = 50\nsweep_hold_ms = 0\n[delivery]\nsweep_interval_ms = 0\n",
        )
        .unwrap();
        let sweep = resolve(&settings, ORDER_SWEEP);
        assert_eq!(sweep.job.batch, 50);
        assert_eq!(
            sweep.job.interval,
            Duration::ZERO,
            "delivery's 0 turns the sweep off"
        );
        assert_eq!(
            sweep.job.hold,
            Duration::from_secs(1),
            "clamped as the scheduler clamps it today"
        );
        assert_eq!(
            resolve(&settings, SUBSCRIPTION_CHECKS).job.hold,
            Duration::ZERO,
            "the subscription checks read the hold as it is"
        );
        assert_eq!(
            resolve(&settings, NOTIFICATION_INBOX).job.interval,
            Duration::from_millis(200),
            "the inbox runs whether or not the sweep does"
        );
        let batch = sweep
            .deprecated
            .iter()
            .find(|d| d.old == "scheduler.sweep_batch")
            .expect("a deprecation");
        assert_eq!(batch.new, "jobs.order_sweep.batch");
        assert!(!batch.overridden);
        assert!(warn_once(batch), "the first time");
        assert!(!warn_once(batch), "not again");
        let zero = Settings::from_toml("[scheduler]\nsweep_batch = 0\n").unwrap();
        assert_eq!(zero.job(ORDER_SWEEP).batch, 1, "clamped as today");
    }

    #[test]
    fn the_scheduler_key_comes_before_the_delivery_key_for_the_one_order_sweep() {
        let settings = Settings::from_toml(
            "[scheduler]\nsweep_interval_ms = 1000\n[delivery]\nsweep_interval_ms = 0\nsweep_concurrency = 4\n",
        )
        .unwrap();
        let sweep = resolve(&settings, ORDER_SWEEP);
        assert_eq!(sweep.job.interval, Duration::from_secs(1));
        assert_eq!(sweep.job.concurrency, 4, "the only one set");
        let delivery = sweep
            .deprecated
            .iter()
            .find(|d| d.old == "delivery.sweep_interval_ms")
            .expect("a deprecation");
        assert!(delivery.overridden);
    }

    #[test]
    fn the_jobs_own_key_wins_over_the_old_one() {
        let settings = Settings::from_toml(
            "[scheduler]\nsweep_batch = 50\n[jobs.order_sweep]\nbatch = 70\ninterval_ms = 0\n\
             [jobs.reconciliation]\ninterval_ms = 600000\n",
        )
        .unwrap();
        let sweep = resolve(&settings, ORDER_SWEEP);
        assert_eq!(sweep.job, job(0, 70, 16, 30_000));
        assert_eq!(
            sweep.deprecated,
            vec![Deprecation {
                old: "scheduler.sweep_batch",
                new: "jobs.order_sweep.batch".to_owned(),
                overridden: true,
            }]
        );
        assert_eq!(
            settings.job(RECONCILIATION),
            job(600_000, 1, 1, 600_000),
            "the hold follows the interval"
        );
    }

    #[test]
    fn unknown_jobs_unused_keys_and_empty_batches_are_rejected() {
        let err = Settings::from_toml("[jobs.order_sweeps]\nbatch = 10\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("jobs.order_sweeps: is not a job"), "{err}");
        for name in JOB_NAMES {
            assert!(err.contains(name), "{err}");
        }
        let err = Settings::from_toml("[jobs.gauges]\nbatch = 10\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("jobs.gauges.batch"), "{err}");
        let err = Settings::from_toml("[jobs.order_sweep]\nbatch = 0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "jobs.order_sweep.batch: must be at least 1");
        let err = Settings::from_toml("[jobs.order_sweep]\nconcurrency = 0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "jobs.order_sweep.concurrency: must be at least 1");
        let err = Settings::from_toml("[jobs.order_sweep]\nbatchh = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("batchh"), "{err}");
    }

    #[test]
    fn the_environment_sets_a_jobs_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("jobs.toml", "[jobs.order_sweep]\nbatch = 70\n")?;
            jail.set_env("IAP_JOBS__ORDER_SWEEP__BATCH", "500");
            jail.set_env("IAP_JOBS__GAUGES__INTERVAL_MS", "0");
            let settings = Settings::load(Some(std::path::Path::new("jobs.toml"))).unwrap();
            assert_eq!(settings.job(ORDER_SWEEP).batch, 500);
            assert_eq!(settings.job(GAUGES).interval, Duration::ZERO);
            jail.set_env("IAP_JOBS__ORDER_SWEEP__CONCURRENCY", "0");
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.starts_with("jobs.order_sweep.concurrency"), "{err}");
            Ok(())
        });
    }
}
