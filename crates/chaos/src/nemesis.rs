//! The nemesis: one fault after another, for as long as players are buying. Kinds come round
//! in a shuffled cycle (seeded), so every kind happens in every run long enough for one cycle.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use iap_game_server::Faults as GameFaults;
use iap_test_support::private::{PrivatePostgres, PrivateRedis};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::json;

use crate::cluster::{Role, Service};

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// SIGKILL of a service, started again after a short pause.
    Kill(Role),
    /// Redis killed (every lock gone) and started again empty.
    RestartRedis,
    /// FLUSHALL while locks are held.
    FlushRedis,
    /// PostgreSQL stopped `-m immediate` (a crash: open transactions lost, WAL recovery at
    /// start) and started again after a pause.
    RestartPostgres,
    /// Every client connection to PostgreSQL terminated (`pg_terminate_backend`), transactions
    /// in flight included, while the server stays up: pools must notice and reconnect.
    KillDatabaseConnections,
    /// The game server answers UNAVAILABLE to the next grants, before applying them.
    GameRefuses,
    /// The game server applies the next grants but the caller sees UNAVAILABLE (a lost ack).
    GameLosesAcks,
    /// The game server answers after the call deadline for a while.
    GameTooSlow,
    /// The store answers 500/503 to the next calls.
    Store5xx,
    /// The store answers 429 with Retry-After.
    Store429,
    /// The store answers slowly.
    StoreSlow,
    /// The store cuts replies mid-body.
    StoreDropsConnection,
    /// Notifications arrive duplicated and in batches released newest first, for a while.
    NotificationsDuplicatedReordered,
}

impl Fault {
    /// Every kind of fault, once.
    pub fn all() -> Vec<Fault> {
        let mut all = vec![
            Fault::RestartRedis,
            Fault::FlushRedis,
            Fault::RestartPostgres,
            Fault::KillDatabaseConnections,
            Fault::GameRefuses,
            Fault::GameLosesAcks,
            Fault::GameTooSlow,
            Fault::Store5xx,
            Fault::Store429,
            Fault::StoreSlow,
            Fault::StoreDropsConnection,
            Fault::NotificationsDuplicatedReordered,
        ];
        all.extend(Role::ALL.map(Fault::Kill));
        all
    }

    /// One cycle of the nemesis: every kind once, and process kills, the heart of it, twice.
    fn cycle() -> Vec<Fault> {
        let mut cycle = Fault::all();
        cycle.extend(Role::ALL.map(Fault::Kill));
        cycle
    }
}

/// What the nemesis works on.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) services: Vec<Service>,
    pub(crate) postgres: PrivatePostgres,
    pub(crate) redis: PrivateRedis,
    pub(crate) game: Arc<GameFaults>,
    pub(crate) emulator: String,
    pub(crate) http: reqwest::Client,
    /// Notification delivery mode outside faults (the stores' resends).
    pub(crate) normal_notifications: serde_json::Value,
    /// The game server's call deadline, to be slower than.
    pub(crate) call_deadline: Duration,
    /// Services found dead that no fault killed.
    pub(crate) unexpected_exits: Vec<String>,
}

impl Cluster {
    fn service(&mut self, role: Role) -> &mut Service {
        self.services
            .iter_mut()
            .find(|s| s.role == role)
            .expect("every role runs")
    }

    /// Starts a service, retrying while it cannot come up (PostgreSQL still recovering, say).
    pub(crate) async fn start(&mut self, role: Role) -> anyhow::Result<()> {
        let http = self.http.clone();
        let mut last = None;
        for _ in 0..30 {
            match self.service(role).up(&http).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("{role:?} did not start")))
    }

    /// Restarts whatever died without being killed, and notes it.
    async fn watchdog(&mut self) -> anyhow::Result<()> {
        let mut dead = Vec::new();
        for service in &mut self.services {
            if let Some(status) = service.exited() {
                dead.push((service.role, status));
            }
        }
        for (role, status) in dead {
            self.unexpected_exits
                .push(format!("{} exited on its own ({status})", role.binary()));
            self.start(role).await?;
        }
        Ok(())
    }

    async fn emulator_put(&self, path: &str, body: serde_json::Value) -> anyhow::Result<()> {
        let reply = self
            .http
            .put(format!("{}/emulator{path}", self.emulator))
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(reply.status().is_success(), "{path}: {}", reply.status());
        Ok(())
    }

    async fn store_fault(
        &self,
        rng: &mut StdRng,
        kind: &str,
        latency_ms: u64,
    ) -> anyhow::Result<()> {
        let store = ["/apple", "/google", "/huawei"][rng.gen_range(0..3)];
        let reply = self
            .http
            .post(format!("{}/emulator/faults", self.emulator))
            .json(&json!({ "path_prefix": store, "kind": kind,
                "count": rng.gen_range(1..=15), "latency_ms": latency_ms }))
            .send()
            .await?;
        anyhow::ensure!(reply.status().is_success(), "arm fault: {}", reply.status());
        Ok(())
    }

    /// Everything back to normal: services up, faults cleared, notifications normal (a fault
    /// that stops PostgreSQL or Redis starts it again before it returns).
    pub(crate) async fn heal(&mut self) -> anyhow::Result<()> {
        for role in Role::ALL {
            self.start(role).await?;
        }
        self.game.clear();
        self.http
            .delete(format!("{}/emulator/faults", self.emulator))
            .send()
            .await?;
        self.emulator_put("/notifications/mode", self.normal_notifications.clone())
            .await
    }

    /// Injects one fault and waits out its down time.
    async fn inject(&mut self, fault: Fault, rng: &mut StdRng) -> anyhow::Result<()> {
        match fault {
            Fault::Kill(role) => {
                self.service(role).kill();
                tokio::time::sleep(Duration::from_millis(rng.gen_range(100..1500))).await;
                self.start(role).await?;
            }
            Fault::RestartRedis => {
                self.redis.stop_server();
                tokio::time::sleep(Duration::from_millis(rng.gen_range(300..2000))).await;
                tokio::task::block_in_place(|| self.redis.start_server());
            }
            Fault::FlushRedis => {
                let client = redis::Client::open(self.redis.url())?;
                let mut connection = client.get_multiplexed_async_connection().await?;
                redis::cmd("FLUSHALL")
                    .query_async::<()>(&mut connection)
                    .await?;
            }
            Fault::RestartPostgres => {
                // pg_ctl waits; the harness runs on a multi-threaded runtime.
                tokio::task::block_in_place(|| self.postgres.stop_server());
                tokio::time::sleep(Duration::from_millis(rng.gen_range(500..3000))).await;
                tokio::task::block_in_place(|| self.postgres.start_server());
            }
            Fault::KillDatabaseConnections => {
                use sea_orm::{ConnectionTrait, Database, Statement};
                let db = Database::connect(self.postgres.url()).await?;
                db.execute(Statement::from_string(
                    db.get_database_backend(),
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
                ))
                .await?;
                db.close().await?;
            }
            Fault::GameRefuses => self
                .game
                .fail_next_grants(rng.gen_range(1..=20), tonic::Code::Unavailable),
            Fault::GameLosesAcks => self
                .game
                .lose_next_grant_acks(rng.gen_range(1..=10), tonic::Code::Unavailable),
            Fault::GameTooSlow => {
                self.game
                    .set_reply_delay(self.call_deadline + Duration::from_millis(300));
                tokio::time::sleep(Duration::from_millis(rng.gen_range(500..2500))).await;
                self.game.set_reply_delay(Duration::ZERO);
            }
            Fault::Store5xx => {
                let kind = if rng.gen_bool(0.5) {
                    "http500"
                } else {
                    "http503"
                };
                self.store_fault(rng, kind, 0).await?;
            }
            Fault::Store429 => self.store_fault(rng, "http429", 0).await?,
            Fault::StoreSlow => self.store_fault(rng, "latency", 1500).await?,
            Fault::StoreDropsConnection => self.store_fault(rng, "drop_connection", 0).await?,
            Fault::NotificationsDuplicatedReordered => {
                let mut mode = self.normal_notifications.clone();
                mode["duplicate"] = json!(rng.gen_range(1..=2));
                mode["reverse_batches"] = json!(rng.gen_range(2..=4));
                self.emulator_put("/notifications/mode", mode).await?;
                tokio::time::sleep(Duration::from_millis(rng.gen_range(1000..4000))).await;
                self.emulator_put("/notifications/mode", self.normal_notifications.clone())
                    .await?;
            }
        }
        Ok(())
    }
}

/// Runs faults until `stop`, one every `every` (±50 %), counting full cycles (every kind once)
/// in `cycles`; returns the cluster and what it did.
pub(crate) async fn run(
    mut cluster: Cluster,
    seed: u64,
    every: Duration,
    stop: Arc<AtomicBool>,
    cycles: Arc<AtomicU32>,
) -> (Cluster, BTreeMap<Fault, u32>, Vec<String>) {
    // Its own stream, so the purchases drawn do not depend on how many faults ran.
    let mut rng = StdRng::seed_from_u64(seed ^ 0x006e_656d_6573_6973);
    let mut injected = BTreeMap::new();
    let mut errors = Vec::new();
    let mut cycle = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let pause = every.mul_f64(rng.gen_range(0.5..1.5));
        tokio::time::sleep(pause).await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Err(e) = cluster.watchdog().await {
            errors.push(format!("watchdog: {e:#}"));
        }
        if cycle.is_empty() {
            cycle = Fault::cycle();
            cycle.shuffle(&mut rng);
        }
        let fault = cycle.pop().expect("refilled above");
        match cluster.inject(fault, &mut rng).await {
            Ok(()) => *injected.entry(fault).or_insert(0) += 1,
            Err(e) => errors.push(format!("{fault:?}: {e:#}")),
        }
        if cycle.is_empty() {
            cycles.fetch_add(1, Ordering::Relaxed);
        }
    }
    (cluster, injected, errors)
}
