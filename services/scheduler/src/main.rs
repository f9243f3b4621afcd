//! `iap-scheduler` binary: the scheduler role alone.

use std::process::ExitCode;

use clap::Parser;
use iap_app::{App, Roles};
use iap_runtime::Settings;
use iap_runtime::startup::ConfigArgs;

/// Background jobs: the order sweep, store confirmation deadlines, reconciliation, subscriptions.
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
        |settings, shutdown| async move {
            let app = App::build(&settings, Roles::SCHEDULER).await?;
            app.run_until_stopped(shutdown).await
        },
    )
}
