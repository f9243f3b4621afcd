//! `iap-emulator` binary.

use std::process::ExitCode;

use clap::Parser;
use iap_runtime::startup::ConfigArgs;
use iap_runtime::{Settings, StartupError};

/// A local App Store, Google Play and Huawei IAP for tests and demos.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Listen address (overrides `emulator.listen`).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// URL clients use to reach the emulator, when it differs from the listen address
    /// (behind Docker port mapping, for instance).
    #[arg(long)]
    public_url: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (listen, public_url) = (args.listen, args.public_url.clone());
    iap_runtime::run_main(
        "iap-emulator",
        &args.config,
        &Settings::default(),
        move |settings, shutdown| async move {
            let addr = listen.unwrap_or(settings.emulator.listen);
            let listener = iap_runtime::http::bind("the emulator", addr).await?;
            let local = listener
                .local_addr()
                .map_err(|e| StartupError::Server(e.to_string()))?;
            tracing::info!(http = %local, "iap-emulator listening");
            let config = iap_emulator::EmulatorConfig {
                public_base_url: public_url,
            };
            iap_emulator::serve(listener, config, shutdown.wait_owned())
                .await
                .map_err(|e| StartupError::Server(format!("emulator: {e}")))
        },
    )
}
