//! `iap-migrate`: applies or inspects the schema migrations.
//!
//! The database URL comes from `--database-url`, else `IAP_DATABASE_URL` (the services'
//! variable), else `DATABASE_URL`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sea_orm_migration::MigratorTrait;
use sea_orm_migration::sea_orm::{ConnectOptions, Database};

#[derive(Debug, Parser)]
#[command(
    name = "iap-migrate",
    about = "Run the IAP database migrations",
    version
)]
struct Cli {
    /// postgres://… or sqlite://…?mode=rwc
    #[arg(long, env = "IAP_DATABASE_URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply every pending migration.
    Up,
    /// Roll back the last N migrations (default 1).
    Down {
        #[arg(default_value_t = 1)]
        steps: u32,
    },
    /// List applied and pending migrations.
    Status,
    /// Drop every table and apply all migrations again (destroys data).
    Fresh,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(url) = cli
        .database_url
        .or_else(|| std::env::var("IAP_DATABASE__URL").ok())
        .or_else(|| std::env::var("DATABASE_URL").ok())
    else {
        eprintln!("iap-migrate: no database URL (use --database-url or IAP_DATABASE_URL)");
        return ExitCode::from(78);
    };
    let mut options = ConnectOptions::new(url);
    options.sqlx_logging(false);
    let db = match Database::connect(options).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("iap-migrate: cannot connect to the database: {e}");
            return ExitCode::from(69);
        }
    };
    let result = match cli.command {
        Command::Up => iap_migrations::Migrator::up(&db, None).await,
        Command::Down { steps } => iap_migrations::Migrator::down(&db, Some(steps)).await,
        Command::Fresh => iap_migrations::Migrator::fresh(&db).await,
        Command::Status => iap_migrations::Migrator::status(&db).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iap-migrate: {e}");
            ExitCode::FAILURE
        }
    }
}
