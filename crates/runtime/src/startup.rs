//! The common `main` of every binary: read settings, start logging, run, and turn a startup
//! failure into one line on stderr and a sysexits-style exit code, so an orchestrator's crash
//! loop shows the cause at a glance.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::settings::{ConfigError, Settings};
use crate::shutdown::Shutdown;
use crate::telemetry;

/// `EX_CONFIG`: the configuration is wrong.
pub const EXIT_CONFIG: u8 = 78;
/// `EX_UNAVAILABLE`: a dependency (database, port) is not available.
pub const EXIT_UNAVAILABLE: u8 = 69;
/// `EX_SOFTWARE`: anything else.
pub const EXIT_SOFTWARE: u8 = 70;

/// Why a process could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Bad configuration.
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    /// The database could not be reached or refused the connection.
    #[error("{0}")]
    Database(String),
    /// A listen address could not be bound.
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        /// Which endpoint.
        what: String,
        /// Address.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// A server failed while running.
    #[error("{0}")]
    Server(String),
}

impl StartupError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Config(_) => EXIT_CONFIG,
            StartupError::Database(_) | StartupError::Bind { .. } => EXIT_UNAVAILABLE,
            StartupError::Server(_) => EXIT_SOFTWARE,
        }
    }
}

/// Options every binary accepts.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// TOML configuration file (environment variables `IAP_*` override it).
    #[arg(long, short = 'c', env = "IAP_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Loads settings (over `defaults`), starts logging and a multi-threaded runtime, installs the
/// signal handler and runs `run` to completion. Errors become one stderr line and an exit code.
pub fn run_main<F, Fut>(name: &str, args: &ConfigArgs, defaults: &Settings, run: F) -> ExitCode
where
    F: FnOnce(Settings, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), StartupError>>,
{
    let settings = match Settings::load_with_defaults(defaults, args.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => return fail(name, &StartupError::Config(e)),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return fail(
                name,
                &StartupError::Server(format!("cannot start the runtime: {e}")),
            );
        }
    };
    // Inside the runtime: the optional span exporter opens its gRPC channel there.
    runtime.block_on(async { telemetry::init_logging(name, &settings.telemetry) });
    let result = runtime.block_on(async move {
        let shutdown = Shutdown::on_signals();
        run(settings, shutdown).await
    });
    telemetry::flush();
    match result {
        Ok(()) => {
            tracing::info!("{name} stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(name, &e),
    }
}

fn fail(name: &str, err: &StartupError) -> ExitCode {
    // Printed directly (not only logged): logging may not be set up yet, and the operator's
    // terminal or `kubectl logs` must show it even with logs filtered.
    eprintln!("{name}: {err}");
    ExitCode::from(err.exit_code())
}
