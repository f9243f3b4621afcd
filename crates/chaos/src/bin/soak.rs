//! `soak`: the chaos soak from the command line (see `iap_chaos` and docs/benchmarks.md).
//!
//! ```text
//! cargo build --release --bins
//! target/release/soak --duration 1800 --rate 20 --seed 7
//! ```
//!
//! Exit code 0 when every invariant held, 1 when one broke (the report says which, and where
//! the services' logs are), 2 when the harness itself could not run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    about = "Chaos soak: purchases across three stores while everything fails; then the exactly-once invariants"
)]
struct Args {
    /// Seconds players keep buying while faults are injected.
    #[arg(long, default_value_t = 300)]
    duration: u64,
    /// New purchases per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Purchases in play at most at once.
    #[arg(long, default_value_t = 200)]
    max_in_flight: usize,
    /// Mean milliseconds between faults.
    #[arg(long, default_value_t = 1500)]
    fault_every_ms: u64,
    /// Keep buying past --duration until every kind of fault happened this many times.
    #[arg(long, default_value_t = 1)]
    min_fault_cycles: u32,
    /// Seconds the system may take to settle after the faults stop.
    #[arg(long, default_value_t = 180)]
    settle_timeout: u64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory of iap-verifier, iap-delivery and iap-scheduler (default: beside this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let bin_dir = args.bin_dir.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(PathBuf::from))
            .unwrap_or_default()
    });
    let config = iap_chaos::SoakConfig {
        bin_dir,
        duration: Duration::from_secs(args.duration),
        rate: args.rate,
        max_in_flight: args.max_in_flight,
        fault_every: Duration::from_millis(args.fault_every_ms),
        min_fault_cycles: args.min_fault_cycles,
        settle_timeout: Duration::from_secs(args.settle_timeout),
        seed: args.seed,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(iap_chaos::run(config)) {
        Ok(report) => {
            println!("{report}");
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("soak: the harness could not run: {e:#}");
            ExitCode::from(2)
        }
    }
}
