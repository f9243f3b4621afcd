//! `iap-delivery`: grants paid orders into the game exactly once and confirms them at the store.
//! This process serves `DeliveryService` over gRPC (with health and reflection), runs the sweeper
//! that finishes whatever the fast path left undone, and serves its operations HTTP port.

mod game;
mod grpc;
mod sweep;

use std::sync::Arc;
use std::time::Duration;

pub use game::GrpcGameServer;
pub use sweep::{DeliverySweep, SweepReport};

use iap_domain::delivery::GameServer;
use iap_domain::ports::StoreConfirmer;
use iap_domain::usecases::deliver::{Deliveries, DeliveryPolicy};
use iap_domain::usecases::handle_notifications::NotificationHandler;
use iap_domain::usecases::sync_entitlements::EntitlementSync;
use iap_domain::usecases::verify_purchase::PurchaseVerification;

use tokio::net::TcpListener;
use tonic::service::Routes;

use iap_runtime::auth::GrpcAuth;
use iap_runtime::http::ReadinessCheck;
use iap_runtime::lock::LockBackend;
use iap_runtime::process::GrpcEndpoint;
use iap_runtime::settings::StoreClients;
use iap_runtime::{Settings, Shutdown, StartupError};
use iap_storage::Storage;

/// The gRPC services this process reports SERVING.
pub const GRPC_SERVICES: &[&str] = &["iap.v1.DeliveryService"];

/// The delivery role, wired to its adapters.
#[derive(Clone)]
pub struct Delivery {
    storage: Storage,
    lock: LockBackend,
    game: Arc<dyn GameServer>,
    deliveries: Arc<Deliveries<Storage>>,
    auth: GrpcAuth,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

/// The store confirmers configured in `settings` (Apple needs none, but answers NotApplicable).
pub fn store_confirmers(settings: &Settings) -> Result<Vec<Arc<dyn StoreConfirmer>>, StartupError> {
    Ok(settings.store_clients()?.confirmers())
}

/// The game server client `delivery.game_server_url` names, sending `auth.game_server_token`.
pub fn game_server(settings: &Settings) -> Result<Arc<dyn GameServer>, StartupError> {
    let url = settings
        .delivery
        .game_server_url
        .as_deref()
        .ok_or_else(|| {
            StartupError::Config(iap_runtime::ConfigError::Invalid(
                "delivery.game_server_url is required (the game's GameServerService)".into(),
            ))
        })?;
    let client = GrpcGameServer::new(url)
        .map_err(|e| StartupError::Config(iap_runtime::ConfigError::Invalid(e)))?
        .with_token(settings.auth.game_server_token.clone());
    Ok(Arc::new(client))
}

impl Delivery {
    /// Wires the role over a database, a lock, the game server and the store confirmers.
    pub fn new(
        storage: Storage,
        lock: LockBackend,
        game: Arc<dyn GameServer>,
        confirmers: Vec<Arc<dyn StoreConfirmer>>,
        policy: DeliveryPolicy,
    ) -> Self {
        let deliveries = Arc::new(Deliveries::new(
            storage.clone(),
            game.clone(),
            lock.lock.clone(),
            confirmers,
            policy,
        ));
        Self {
            storage,
            lock,
            game,
            deliveries,
            auth: GrpcAuth::default(),
        }
    }

    /// Requires bearer tokens on `DeliveryService` (the service token); open by default.
    pub fn with_auth(mut self, auth: GrpcAuth) -> Self {
        self.auth = auth;
        self
    }

    /// The delivery use case (the verifier's fast path calls it in-process in `iapd`).
    pub fn deliveries(&self) -> Arc<Deliveries<Storage>> {
        self.deliveries.clone()
    }

    /// A sweeper over this role's deliveries.
    pub fn sweeper(&self, settings: &iap_runtime::settings::DeliverySettings) -> DeliverySweep {
        DeliverySweep::new(
            self.deliveries.clone(),
            settings.sweep_batch,
            settings.sweep_concurrency,
        )
    }

    /// The job that tells the game server about subscription changes.
    pub fn entitlement_sync(&self, deadline: Duration) -> EntitlementSync<Storage> {
        EntitlementSync::new(self.storage.clone(), self.game.clone(), deadline)
    }

    /// Adds the delivery role's gRPC services to `routes`.
    pub fn add_grpc_services(&self, routes: Routes) -> Routes {
        routes.add_service(grpc::delivery_service(
            self.clone(),
            self.auth.service.clone(),
        ))
    }

    /// Ready when the database answers. The lock's state is reported but never makes the
    /// process unready: without Redis, delivery continues on the database fence.
    pub fn readiness(&self) -> ReadinessCheck {
        let (storage, lock) = (self.storage.clone(), self.lock.clone());
        Arc::new(move || {
            let (storage, lock) = (storage.clone(), lock.clone());
            Box::pin(async move {
                storage.ping().await.map_err(|e| format!("database: {e}"))?;
                Ok(format!("database ok; lock {}", lock.describe().await))
            })
        })
    }
}

/// Runs `iap-delivery` until the shutdown.
pub async fn run(settings: Settings, shutdown: Shutdown) -> Result<(), StartupError> {
    let url = settings.database_url()?.to_owned();
    let storage = iap_runtime::database::open(&settings, &url).await?;
    let grpc = iap_runtime::http::bind("gRPC", settings.delivery.grpc_listen).await?;
    let http = iap_runtime::http::bind("HTTP", settings.delivery.http_listen).await?;
    let lock = LockBackend::from_settings(&settings)?;
    let auth = GrpcAuth::from_settings(&settings.auth);
    auth.warn_if_open("iap-delivery", false);
    let stores = settings.store_clients()?;
    let delivery = Delivery::new(
        storage,
        lock,
        game_server(&settings)?,
        stores.confirmers(),
        settings.delivery.policy(),
    )
    .with_auth(auth);
    let tls = iap_runtime::auth::server_tls(&settings.auth)?;
    let handler = notification_handler(&delivery, &settings, &stores, None)?;
    let jobs = run_jobs(&delivery, &settings, Some(handler), shutdown.clone());
    let serving = serve_with_tls(delivery.clone(), grpc, http, tls, shutdown);
    let ((), result) = tokio::join!(jobs, serving);
    result
}

/// The notification handler over this role's deliveries: the inbox the verifiers' receivers
/// fill, the purchase verification use case for store-reported purchases, revocation for refunds.
/// `stores` are the process's store clients (built once: each loads TLS roots and keys).
pub fn notification_handler(
    delivery: &Delivery,
    settings: &Settings,
    stores: &StoreClients,
    purchases: Option<Arc<PurchaseVerification<Storage>>>,
) -> Result<Arc<NotificationHandler<Storage>>, StartupError> {
    let purchases = match purchases {
        Some(purchases) => purchases,
        None => Arc::new(PurchaseVerification::new(
            Arc::new(settings.catalog()?),
            stores.verifiers(),
            delivery.storage.clone(),
        )),
    };
    Ok(Arc::new(
        NotificationHandler::new(
            Arc::new(delivery.storage.clone()),
            stores.decoders(),
            purchases,
            delivery.deliveries.clone(),
            delivery.storage.clone(),
        )
        .with_consumption_responder(stores.apple.clone())
        .with_policy(settings.delivery.inbox_policy()),
    ))
}

/// Runs the delivery role's jobs on the one runner until the shutdown:
/// - `delivery_sweep`: due orders delivered again, every `delivery.sweep_interval_ms` (0: off);
/// - `entitlement_sync`: subscription versions the game has not acknowledged
///   (`GameServerService.UpdateSubscription`), on the same interval;
/// - `notification_inbox`, when `inbox` is given: every `delivery.sweep_interval_ms`, at least
///   every 200 ms, whether or not the sweep is on (notifications must not wait for it).
pub async fn run_jobs(
    delivery: &Delivery,
    settings: &Settings,
    inbox: Option<Arc<NotificationHandler<Storage>>>,
    shutdown: Shutdown,
) {
    use iap_runtime::jobs::{self, EntitlementSyncJob, NotificationInboxJob};
    let interval = Duration::from_millis(settings.delivery.sweep_interval_ms);
    let sweep = jobs::run(
        delivery.sweeper(&settings.delivery),
        interval,
        shutdown.clone(),
    );
    let entitlements = jobs::run(
        EntitlementSyncJob {
            sync: delivery
                .entitlement_sync(Duration::from_millis(settings.delivery.call_deadline_ms)),
            batch: settings.delivery.sweep_batch.max(1),
        },
        interval,
        shutdown.clone(),
    );
    let notifications = async {
        if let Some(handler) = inbox {
            let job = NotificationInboxJob {
                handler,
                batch: NotificationInboxJob::DEFAULT_BATCH,
            };
            jobs::run(job, interval.max(Duration::from_millis(200)), shutdown).await;
        }
    };
    tokio::join!(sweep, entitlements, notifications);
}

/// Serves a wired delivery role on the given listeners until the shutdown.
pub async fn serve(
    delivery: Delivery,
    grpc: TcpListener,
    http: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartupError> {
    serve_with_tls(delivery, grpc, http, None, shutdown).await
}

/// Like [`serve`], with the gRPC port over TLS when `tls` is given.
pub async fn serve_with_tls(
    delivery: Delivery,
    grpc: TcpListener,
    http: TcpListener,
    tls: Option<tonic::transport::ServerTlsConfig>,
    shutdown: Shutdown,
) -> Result<(), StartupError> {
    let endpoint = GrpcEndpoint {
        listener: grpc,
        routes: delivery.add_grpc_services(Routes::default()),
        services: GRPC_SERVICES.to_vec(),
        tls,
    };
    let ops = iap_runtime::http::ops_router(Some(delivery.readiness()));
    iap_runtime::process::serve("iap-delivery", Some(endpoint), (http, ops), shutdown).await
}
