//! `iapd`: every role in one process. With no configuration it is the embedded default: a SQLite
//! file in the working directory, migrations applied at start, an in-process lock, and a demo
//! catalog, so a newcomer can create and inspect orders at once.

mod demo;

use std::process::ExitCode;

use base64::Engine;
use clap::Parser;

use iap_runtime::settings::{AppSettings, ProductSettings, SandboxSettings};
use iap_runtime::startup::ConfigArgs;
use iap_runtime::{Settings, Shutdown, StartupError};

/// All roles (verifier, delivery, scheduler) in one process; SQLite by default.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Demo: start everything with the embedded emulator and reference game server, make one
    /// purchase per store, wait until each is delivered, print them, and keep running.
    #[arg(long)]
    demo: bool,
    /// With --demo: stop once the purchases are printed (exit 0 when all three were delivered).
    #[arg(long, requires = "demo")]
    exit: bool,
}

/// What `--demo` asked for.
#[derive(Debug, Clone, Copy)]
struct DemoMode {
    exit_after: bool,
}

/// The demo app every embedded default carries when no app is configured.
const DEMO_APP: &str = "com.example.game";
/// Its AppGallery Connect app id at the embedded emulator.
const DEMO_HUAWEI_APP_ID: &str = "100000001";
/// The embedded reference game server's ledger, beside the SQLite file.
const DEMO_GAME_LEDGER: &str = "iapd-game-ledger.jsonl";
/// The embedded emulator's keys, purchases and subscriptions, beside `iapd.db`: a restart keeps
/// them, so purchases made before it still verify after it.
const EMBEDDED_EMULATOR_STATE: &str = "iapd-emulator.json";

fn main() -> ExitCode {
    let args = Args::parse();
    let demo = args.demo.then_some(DemoMode {
        exit_after: args.exit,
    });
    iap_runtime::run_main(
        "iapd",
        &args.config,
        &embedded_defaults(),
        move |settings, shutdown| run(settings, shutdown, demo),
    )
}

fn embedded_defaults() -> Settings {
    let mut settings = Settings::default();
    settings.database.url = Some("sqlite://iapd.db?mode=rwc".to_owned());
    settings.database.migrate_on_start = true;
    settings.emulator.embedded = true;
    settings
}

/// What the demo app needs from the embedded emulator to trust its stores.
struct EmulatedStores {
    apple_root: Vec<u8>,
    apple_shared_secret: String,
    apple_api_key: (String, String, String),
    google_account: String,
    google_license_key: String,
    huawei: (String, String),
    base_url: String,
}

fn demo_app(emulator: Option<&EmulatedStores>) -> AppSettings {
    let product = |kind: &str, max_quantity| ProductSettings {
        kind: kind.to_owned(),
        max_quantity,
        subscription_group: None,
    };
    AppSettings {
        products: [
            ("gems_100".to_owned(), product("consumable", 10)),
            ("no_ads".to_owned(), product("non_consumable", 1)),
            ("premium_monthly".to_owned(), product("auto_renewable", 1)),
        ]
        .into(),
        // The demo buys from the emulator, whose purchases are sandbox purchases.
        sandbox: SandboxSettings {
            allow_all: true,
            users: Vec::new(),
        },
        flag_repeat_trials: true,
        max_open_orders_per_user: 20,
        compensation_match_window_secs: 3 * 24 * 3600,
        partial_refund_rounding: iap_domain::refunds::PartialRefundRounding::default(),
        // With the embedded emulator, App Store purchases made there verify here.
        apple: emulator.map(|stores| iap_platform_apple::AppleAppConfig {
            bundle_id: DEMO_APP.to_owned(),
            app_apple_id: Some(iap_emulator::DEFAULT_APP_APPLE_ID),
            trust_apple_root: false,
            extra_roots_base64: vec![
                base64::engine::general_purpose::STANDARD.encode(&stores.apple_root),
            ],
            shared_secret: Some(stores.apple_shared_secret.clone()),
            verify_receipt_production_url: format!(
                "{}/apple/production/verifyReceipt",
                stores.base_url
            ),
            verify_receipt_sandbox_url: format!("{}/apple/sandbox/verifyReceipt", stores.base_url),
            api: Some(iap_platform_apple::server_api::ApiCredentials {
                issuer_id: stores.apple_api_key.0.clone(),
                key_id: stores.apple_api_key.1.clone(),
                private_key_pem: stores.apple_api_key.2.clone(),
            }),
            api_production_url: format!("{}/apple/production", stores.base_url),
            api_sandbox_url: format!("{}/apple/sandbox", stores.base_url),
            consumption: None,
        }),
        google: emulator.map(|stores| iap_platform_google::GoogleAppConfig {
            package_name: DEMO_APP.to_owned(),
            service_account_json: stores.google_account.clone(),
            license_key_base64: Some(stores.google_license_key.clone()),
            api_root_url: format!("{}/google/", stores.base_url),
            // The embedded emulator's pushes are not OIDC-signed.
            push_audience: None,
            push_service_account: None,
            push_certs_url: iap_platform_google::push::GOOGLE_CERTS_URL.to_owned(),
        }),
        huawei: emulator.map(|stores| iap_platform_huawei::HuaweiAppConfig {
            app_id: DEMO_HUAWEI_APP_ID.to_owned(),
            client_secret: stores.huawei.0.clone(),
            public_key_base64: stores.huawei.1.clone(),
            prefer_pss: true,
            token_url: format!("{}/huawei/oauth2/v3/token", stores.base_url),
            orders_root_url: format!("{}/huawei/orders", stores.base_url),
            subscriptions_root_url: format!("{}/huawei/subscr", stores.base_url),
            apptouch_orders_root_url: format!("{}/huawei/orders-at", stores.base_url),
            apptouch_subscriptions_root_url: format!("{}/huawei/subscr-at", stores.base_url),
        }),
    }
}

async fn run(
    mut settings: Settings,
    shutdown: Shutdown,
    demo: Option<DemoMode>,
) -> Result<(), StartupError> {
    if demo.is_some() {
        // The demo buys at the embedded stores for the demo app, and is granted by the
        // reference game server: a configuration of real apps or another game server would
        // make it buy what nobody can verify or grant.
        if !settings.apps.is_empty() || settings.delivery.game_server_url.is_some() {
            return Err(StartupError::Config(iap_runtime::ConfigError::Invalid(
                "--demo runs with the demo app and the reference game server: leave [apps] and \
                 delivery.game_server_url unset"
                    .into(),
            )));
        }
        settings.emulator.embedded = true;
    }
    // The embedded emulator starts first: the demo app trusts its App Store root.
    // The HTTP port first: the embedded emulator pushes its App Store notifications there.
    let http_listener = iap_runtime::http::bind("HTTP", settings.verifier.http_listen).await?;
    let http_addr = http_listener
        .local_addr()
        .map_err(|e| StartupError::Server(e.to_string()))?;
    let metrics_listener =
        iap_runtime::http::bind("metrics", settings.verifier.metrics_listen).await?;
    let metrics_addr = metrics_listener
        .local_addr()
        .map_err(|e| StartupError::Server(e.to_string()))?;
    let emulator = if settings.emulator.embedded {
        let listener = iap_runtime::http::bind("the emulator", settings.emulator.listen).await?;
        let config = iap_emulator::EmulatorConfig {
            notify_urls: vec![(
                iap_emulator::Store::Apple,
                format!("http://{http_addr}/notifications/apple"),
            )],
            state_file: Some(EMBEDDED_EMULATOR_STATE.into()),
            ..iap_emulator::EmulatorConfig::default()
        };
        let (emulator, router) = iap_emulator::build(&listener, config)
            .map_err(|e| StartupError::Server(format!("emulator: {e}")))?;
        let stores = EmulatedStores {
            apple_root: emulator.apple_root_der(),
            apple_shared_secret: emulator.apple_shared_secret(DEMO_APP),
            apple_api_key: emulator.apple_api_key(),
            google_account: emulator.google_service_account_json(),
            google_license_key: emulator.google_license_key(DEMO_APP),
            huawei: emulator.huawei_credentials(DEMO_HUAWEI_APP_ID),
            base_url: emulator.base_url().to_owned(),
        };
        // The keys read above were made now if the state file had none: keep them.
        emulator
            .save()
            .map_err(|e| StartupError::Server(format!("emulator state: {e}")))?;
        Some((listener, router, emulator.base_url().to_owned(), stores))
    } else {
        None
    };
    if settings.apps.is_empty() {
        tracing::info!(app = DEMO_APP, "no apps configured: using the demo catalog");
        let stores = emulator.as_ref().map(|(_, _, _, stores)| stores);
        settings.apps.insert(DEMO_APP.to_owned(), demo_app(stores));
    }
    // No game server configured: the reference one runs in process, with its ledger on disk
    // beside the database, so a purchase made at the emulator is granted at once.
    let game_server = match &settings.delivery.game_server_url {
        Some(_) => None,
        None => {
            let ledger = iap_game_server::Ledger::open(DEMO_GAME_LEDGER)
                .map_err(|e| StartupError::Server(format!("reference game server: {e}")))?;
            let handle = iap_game_server::spawn(([127, 0, 0, 1], 0).into(), ledger)
                .await
                .map_err(|e| StartupError::Server(format!("reference game server: {e}")))?;
            settings.delivery.game_server_url = Some(handle.endpoint());
            Some(handle)
        }
    };

    // Every role in this process, wired once, on the HTTP and metrics ports bound above.
    let app = iap_app::App::build_on(
        &settings,
        iap_app::Roles::ALL,
        iap_app::BoundListeners {
            http: Some(http_listener),
            metrics: Some(metrics_listener),
            grpc: None,
        },
    )
    .await?;
    let grpc_addr = app
        .addresses()
        .grpc
        .ok_or_else(|| StartupError::Server("iapd serves gRPC".into()))?;
    print_banner(
        &iap_runtime::database::redact(settings.database_url()?),
        grpc_addr,
        http_addr,
        metrics_addr,
        emulator.as_ref().map(|(_, _, url, _)| url.as_str()),
        game_server
            .as_ref()
            .map(iap_game_server::GameServerHandle::endpoint),
        settings.auth.tls_cert_file.is_none(),
    );
    let emulator_url = emulator.as_ref().map(|(_, _, url, _)| url.clone());
    let demo_shutdown = shutdown.clone();
    let app_run = async {
        let result = app.run_until_stopped(shutdown.clone()).await;
        if let Some(game) = game_server {
            let _ = game.shutdown().await;
        }
        result
    };
    let emulator_server = {
        let shutdown = shutdown.clone();
        async move {
            match emulator {
                Some((listener, router, _, _)) => {
                    iap_runtime::http::serve(listener, router, shutdown)
                        .await
                        .map_err(|e| StartupError::Server(format!("emulator: {e}")))
                }
                None => Ok(()),
            }
        }
    };
    let demo_run = run_demo(
        demo,
        demo::DemoTargets {
            grpc: grpc_addr,
            emulator: emulator_url.unwrap_or_default(),
            app_id: DEMO_APP.to_owned(),
            huawei_app_id: DEMO_HUAWEI_APP_ID.to_owned(),
        },
        metrics_addr,
        demo_shutdown,
    );
    let (result, emulator_result, demo_result) = tokio::join!(app_run, emulator_server, demo_run);
    result.and(emulator_result).and(demo_result)
}

/// Runs the demo purchases once the servers listen (they are bound already, so the gRPC
/// connection succeeds as soon as the server task runs). With `--exit` the process stops after
/// the report, failing if any purchase was not delivered; otherwise it keeps serving.
async fn run_demo(
    demo: Option<DemoMode>,
    targets: demo::DemoTargets,
    metrics: std::net::SocketAddr,
    shutdown: Shutdown,
) -> Result<(), StartupError> {
    let Some(mode) = demo else {
        return Ok(());
    };
    let outcome = demo::run(&targets).await;
    let result = match outcome {
        Ok(orders) => {
            println!("{}", demo::report(&orders, targets.grpc, metrics));
            Ok(())
        }
        Err(e) => {
            eprintln!("iapd --demo: {e}");
            Err(StartupError::Server(format!("demo failed: {e}")))
        }
    };
    if mode.exit_after {
        shutdown.trigger();
        result
    } else {
        if result.is_ok() {
            println!("The demo keeps running; stop it with Ctrl-C.");
        }
        Ok(())
    }
}

fn print_banner(
    database: &str,
    grpc: std::net::SocketAddr,
    http: std::net::SocketAddr,
    metrics: std::net::SocketAddr,
    emulator: Option<&str>,
    game_server: Option<String>,
    plaintext: bool,
) {
    let game = game_server.map_or_else(String::new, |url| {
        format!("  game      {url}   (reference GameServerService; ledger in {DEMO_GAME_LEDGER})\n")
    });
    let (emulator, buy) = emulator.map_or_else(
        || (String::new(), String::new()),
        |url| {
            (
                format!("  emulator  {url}   (App Store / Google Play / Huawei stand-in; control API under /emulator)\n"),
                format!(
                    "\nBuy it at the emulator's App Store, then verify the signed transaction it returns:\n  \
                     curl -s -XPOST {url}/emulator/apple/purchases -H 'content-type: application/json' \\\n    \
                     -d '{{\"bundle_id\":\"{DEMO_APP}\",\"product_id\":\"gems_100\",\"product_type\":\"Consumable\",\"app_account_token\":\"<order_id>\"}}'\n  \
                     grpcurl -plaintext -d '{{\"app_id\":\"{DEMO_APP}\",\"user_id\":\"player-1\",\"apple\":{{\"signed_transaction\":\"<signed_transaction>\"}}}}' {grpc} iap.v1.VerificationService/VerifyPurchase\n  \
                     (the reply shows the order CONFIRMED: granted by the game server, nothing to confirm at Apple)\n  \
                     grpcurl -plaintext -d '{{\"order_id\":\"<order_id>\"}}' {grpc} iap.v1.DeliveryService/GetDelivery\n"
                ),
            )
        },
    );
    let tls = if plaintext {
        ""
    } else {
        "; TLS: use grpcurl without -plaintext"
    };
    // Printed on stdout, not logged: it is the newcomer's next step, whatever the log filter.
    println!(
        "\
iapd is ready (all roles in one process)
  database  {database}
  gRPC      {grpc}   (OrderService, VerificationService, DeliveryService, AdminService; health and reflection on{tls})
  HTTP      http://{http}   (store notifications under /notifications; /healthz /readyz)
  metrics   http://{metrics}/metrics
{emulator}{game}
Create an order, then read it back with the order_id it prints:
  grpcurl -plaintext -d '{{\"app_id\":\"{DEMO_APP}\",\"user_id\":\"player-1\",\"product_id\":\"gems_100\",\"platform\":\"PLATFORM_APPLE\"}}' {grpc} iap.v1.OrderService/CreateOrder
  grpcurl -plaintext -d '{{\"order_id\":\"<order_id>\"}}' {grpc} iap.v1.OrderService/GetOrder
  grpcurl -plaintext -d '{{\"id\":\"<order_id or any store id>\"}}' {grpc} iap.v1.AdminService/LookupOrder
{buy}Stop with Ctrl-C (in-flight calls finish first)."
    );
}
