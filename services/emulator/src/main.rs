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
    /// Keep purchases, keys and subscriptions in this JSON file across restarts.
    #[arg(long, value_name = "FILE")]
    state_file: Option<std::path::PathBuf>,
    /// POST App Store Server Notifications V2 here.
    #[arg(long, value_name = "URL")]
    notify_apple_url: Option<String>,
    /// POST Google Play RTDN (Pub/Sub push bodies) here.
    #[arg(long, value_name = "URL")]
    notify_google_url: Option<String>,
    /// POST Huawei IAP notifications here.
    #[arg(long, value_name = "URL")]
    notify_huawei_url: Option<String>,
    /// Print a configuration file for iap-verifier, iap-delivery and iap-scheduler whose demo
    /// app's three stores point at this emulator (at --public-url), save the keys to
    /// --state-file, and exit.
    #[arg(long)]
    print_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.print_config {
        return print_config(&args);
    }
    let (listen, public_url, state_file) = (
        args.listen,
        args.public_url.clone(),
        args.state_file.clone(),
    );
    let notify_urls: Vec<(iap_emulator::Store, String)> = [
        (iap_emulator::Store::Apple, args.notify_apple_url.clone()),
        (iap_emulator::Store::Google, args.notify_google_url.clone()),
        (iap_emulator::Store::Huawei, args.notify_huawei_url.clone()),
    ]
    .into_iter()
    .filter_map(|(store, url)| url.map(|url| (store, url)))
    .collect();
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
                notify_urls,
                state_file,
            };
            iap_emulator::serve(listener, config, shutdown.wait_owned())
                .await
                .map_err(|e| StartupError::Server(format!("emulator: {e}")))
        },
    )
}

/// `--print-config`: the emulator's world (made now, or the one in --state-file) as the split
/// services' configuration, on stdout.
fn print_config(args: &Args) -> ExitCode {
    let base_url = args.public_url.clone().unwrap_or_else(|| {
        format!(
            "http://{}",
            args.listen.unwrap_or(Settings::default().emulator.listen)
        )
    });
    let printed =
        iap_emulator::Emulator::open(base_url, args.state_file.clone()).and_then(|emulator| {
            let config = emulator
                .split_services_config(iap_emulator::DEMO_APP, iap_emulator::DEMO_HUAWEI_APP_ID);
            emulator.save()?;
            Ok(config)
        });
    match printed {
        Ok(config) => {
            print!("{config}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("iap-emulator: cannot print the configuration: {e}");
            ExitCode::FAILURE
        }
    }
}
