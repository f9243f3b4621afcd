//! `iap-verifier` binary: the verifier role alone.

use std::process::ExitCode;

use clap::Parser;
use iap_app::{App, Roles};
use iap_runtime::Settings;
use iap_runtime::startup::ConfigArgs;

/// OrderService, VerificationService and AdminService over gRPC; store notifications over HTTP.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    iap_runtime::run_main(
        "iap-verifier",
        &args.config,
        &Settings::default(),
        |settings, shutdown| async move {
            let app = App::build(&settings, Roles::VERIFIER).await?;
            app.run_until_stopped(shutdown).await
        },
    )
}
