//! `iap-verifier` binary.

use std::process::ExitCode;

use clap::Parser;
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
        iap_verifier::run,
    )
}
