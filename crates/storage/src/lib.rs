//! Storage adapter: sea-orm entities and repositories implementing the domain's storage ports,
//! on PostgreSQL (the system of record) or SQLite (the embedded default). Every state change is a
//! conditional update decided by its affected-row count, in one transaction with its events.
//! Depends on `iap-domain` and `iap-migrations` only.

mod admin;
mod compensation_match;
mod convert;
mod deliveries;
pub mod entity;
mod error;
mod gauges;
mod jobs;
mod notifications;
mod orders;
mod partial_revocations;
mod payments;
mod refund_marks;
mod refund_reversals;
mod subscriptions;
mod transition;
mod unclaimed;

use std::time::Duration;

use sea_orm::Statement;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection};

pub use deliveries::Backlog;
pub use error::{ConnectError, classify};
pub use gauges::{OPEN_STATES, OpenOrders, PendingNotifications};

/// Connection pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Most connections (SQLite always uses one: it has a single writer anyway, and one
    /// connection rules out lock upgrades failing with SQLITE_BUSY).
    pub max_connections: u32,
    /// How long to wait for a connection before answering UNAVAILABLE.
    pub acquire_timeout: Duration,
    /// How long to wait for the server when connecting.
    pub connect_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// The database, cheap to clone (a pooled handle).
#[derive(Debug, Clone)]
pub struct Storage {
    db: DatabaseConnection,
}

impl Storage {
    /// Connects and checks the server answers. `url` is `postgres://…` or `sqlite://…`.
    pub async fn connect(url: &str, pool: &PoolOptions) -> Result<Self, ConnectError> {
        let is_sqlite = url.starts_with("sqlite:");
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(if is_sqlite { 1 } else { pool.max_connections })
            .min_connections(if is_sqlite {
                1
            } else {
                2.min(pool.max_connections)
            })
            .acquire_timeout(pool.acquire_timeout)
            .connect_timeout(pool.connect_timeout)
            .sqlx_logging(false);
        let db = Database::connect(options)
            .await
            .map_err(ConnectError::from_db)?;
        let storage = Self { db };
        if is_sqlite {
            // WAL keeps readers (psql-like inspection, backups) from blocking the writer.
            storage
                .execute_raw("PRAGMA journal_mode = WAL")
                .await
                .map_err(ConnectError::from_db)?;
            storage
                .execute_raw("PRAGMA synchronous = FULL")
                .await
                .map_err(ConnectError::from_db)?;
        }
        storage.ping().await.map_err(ConnectError::from_db)?;
        Ok(storage)
    }

    /// Wraps an existing connection.
    pub fn from_connection(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), sea_orm::DbErr> {
        use iap_migrations::MigratorTrait;
        iap_migrations::Migrator::up(&self.db, None).await
    }

    /// Round-trips a trivial query.
    pub async fn ping(&self) -> Result<(), sea_orm::DbErr> {
        self.db.ping().await
    }

    /// Which engine this is.
    pub fn backend(&self) -> DatabaseBackend {
        self.db.get_database_backend()
    }

    /// The underlying connection (tests and benchmarks).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    async fn execute_raw(&self, sql: &str) -> Result<(), sea_orm::DbErr> {
        self.db
            .execute(Statement::from_string(self.backend(), sql.to_owned()))
            .await
            .map(|_| ())
    }

    /// Closes the pool, waiting for connections in use.
    pub async fn close(self) {
        let _ = self.db.close().await;
    }
}
