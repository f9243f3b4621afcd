//! `iap-game-server`: the reference game server as a process, for demos and local runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use iap_game_server::Ledger;
use tracing_subscriber::EnvFilter;

/// Reference game server implementing iap.v1.GameServerService with an idempotent ledger.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to serve gRPC on.
    #[arg(
        long,
        env = "IAP_GAME_SERVER_LISTEN",
        default_value = "127.0.0.1:50070"
    )]
    listen: SocketAddr,
    /// Ledger file (JSON Lines). Without it the ledger lives in memory and is lost on exit.
    #[arg(long, env = "IAP_GAME_SERVER_LEDGER")]
    ledger: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let ledger = match &args.ledger {
        Some(path) => match Ledger::open(path) {
            Ok(ledger) => ledger,
            Err(error) => {
                eprintln!("iap-game-server: {error}");
                return ExitCode::from(74);
            }
        },
        None => {
            tracing::warn!("no --ledger given: grants are kept in memory and lost on exit");
            Ledger::in_memory()
        }
    };
    let server = match iap_game_server::spawn(args.listen, ledger).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("iap-game-server: {error}");
            return ExitCode::from(69);
        }
    };
    println!("iap-game-server listening on {}", server.endpoint());

    let signal = shutdown_signal().await;
    tracing::info!(signal, "shutting down");
    match server.shutdown().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("iap-game-server: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Waits for Ctrl-C or SIGTERM and names the one that came.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            },
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
