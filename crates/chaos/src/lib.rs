//! Chaos soak: the whole system as separate processes (`iap-verifier`, `iap-delivery`,
//! `iap-scheduler`) on a private PostgreSQL and a private Redis, with the emulator (all three
//! stores) and the reference game server in this process. Players buy at a fixed rate while a
//! nemesis kills processes, crashes PostgreSQL and cuts its connections, restarts and flushes
//! Redis, makes the game server refuse, lose acknowledgements and time out, makes the stores
//! fail (5xx, 429, slow, cut replies) and duplicates and reorders notifications. Then
//! everything is healed, the system is left to settle, and the invariants are checked
//! ([`checker`]): every paid purchase granted exactly once and confirmed at its store, nothing
//! granted for what was not paid or was refunded, no order left owing work, no notification
//! left unprocessed.
//!
//! Everything listens on 127.0.0.1; the run stops by itself.

pub mod checker;
pub mod cluster;
pub mod nemesis;
pub mod shoppers;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use iap_storage::{PoolOptions, Storage};
use iap_test_support::emulator::Emulator;
use iap_test_support::private::{PrivatePostgres, PrivateRedis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::sync::Semaphore;
use tonic::transport::Endpoint;

pub use checker::Findings;
pub use cluster::{Role, Service, free_port};
pub use nemesis::Fault;
pub use shoppers::{Fate, Purchase, Store};

/// The game's id everywhere (bundle id, package name).
pub(crate) const APP: &str = "com.example.game";
/// The AppGallery app id at the emulator.
pub(crate) const HUAWEI_APP: &str = iap_test_support::emulator::HUAWEI_APP;
/// The one product bought (a consumable: every purchase is a new grant).
pub(crate) const PRODUCT: &str = "gems_100";

/// How a soak runs.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Where `iap-verifier`, `iap-delivery` and `iap-scheduler` are.
    pub bin_dir: PathBuf,
    /// How long players keep buying (faults run for as long).
    pub duration: Duration,
    /// New purchases per second.
    pub rate: f64,
    /// Purchases in play at most at once (a tick beyond it waits).
    pub max_in_flight: usize,
    /// Mean time between faults.
    pub fault_every: Duration,
    /// Players keep buying past `duration` until the nemesis has gone through every kind of
    /// fault this many times (at most three times `duration`), so a short run still covers
    /// them all.
    pub min_fault_cycles: u32,
    /// How long the system may take to settle once faults stop.
    pub settle_timeout: Duration,
    /// Seed of every random choice (fates, stores, faults, pauses).
    pub seed: u64,
}

/// What a soak did and found.
#[derive(Debug)]
pub struct Report {
    /// The seed (to run the same choices again).
    pub seed: u64,
    /// Every purchase as the player and the store saw it.
    pub purchases: Vec<Purchase>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<Fault, u32>,
    /// Faults the harness could not inject (it says why).
    pub fault_errors: Vec<String>,
    /// Services that died without being killed.
    pub unexpected_exits: Vec<String>,
    /// Starts of each service (1 + restarts).
    pub starts: BTreeMap<Role, u32>,
    /// How long players bought.
    pub buying: Duration,
    /// How long the system took to settle after the faults stopped (or the timeout).
    pub settled_in: Duration,
    /// The final check.
    pub findings: Findings,
    /// Where the services' logs are (kept when the run failed).
    pub work_dir: PathBuf,
}

impl Report {
    /// No invariant broken and no service died on its own.
    pub fn passed(&self) -> bool {
        self.findings.violations.is_empty() && self.unexpected_exits.is_empty()
    }

    /// Purchases per fate.
    pub fn fates(&self) -> BTreeMap<Fate, usize> {
        let mut out = BTreeMap::new();
        for p in &self.purchases {
            *out.entry(p.fate).or_insert(0) += 1;
        }
        out
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let owed = self.purchases.iter().filter(|p| p.owed()).count();
        let refunded = self.purchases.iter().filter(|p| p.refunded).count();
        let gave_up = self.purchases.iter().filter(|p| p.client_gave_up).count();
        let transient: u32 = self.purchases.iter().map(|p| p.transient_errors).sum();
        writeln!(f, "chaos soak, seed {}", self.seed)?;
        writeln!(
            f,
            "purchases: {} in {:.0} s ({owed} paid and owed, {refunded} refunded); by fate: {:?}",
            self.purchases.len(),
            self.buying.as_secs_f64(),
            self.fates()
        )?;
        let mut by_store = BTreeMap::new();
        for p in &self.purchases {
            *by_store.entry(p.store).or_insert(0) += 1;
        }
        writeln!(f, "by store: {by_store:?}")?;
        writeln!(
            f,
            "clients: {transient} transient errors retried, {gave_up} gave up without an answer"
        )?;
        let total: u32 = self.faults.values().sum();
        writeln!(f, "faults: {total} injected: {:?}", self.faults)?;
        writeln!(f, "service starts: {:?}", self.starts)?;
        if !self.fault_errors.is_empty() {
            writeln!(f, "faults not injected: {:?}", self.fault_errors)?;
        }
        writeln!(
            f,
            "settled in {:.1} s; orders by state {:?}; ledger: {} grants, {} revokes; inbox: {} waiting, outcomes {:?}",
            self.settled_in.as_secs_f64(),
            self.findings.orders_by_state,
            self.findings.ledger_grants,
            self.findings.ledger_revokes,
            self.findings.inbox_backlog,
            self.findings.inbox_outcomes
        )?;
        let calls = &self.findings.game_calls;
        writeln!(
            f,
            "game server: {} GrantItems calls, {} effects, {} answered as duplicates; {} RevokeItems calls, {} duplicates",
            calls.grant_calls,
            calls.grant_effects,
            calls.duplicate_grant_calls,
            calls.revoke_calls,
            calls.duplicate_revoke_calls
        )?;
        for exit in &self.unexpected_exits {
            writeln!(f, "UNEXPECTED EXIT: {exit}")?;
        }
        let shown = 40;
        for violation in self.findings.violations.iter().take(shown) {
            writeln!(f, "VIOLATION: {violation}")?;
        }
        if self.findings.violations.len() > shown {
            writeln!(
                f,
                "… and {} more violations",
                self.findings.violations.len() - shown
            )?;
        }
        if self.passed() {
            write!(f, "PASSED: every invariant holds")
        } else {
            write!(f, "FAILED; service logs in {}", self.work_dir.display())
        }
    }
}

/// Ports of the services.
struct Ports {
    verifier_grpc: u16,
    verifier_http: u16,
    delivery_grpc: u16,
    delivery_http: u16,
    scheduler_http: u16,
}

/// The configuration every service reads: short timings so retries, leases and backoff play
/// out within the run; attempts generous enough that a burst of game-server faults does not
/// make an order DEAD.
fn settings_toml(
    ports: &Ports,
    database_url: &str,
    redis_url: &str,
    game_url: &str,
    stores: &str,
) -> String {
    format!(
        r#"
[database]
url = "{database_url}"
max_connections = 8
acquire_timeout = "3s"
connect_timeout = "2s"

[redis]
url = "{redis_url}"
key_prefix = "soak:"

[verifier]
grpc_listen = "127.0.0.1:{verifier_grpc}"
http_listen = "127.0.0.1:{verifier_http}"
metrics_listen = "127.0.0.1:0"
delivery_url = "http://127.0.0.1:{delivery_grpc}"
fast_path_wait_ms = 1500

[delivery]
grpc_listen = "127.0.0.1:{delivery_grpc}"
http_listen = "127.0.0.1:{delivery_http}"
game_server_url = "{game_url}"
max_attempts = 40
call_deadline_ms = 800
calls_per_attempt = 2
backoff_base_ms = 100
backoff_max_ms = 2000
lock_ttl_ms = 3000
sweep_interval_ms = 1000
notification_lease_ms = 5000
notification_backoff_base_ms = 250
notification_backoff_max_ms = 2000

[scheduler]
http_listen = "127.0.0.1:{scheduler_http}"
delivery_url = "http://127.0.0.1:{delivery_grpc}"
sweep_interval_ms = 1000
sweep_hold_ms = 5000
reconcile_interval_ms = 5000
reconcile_lookback_hours = 1
reconcile_overlap_ms = 60000
gauges_interval_ms = 0

[telemetry]
log_format = "json"
log_filter = "info"

[apps."{APP}"]
max_open_orders_per_user = 0
[apps."{APP}".products.{PRODUCT}]
kind = "consumable"
max_quantity = 10
{stores}
"#,
        verifier_grpc = ports.verifier_grpc,
        verifier_http = ports.verifier_http,
        delivery_grpc = ports.delivery_grpc,
        delivery_http = ports.delivery_http,
        scheduler_http = ports.scheduler_http,
    )
}

/// Runs one soak.
///
/// # Errors
/// When the harness itself cannot run (no PostgreSQL binaries, a service that never starts);
/// broken invariants are in the report, not errors.
pub async fn run(config: SoakConfig) -> anyhow::Result<Report> {
    let work_dir =
        std::env::temp_dir().join(format!("iap-soak-{}-{}", std::process::id(), config.seed));
    std::fs::create_dir_all(&work_dir)?;

    let postgres = tokio::task::spawn_blocking(PrivatePostgres::start).await?;
    let redis = tokio::task::spawn_blocking(PrivateRedis::start).await?;
    let storage = Storage::connect(&postgres.url(), &PoolOptions::default())
        .await
        .context("the private PostgreSQL")?;
    storage.migrate().await.context("migrations")?;
    let db = storage.connection().clone();

    let emulator = Emulator::start().await;
    let game = iap_game_server::spawn(
        ([127, 0, 0, 1], 0).into(),
        iap_game_server::Ledger::in_memory(),
    )
    .await?;
    let ports = Ports {
        verifier_grpc: free_port()?,
        verifier_http: free_port()?,
        delivery_grpc: free_port()?,
        delivery_http: free_port()?,
        scheduler_http: free_port()?,
    };
    let toml = settings_toml(
        &ports,
        &postgres.url(),
        &redis.url(),
        &game.endpoint(),
        &emulator.store_settings_for(APP).await,
    );
    let config_file = work_dir.join("iap.toml");
    std::fs::write(&config_file, toml)?;

    // The stores resend what was not acknowledged; in the run, within seconds.
    let normal_notifications = json!({ "retries": 8, "retry_delay_ms": 250 });
    for store in ["apple", "google", "huawei"] {
        let target = format!(
            "http://127.0.0.1:{}/notifications/{store}",
            ports.verifier_http
        );
        let reply = emulator
            .http
            .put(format!(
                "{}/emulator/notifications/targets/{store}",
                emulator.base
            ))
            .json(&json!({ "url": target }))
            .send()
            .await?;
        anyhow::ensure!(reply.status().is_success(), "notification target");
    }
    emulator
        .http
        .put(format!("{}/emulator/notifications/mode", emulator.base))
        .json(&normal_notifications)
        .send()
        .await?;

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let services = vec![
        Service::new(
            Role::Delivery,
            &config.bin_dir,
            &config_file,
            &work_dir,
            ports.delivery_http,
        )?,
        Service::new(
            Role::Verifier,
            &config.bin_dir,
            &config_file,
            &work_dir,
            ports.verifier_http,
        )?,
        Service::new(
            Role::Scheduler,
            &config.bin_dir,
            &config_file,
            &work_dir,
            ports.scheduler_http,
        )?,
    ];
    let mut cluster = nemesis::Cluster {
        services,
        postgres,
        redis,
        game: game.faults().clone(),
        emulator: emulator.base.clone(),
        http: http.clone(),
        normal_notifications,
        call_deadline: Duration::from_millis(800),
        unexpected_exits: Vec::new(),
    };
    for role in Role::ALL {
        cluster.start(role).await?;
    }

    let verifier = Endpoint::from_shared(format!("http://127.0.0.1:{}", ports.verifier_grpc))?
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    let shop = shoppers::Shop {
        verifier,
        emulator: emulator.base.clone(),
        http: http.clone(),
        patience: Duration::from_secs(20),
    };

    // Buy while the nemesis works.
    let stop = Arc::new(AtomicBool::new(false));
    let cycles = Arc::new(AtomicU32::new(0));
    let nemesis = tokio::spawn(nemesis::run(
        cluster,
        config.seed,
        config.fault_every,
        stop.clone(),
        cycles.clone(),
    ));
    let started = Instant::now();
    let purchases = buy(&config, &shop, &cycles).await;
    let buying = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (mut cluster, faults, fault_errors) = nemesis.await?;

    // Heal and let it settle.
    cluster.heal().await?;
    let settle_started = Instant::now();
    let mut findings;
    let mut said = Instant::now();
    loop {
        findings = checker::check(&purchases, game.ledger(), &db, &http, &emulator.base).await;
        let settled = matches!(&findings, Ok(f) if f.violations.is_empty());
        if settled || settle_started.elapsed() > config.settle_timeout {
            break;
        }
        if said.elapsed() >= Duration::from_secs(10) {
            said = Instant::now();
            match &findings {
                Ok(f) => eprintln!(
                    "settling for {:.0} s: {} open, e.g. {}",
                    settle_started.elapsed().as_secs_f64(),
                    f.violations.len(),
                    f.violations.first().map_or("", String::as_str)
                ),
                Err(e) => eprintln!("settling: cannot check yet: {e:#}"),
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let findings = findings?;
    let settled_in = settle_started.elapsed();
    let mut unexpected_exits = std::mem::take(&mut cluster.unexpected_exits);
    for service in &mut cluster.services {
        if let Some(status) = service.exited() {
            unexpected_exits.push(format!(
                "{} exited on its own ({status})",
                service.role.binary()
            ));
        }
    }
    let starts = cluster
        .services
        .iter()
        .map(|s| (s.role, s.starts))
        .collect();
    let report = Report {
        seed: config.seed,
        purchases,
        faults,
        fault_errors,
        unexpected_exits,
        starts,
        buying,
        settled_in,
        findings,
        work_dir: work_dir.clone(),
    };
    drop(cluster);
    if report.passed() {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    Ok(report)
}

/// Starts a purchase every 1/rate s (open loop, at most `max_in_flight` at once) for the
/// duration (and until the nemesis has done its cycles); returns them all once each has played
/// out.
async fn buy(config: &SoakConfig, shop: &shoppers::Shop, cycles: &AtomicU32) -> Vec<Purchase> {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let slots = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let interval = Duration::from_secs_f64(1.0 / config.rate.max(0.01));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut running = Vec::new();
    let started = Instant::now();
    let mut index = 0;
    let more = |elapsed: Duration| {
        elapsed < config.duration
            || (cycles.load(Ordering::Relaxed) < config.min_fault_cycles
                && elapsed < config.duration * 3)
    };
    while more(started.elapsed()) {
        ticker.tick().await;
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let purchase = Purchase {
            index,
            store: Store::ALL[rng.gen_range(0..Store::ALL.len())],
            fate: Fate::draw(&mut rng),
            user_id: format!("soak-{}-{index}", config.seed),
            order_id: None,
            store_ref: None,
            paid: false,
            refunded: false,
            client_gave_up: false,
            transient_errors: 0,
        };
        index += 1;
        let shop = shop.clone();
        running.push(tokio::spawn(async move {
            let played = shop.play(purchase).await;
            drop(slot);
            played
        }));
    }
    let mut out = Vec::with_capacity(running.len());
    for handle in running {
        if let Ok(purchase) = handle.await {
            out.push(purchase);
        }
    }
    out
}
