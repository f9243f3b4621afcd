//! `load`: the whole purchase path under load, next to the database's own ceiling.
//!
//! Against the PostgreSQL and Redis on this machine, on a fresh database `iap_load_<pid>`, it
//! starts the emulator (Google Play), the reference game server, the delivery role (with its
//! sweeper) and the verifier (with the delivery fast path): all in this process, or, with
//! `--services-dir target/release`, `iap-verifier` and `iap-delivery` as their own processes so
//! that each one's CPU and peak RSS are measured apart. Then:
//!
//! 1. closed loop: `--workers` clients each run CreateOrder → purchase at the emulator →
//!    VerifyPurchase → wait until delivered, for `--duration` seconds (purchases/s);
//! 2. fixed offered load: a new purchase every 1/`--rate` s for `--duration` seconds, whatever
//!    the earlier ones are doing (latency of VerifyPurchase and of purchase → delivered);
//! 3. `pgbench` on a transaction shaped like our payment/delivery commit, on its own tables in
//!    the same database (TPS ceiling).
//!
//! It prints the figures (CPU per purchase of each process and of the PostgreSQL server) and
//! drops the database. Nothing is written into the repository;
//! receipts and tokens are never printed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Parser;
use iap_chaos::{Role, Service, free_port};
use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use iap_proto::v1::verification_service_client::VerificationServiceClient;
use iap_runtime::{Settings, Shutdown};
use iap_storage::{PoolOptions, Storage};
use iap_test_support::emulator::Emulator;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::json;
use tokio::net::TcpListener;
use tonic::transport::Channel;

const APP: &str = "com.example.game";
const PRODUCT: &str = "gems_100";

#[derive(Debug, Parser)]
#[command(about = "End-to-end purchase load benchmark against PostgreSQL, Redis and pgbench")]
struct Args {
    /// Maintenance database URL; the benchmark database is created through it.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Redis for the delivery lock (keys under a private prefix).
    #[arg(long, default_value = "redis://127.0.0.1:6379/")]
    redis: String,
    /// Seconds each load phase runs.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Closed-loop clients (phase 1; 0 skips it).
    #[arg(long, default_value_t = 32)]
    workers: usize,
    /// Offered purchases per second (phase 2; 0 skips it).
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Purchases in flight at most in phase 2; a tick beyond it is counted as not sent.
    #[arg(long, default_value_t = 1000)]
    max_in_flight: usize,
    /// Connections in the service's database pool.
    #[arg(long, default_value_t = 16)]
    pool: u32,
    /// How long VerifyPurchase waits for the fast-path grant (ms; the service default).
    #[arg(long, default_value_t = 2000)]
    fast_path_wait_ms: u64,
    /// pgbench clients (0 skips pgbench).
    #[arg(long, default_value_t = 8)]
    pgbench_clients: u32,
    /// pgbench seconds.
    #[arg(long, default_value_t = 15)]
    pgbench_seconds: u32,
    /// The pgbench executable.
    #[arg(long, default_value = "pgbench")]
    pgbench: String,
    /// Run iap-verifier and iap-delivery as their own processes from this directory (e.g.
    /// `target/release`), so each one's CPU and peak RSS are measured apart; without it every
    /// role runs inside this process.
    #[arg(long)]
    services_dir: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

/// The database this run creates, dropped at the end (also on error).
struct BenchDatabase {
    admin: DatabaseConnection,
    name: String,
    url: String,
}

impl BenchDatabase {
    async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let admin = Database::connect(admin_url)
            .await
            .with_context(|| format!("PostgreSQL at {admin_url}"))?;
        let name = format!("iap_load_{}", std::process::id());
        exec(
            &admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )
        .await?;
        exec(&admin, &format!("CREATE DATABASE {name}")).await?;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url, |(base, _)| base);
        let url = format!("{base}/{name}");
        Ok(Self { admin, name, url })
    }

    async fn drop_it(self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = exec(&self.admin, &sql).await {
            eprintln!("could not drop {}: {e}", self.name);
        }
        let _ = self.admin.close().await;
    }
}

async fn exec(db: &DatabaseConnection, sql: &str) -> anyhow::Result<()> {
    db.execute(Statement::from_string(db.get_database_backend(), sql))
        .await
        .with_context(|| sql.to_owned())?;
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    let db = BenchDatabase::create(&args.postgres).await?;
    let result = bench(&args, &db).await;
    db.drop_it().await;
    result
}

/// The system under test: every role in this process, or the verifier and delivery roles as
/// child processes (`--services-dir`). The emulator, the game server and the load clients are
/// always in this process.
struct System {
    channels: Vec<Channel>,
    emulator: Emulator,
    storage: Storage,
    shutdown: Shutdown,
    /// The services' processes in `--services-dir` mode (killed on drop).
    services: Vec<Service>,
    /// Where their configuration and logs are.
    work_dir: Option<std::path::PathBuf>,
    _game: iap_game_server::GameServerHandle,
}

async fn start(args: &Args, db_url: &str) -> anyhow::Result<System> {
    let storage = Storage::connect(
        db_url,
        &PoolOptions {
            max_connections: args.pool,
            ..PoolOptions::default()
        },
    )
    .await?;
    storage.migrate().await?;
    let emulator = Emulator::start().await;
    let game = iap_game_server::spawn(
        ([127, 0, 0, 1], 0).into(),
        iap_game_server::Ledger::in_memory(),
    )
    .await?;
    let toml = format!(
        r#"
        [redis]
        url = "{redis}"
        key_prefix = "iap-load:{pid}:"
        [database]
        max_connections = {pool}
        [verifier]
        fast_path_wait_ms = {wait}
        [delivery]
        game_server_url = "{game}"
        [apps."{APP}"]
        [apps."{APP}".products.{PRODUCT}]
        kind = "consumable"
        max_quantity = 10
        {stores}
        "#,
        redis = args.redis,
        pid = std::process::id(),
        pool = args.pool,
        wait = args.fast_path_wait_ms,
        game = game.endpoint(),
        stores = emulator.store_settings_for(APP).await,
    );
    let shutdown = Shutdown::new();
    let (addr, services, work_dir) = match &args.services_dir {
        None => (
            in_process(&toml, db_url, &shutdown).await?,
            Vec::new(),
            None,
        ),
        Some(dir) => {
            let (addr, services, work) = child_processes(&toml, dir, db_url).await?;
            (addr, services, Some(work))
        }
    };
    // A few HTTP/2 connections, as several game clients' gateways would open.
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(
            Channel::from_shared(format!("http://{addr}"))?
                .connect()
                .await?,
        );
    }
    Ok(System {
        channels,
        emulator,
        storage,
        shutdown,
        services,
        work_dir,
        _game: game,
    })
}

/// The verifier and delivery roles inside this process, wired by the same composition root as
/// the binaries, on the benchmark database; returns the verifier's gRPC address.
async fn in_process(
    toml: &str,
    db_url: &str,
    shutdown: &Shutdown,
) -> anyhow::Result<std::net::SocketAddr> {
    let toml = toml.replacen("[database]", &format!("[database]\nurl = \"{db_url}\""), 1);
    let settings = Settings::from_toml(&toml).map_err(|e| anyhow!("settings: {e}"))?;
    let listeners = iap_app::BoundListeners {
        grpc: Some(TcpListener::bind("127.0.0.1:0").await?),
        http: Some(TcpListener::bind("127.0.0.1:0").await?),
        metrics: Some(TcpListener::bind("127.0.0.1:0").await?),
    };
    let app = iap_app::App::build_on(
        &settings,
        iap_app::Roles::VERIFIER | iap_app::Roles::DELIVERY,
        listeners,
    )
    .await
    .map_err(|e| anyhow!("{e}"))?;
    let addr = app
        .addresses()
        .grpc
        .ok_or_else(|| anyhow!("the verifier serves gRPC"))?;
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    Ok(addr)
}

/// iap-delivery and iap-verifier as child processes from `dir`, on the benchmark database;
/// returns the verifier's gRPC address, the processes and their work directory.
async fn child_processes(
    toml: &str,
    dir: &std::path::Path,
    db_url: &str,
) -> anyhow::Result<(std::net::SocketAddr, Vec<Service>, std::path::PathBuf)> {
    let work = std::env::temp_dir().join(format!("iap-load-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let port = || free_port();
    let (verifier_grpc, verifier_http, delivery_grpc, delivery_http) =
        (port()?, port()?, port()?, port()?);
    // The same settings as in process, plus where each process listens and finds the others.
    let toml = toml
        .replacen("[database]", &format!("[database]\nurl = \"{db_url}\""), 1)
        .replacen(
            "[verifier]",
            &format!(
                "[verifier]\ngrpc_listen = \"127.0.0.1:{verifier_grpc}\"\nhttp_listen = \"127.0.0.1:{verifier_http}\"\ndelivery_url = \"http://127.0.0.1:{delivery_grpc}\""
            ),
            1,
        )
        .replacen(
            "[delivery]",
            &format!(
                "[delivery]\ngrpc_listen = \"127.0.0.1:{delivery_grpc}\"\nhttp_listen = \"127.0.0.1:{delivery_http}\""
            ),
            1,
        );
    let config = work.join("iap.toml");
    std::fs::write(&config, toml)?;
    let http = reqwest::Client::new();
    let mut services = Vec::new();
    for (role, http_port) in [
        (Role::Delivery, delivery_http),
        (Role::Verifier, verifier_http),
    ] {
        let mut service = Service::new(role, dir, &config, &work, http_port)?;
        service.up(&http).await?;
        services.push(service);
    }
    Ok((
        std::net::SocketAddr::from(([127, 0, 0, 1], verifier_grpc)),
        services,
        work,
    ))
}

/// One purchase's timings.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// The VerifyPurchase call.
    verify: Duration,
    /// From the store purchase in hand to the order seen delivered.
    to_delivered: Duration,
    /// Delivered in VerifyPurchase's reply (fast path), not by a later poll.
    fast_path: bool,
}

fn delivered(state: i32) -> bool {
    matches!(
        pb::OrderState::try_from(state),
        Ok(pb::OrderState::Delivered | pb::OrderState::Confirmed)
    )
}

/// CreateOrder → Google Play purchase at the emulator → VerifyPurchase → delivered.
async fn purchase(
    channel: Channel,
    emulator: &str,
    http: &reqwest::Client,
    n: usize,
) -> anyhow::Result<Sample> {
    let user = format!("load-{}-{n}", std::process::id());
    let created = OrderServiceClient::new(channel.clone())
        .create_order(pb::CreateOrderRequest {
            app_id: APP.into(),
            user_id: user.clone(),
            product_id: PRODUCT.into(),
            platform: pb::Platform::Google.into(),
            quantity: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    let order_id = created.order.context("no order")?.order_id;
    let binding = created.binding.context("no binding")?;
    let reply = http
        .post(format!("{emulator}/emulator/google/purchases"))
        .json(
            &json!({ "package_name": APP, "product_id": PRODUCT, "kind": "inapp",
            "obfuscated_account_id": binding.google_obfuscated_account_id,
            "obfuscated_profile_id": binding.google_obfuscated_profile_id }),
        )
        .send()
        .await?;
    if !reply.status().is_success() {
        bail!("emulator purchase: {}", reply.status());
    }
    let made: serde_json::Value = reply.json().await?;
    let field = |name: &str| -> anyhow::Result<String> {
        Ok(made[name]
            .as_str()
            .with_context(|| format!("emulator purchase without {name}"))?
            .to_owned())
    };
    let request = pb::VerifyPurchaseRequest {
        app_id: APP.into(),
        user_id: user,
        order_id: String::new(),
        purchase: Some(pb::verify_purchase_request::Purchase::Google(
            pb::GooglePurchase {
                purchase_token: field("purchase_token")?,
                product_id: PRODUCT.into(),
                original_json: field("original_json")?,
                signature: field("signature")?,
            },
        )),
    };
    let bought = Instant::now();
    let verified = VerificationServiceClient::new(channel.clone())
        .verify_purchase(request)
        .await?
        .into_inner();
    let verify = bought.elapsed();
    let state = verified.order.context("no order in reply")?.state;
    if delivered(state) {
        return Ok(Sample {
            verify,
            to_delivered: verify,
            fast_path: true,
        });
    }
    // Not granted within the fast-path wait: the sweeper will; poll the order.
    let mut orders = OrderServiceClient::new(channel);
    loop {
        if bought.elapsed() > Duration::from_secs(60) {
            bail!("order not delivered within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let order = orders
            .get_order(pb::GetOrderRequest {
                order_id: order_id.clone(),
            })
            .await?
            .into_inner()
            .order
            .context("no order")?;
        if delivered(order.state) {
            return Ok(Sample {
                verify,
                to_delivered: bought.elapsed(),
                fast_path: false,
            });
        }
        if matches!(
            pb::OrderState::try_from(order.state),
            Ok(pb::OrderState::Dead | pb::OrderState::Rejected)
        ) {
            bail!("order ended in state {}", order.state);
        }
    }
}

/// What one phase produced.
#[derive(Debug, Default)]
struct Phase {
    samples: Vec<Sample>,
    errors: usize,
    first_error: Option<String>,
    /// Ticks not sent because `max_in_flight` purchases were already running.
    not_sent: usize,
    wall: Duration,
    /// Purchases that completed inside the phase's duration.
    completed_in_window: usize,
    peak_rss_kib: u64,
    /// CPU used during the phase, per process (see [`cpu_snapshot`]).
    cpu: Vec<(String, Duration)>,
    commits: i64,
}

impl Phase {
    fn record(&mut self, result: anyhow::Result<Sample>) {
        match result {
            Ok(sample) => self.samples.push(sample),
            Err(e) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(e.to_string());
                }
            }
        }
    }
}

/// Samples VmRSS every 200 ms until dropped; the maximum seen.
struct RssWatch {
    peak: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssWatch {
    fn start() -> Self {
        let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some(kib) = proc_status_kib("VmRSS:") {
                    seen.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Self { peak, task }
    }

    fn stop(self) -> u64 {
        self.task.abort();
        self.peak.load(Ordering::Relaxed)
    }
}

fn proc_status_kib(key: &str) -> Option<u64> {
    status_kib("self", key)
}

/// A `kB` line of `/proc/<pid>/status`.
fn status_kib(pid: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// User + system CPU time of process `pid` (`"self"` for this one).
fn cpu_time_of(pid: &str) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..13)
        .map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// CPU time of every PostgreSQL server process on the machine (backends, WAL writer,
/// checkpointer …): the database's share of the work, whoever else uses the server.
fn postgres_cpu_time() -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|name| name.chars().all(|c| c.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .map(|pid| cpu_time_of(&pid))
        .sum()
}

/// The processes whose CPU a phase accounts: this one, each service process, PostgreSQL.
fn cpu_snapshot(system: &System) -> Vec<(String, Duration)> {
    let own = if system.services.is_empty() {
        "load (all services + emulator + game server + clients)"
    } else {
        "load (emulator + game server + clients)"
    };
    let mut out = vec![(own.to_owned(), cpu_time_of("self"))];
    for service in &system.services {
        if let Some(pid) = service.pid() {
            out.push((
                service.role().binary().to_owned(),
                cpu_time_of(&pid.to_string()),
            ));
        }
    }
    out.push((
        "postgres (all server processes)".to_owned(),
        postgres_cpu_time(),
    ));
    out
}

/// Transactions committed in `database` so far (the statistics lag by up to a second).
async fn commits(storage: &Storage, database: &str) -> anyhow::Result<i64> {
    let row = storage
        .connection()
        .query_one(Statement::from_string(
            storage.backend(),
            format!("SELECT xact_commit AS n FROM pg_stat_database WHERE datname = '{database}'"),
        ))
        .await?
        .context("no pg_stat_database row")?;
    Ok(row.try_get("", "n")?)
}

async fn closed_loop(system: &System, workers: usize, duration: Duration) -> Phase {
    let counter = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let channel = system.channels[w % system.channels.len()].clone();
        let emulator = system.emulator.base.clone();
        let http = system.emulator.http.clone();
        let counter = counter.clone();
        tasks.spawn(async move {
            let mut out = Vec::new();
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let result = purchase(channel.clone(), &emulator, &http, n).await;
                out.push((result, Instant::now() <= deadline));
            }
            out
        });
    }
    let mut phase = Phase::default();
    while let Some(joined) = tasks.join_next().await {
        for (result, in_window) in joined.unwrap_or_default() {
            if in_window && result.is_ok() {
                phase.completed_in_window += 1;
            }
            phase.record(result);
        }
    }
    phase.wall = start.elapsed();
    phase
}

async fn fixed_rate(system: &System, rate: f64, duration: Duration, max_in_flight: usize) -> Phase {
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let deadline = start + duration;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let mut phase = Phase::default();
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut n = 0usize;
    loop {
        ticker.tick().await;
        if Instant::now() >= deadline {
            break;
        }
        if in_flight.load(Ordering::Relaxed) >= max_in_flight {
            phase.not_sent += 1;
            continue;
        }
        let channel = system.channels[n % system.channels.len()].clone();
        let emulator = system.emulator.base.clone();
        let http = system.emulator.http.clone();
        let in_flight = in_flight.clone();
        in_flight.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(async move {
            let result = purchase(channel, &emulator, &http, 1_000_000_000 + n).await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            (result, Instant::now() <= deadline)
        });
        n += 1;
        // Collect finished ones as we go, so the set does not hold every result.
        while let Some(joined) = tasks.try_join_next() {
            if let Ok((result, in_window)) = joined {
                if in_window && result.is_ok() {
                    phase.completed_in_window += 1;
                }
                phase.record(result);
            }
        }
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok((result, in_window)) = joined {
            if in_window && result.is_ok() {
                phase.completed_in_window += 1;
            }
            phase.record(result);
        }
    }
    phase.wall = start.elapsed();
    phase
}

/// Runs `phase` with RSS, CPU and commit accounting around it.
async fn measured<F: std::future::Future<Output = Phase>>(
    system: &System,
    database: &str,
    phase: F,
) -> anyhow::Result<Phase> {
    let commits_before = commits(&system.storage, database).await?;
    let cpu_before = cpu_snapshot(system);
    let rss = RssWatch::start();
    let mut out = phase.await;
    out.peak_rss_kib = rss.stop();
    out.cpu = cpu_snapshot(system)
        .into_iter()
        .zip(cpu_before)
        .map(|((name, after), (_, before))| (name, after.saturating_sub(before)))
        .collect();
    // Let the statistics collector catch up before reading the counter again. The first
    // read's own transaction is counted in the difference; the second's is not.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    out.commits = commits(&system.storage, database).await? - commits_before - 1;
    Ok(out)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn latency_line(name: &str, mut values: Vec<Duration>) {
    values.sort_unstable();
    println!(
        "  {name:<28} p50 {:>8} ms  p99 {:>8} ms  p99.9 {:>8} ms  max {:>8} ms  (n = {})",
        ms(percentile(&values, 50.0)),
        ms(percentile(&values, 99.0)),
        ms(percentile(&values, 99.9)),
        ms(values.last().copied().unwrap_or_default()),
        values.len()
    );
}

fn report(name: &str, phase: &Phase, duration: Duration) -> f64 {
    let done = phase.samples.len();
    let per_second = phase.completed_in_window as f64 / duration.as_secs_f64();
    let fast = phase.samples.iter().filter(|s| s.fast_path).count();
    println!("{name}");
    println!(
        "  delivered {done} purchases ({} within the {} s window: {per_second:.1} purchases/s); \
         errors {}; not sent (in-flight cap) {}; wall {:.1} s",
        phase.completed_in_window,
        duration.as_secs(),
        phase.errors,
        phase.not_sent,
        phase.wall.as_secs_f64()
    );
    if let Some(e) = &phase.first_error {
        println!("  first error: {e}");
    }
    println!(
        "  delivered in VerifyPurchase's reply (fast path): {fast} of {done}; the rest seen later \
         by polling GetOrder (sweeper or a late fast path)"
    );
    latency_line(
        "VerifyPurchase",
        phase.samples.iter().map(|s| s.verify).collect(),
    );
    latency_line(
        "purchase -> delivered",
        phase.samples.iter().map(|s| s.to_delivered).collect(),
    );
    if done > 0 {
        println!(
            "  {:.1} commits per purchase; peak VmRSS of this process {:.1} MiB",
            phase.commits as f64 / done as f64,
            phase.peak_rss_kib as f64 / 1024.0
        );
        for (name, cpu) in &phase.cpu {
            println!(
                "  CPU {name}: {:.1} s = {:.2} ms per purchase",
                cpu.as_secs_f64(),
                cpu.as_secs_f64() * 1000.0 / done as f64
            );
        }
    }
    per_second
}

/// The payment commit's shape (crates/storage/src/payments.rs, deliveries.rs): the replay fence
/// (insert under a unique key, first one wins), the conditional order update, the outbox event.
const PGBENCH_SETUP: &str = "
CREATE TABLE lb_orders (
    id bigint PRIMARY KEY, state text NOT NULL, version bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE lb_store_transactions (
    id uuid PRIMARY KEY, platform text NOT NULL, store_transaction_id text NOT NULL,
    order_id bigint NOT NULL, product_id text NOT NULL, recorded_at timestamptz NOT NULL,
    UNIQUE (platform, store_transaction_id));
CREATE TABLE lb_outbox (
    id bigserial PRIMARY KEY, order_id bigint NOT NULL, kind text NOT NULL, payload jsonb NOT NULL,
    created_at timestamptz NOT NULL, published_at timestamptz);
INSERT INTO lb_orders (id, state) SELECT g, 'created' FROM generate_series(1, 100000) g;
VACUUM ANALYZE lb_orders;
";

const PGBENCH_SCRIPT: &str = "\\set o random(1, 100000)
\\set tx random(1, 2000000000)
BEGIN;
INSERT INTO lb_store_transactions (id, platform, store_transaction_id, order_id, product_id, recorded_at)
  VALUES (gen_random_uuid(), 'google', 'GPA.' || (:client_id)::text || '.' || (:tx)::text, :o, 'gems_100', now())
  ON CONFLICT (platform, store_transaction_id) DO NOTHING;
UPDATE lb_orders SET state = 'paid', version = version + 1, updated_at = now()
  WHERE id = :o AND state IN ('created', 'paid');
INSERT INTO lb_outbox (order_id, kind, payload, created_at)
  VALUES (:o, 'order_paid', jsonb_build_object('order_id', (:o)::bigint), now());
END;
";

/// Runs pgbench on the delivery-transaction script; returns its TPS.
async fn pgbench(args: &Args, db: &BenchDatabase) -> anyhow::Result<f64> {
    let conn = Database::connect(&db.url).await?;
    for statement in PGBENCH_SETUP.split(';').filter(|s| !s.trim().is_empty()) {
        exec(&conn, statement).await?;
    }
    let _ = conn.close().await;
    let script = std::env::temp_dir().join(format!("iap-load-{}.sql", std::process::id()));
    std::fs::write(&script, PGBENCH_SCRIPT)?;
    let output = tokio::process::Command::new(&args.pgbench)
        .args(["-n", "-M", "prepared", "-j", "2"])
        .arg("-c")
        .arg(args.pgbench_clients.to_string())
        .arg("-T")
        .arg(args.pgbench_seconds.to_string())
        .arg("-f")
        .arg(&script)
        .arg(&db.url)
        .output()
        .await
        .with_context(|| format!("running {}", args.pgbench));
    let _ = std::fs::remove_file(&script);
    let output = output?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for line in stdout.lines() {
        if line.starts_with("latency average") || line.starts_with("number of failed") {
            println!("  pgbench: {line}");
        }
    }
    let tps = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .context("no tps line in pgbench's output")?;
    Ok(tps)
}

async fn bench(args: &Args, db: &BenchDatabase) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.duration);
    let system = start(args, &db.url).await?;
    let version: String = {
        let row = system
            .storage
            .connection()
            .query_one(Statement::from_string(
                system.storage.backend(),
                "SHOW server_version",
            ))
            .await?
            .context("no server_version")?;
        row.try_get("", "server_version")?
    };
    println!(
        "load: database {} (PostgreSQL {version}), pool {}, fast-path wait {} ms, {} cores",
        db.name,
        args.pool,
        args.fast_path_wait_ms,
        std::thread::available_parallelism().map_or(0, usize::from)
    );

    // Warm-up: connections, token caches, the first prepared statements.
    for n in 0..20 {
        purchase(
            system.channels[0].clone(),
            &system.emulator.base,
            &system.emulator.http,
            2_000_000_000 + n,
        )
        .await
        .context("warm-up purchase")?;
    }

    let mut closed_rate = None;
    if args.workers > 0 {
        let phase = measured(
            &system,
            &db.name,
            closed_loop(&system, args.workers, duration),
        )
        .await?;
        closed_rate = Some(report(
            &format!("closed loop, {} workers", args.workers),
            &phase,
            duration,
        ));
    }
    if args.rate > 0.0 {
        let phase = measured(
            &system,
            &db.name,
            fixed_rate(&system, args.rate, duration, args.max_in_flight),
        )
        .await?;
        report(
            &format!("fixed offered load, {} purchases/s", args.rate),
            &phase,
            duration,
        );
    }
    for service in &system.services {
        if let Some(pid) = service.pid() {
            println!(
                "peak RSS of {}: VmHWM {:.1} MiB",
                service.role().binary(),
                status_kib(&pid.to_string(), "VmHWM:").unwrap_or(0) as f64 / 1024.0
            );
        }
    }
    let own = if system.services.is_empty() {
        "all services + emulator + game server + load clients"
    } else {
        "emulator + game server + load clients"
    };
    println!(
        "peak RSS of this process ({own}): VmHWM {:.1} MiB",
        proc_status_kib("VmHWM:").unwrap_or(0) as f64 / 1024.0
    );
    system.shutdown.trigger();
    let System {
        mut services,
        work_dir,
        ..
    } = system;
    for service in &mut services {
        service.kill();
    }
    if let Some(dir) = work_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    if args.pgbench_clients > 0 {
        println!(
            "pgbench: delivery-shaped transaction, {} clients, {} s, prepared",
            args.pgbench_clients, args.pgbench_seconds
        );
        let tps = pgbench(args, db).await?;
        println!("  pgbench TPS {tps:.1}");
        if let Some(rate) = closed_rate {
            println!(
                "ratio purchases/s (closed loop) / pgbench TPS = {rate:.1} / {tps:.1} = {:.3}",
                rate / tps
            );
        }
    }
    Ok(())
}
