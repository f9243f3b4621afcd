//! `iap-delivery` binary: the delivery role alone.

use std::process::ExitCode;

use clap::Parser;
use iap_app::{App, Roles};
use iap_runtime::Settings;
use iap_runtime::startup::ConfigArgs;

/// DeliveryService: exactly-once grants to the game server, then store confirmation.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
}

fn main() -> ExitCode {
    // Crash-matrix builds read `FAILPOINTS` (e.g. `deliver::after_grant=return(abort)`).
    #[cfg(feature = "failpoints")]
    let _failpoints = iap_domain::fail::FailScenario::setup();
    let args = Args::parse();
    iap_runtime::run_main(
        "iap-delivery",
        &args.config,
        &Settings::default(),
        |settings, shutdown| async move {
            let app = App::build(&settings, Roles::DELIVERY).await?;
            app.run_until_stopped(shutdown).await
        },
    )
}
