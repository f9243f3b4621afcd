//! The delivery role: grants paid orders into the game exactly once and confirms them at the
//! store. It serves `DeliveryService` over gRPC and runs the order sweep in process (what the
//! fast path left undone), the entitlement sync and the notification inbox; [`crate::App`]
//! decides where.

mod game;
mod grpc;

use std::sync::Arc;
use std::time::Duration;

pub use game::GrpcGameServer;

use crate::order_sweep::OrderSweep;

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
use iap_runtime::settings::{ORDER_SWEEP, StoreClients};
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
    /// How long the sweep keeps a reserved order from other sweepers: one delivery lease.
    sweep_hold: Duration,
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
        let sweep_hold = policy.lease();
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
            sweep_hold,
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

    /// The order sweep, delivering in process, sized by `[jobs.order_sweep]`: due orders are
    /// kept from other sweepers for `jobs.order_sweep.hold_ms` when it is set, else for one
    /// delivery lease (a worker still delivering never loses its order to another).
    pub fn sweeper(&self, settings: &Settings) -> OrderSweep {
        let job = settings.job(ORDER_SWEEP);
        let hold = settings
            .jobs
            .get(ORDER_SWEEP)
            .and_then(|own| own.hold_ms)
            .map_or(self.sweep_hold, Duration::from_millis);
        OrderSweep::new(
            self.storage.clone(),
            self.deliveries.clone(),
            job.batch,
            job.concurrency,
            hold,
        )
    }

    /// The lock backend (the App's readiness reports its state).
    pub(crate) fn lock(&self) -> &LockBackend {
        &self.lock
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

    /// Ready when the database answers; the lock's state is reported beside it.
    pub fn readiness(&self) -> ReadinessCheck {
        crate::app::readiness(self.storage.clone(), Some(self.lock.clone()))
    }
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
