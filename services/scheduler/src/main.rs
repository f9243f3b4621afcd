//! `iap-scheduler` binary.

use std::process::ExitCode;

use clap::Parser;
use iap_runtime::Settings;
use iap_runtime::startup::ConfigArgs;

/// Background jobs: sweeps, store confirmation deadlines, reconciliation, subscriptions.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    iap_runtime::run_main(
        "iap-scheduler",
        &args.config,
        &Settings::default(),
        iap_scheduler::run,
    )
}
