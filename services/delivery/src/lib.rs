//! `iap-delivery`: grants paid orders into the game exactly once and confirms them at the store.
//! This process serves gRPC (health, reflection; `DeliveryService` answers UNIMPLEMENTED until
//! the delivery use case lands) and its operations HTTP port.

use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::service::Routes;

use iap_runtime::http::ReadinessCheck;
use iap_runtime::lock::LockBackend;
use iap_runtime::process::GrpcEndpoint;
use iap_runtime::{Settings, Shutdown, StartupError};
use iap_storage::Storage;

/// The gRPC services this process reports SERVING.
pub const GRPC_SERVICES: &[&str] = &[];

/// The delivery role, wired to its adapters.
#[derive(Debug, Clone)]
pub struct Delivery {
    storage: Storage,
    lock: LockBackend,
}

impl Delivery {
    /// Wires the role over a database and a lock.
    pub fn new(storage: Storage, lock: LockBackend) -> Self {
        Self { storage, lock }
    }

    /// Adds the delivery role's gRPC services to `routes`.
    pub fn add_grpc_services(&self, routes: Routes) -> Routes {
        routes
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
    serve(Delivery::new(storage, lock), grpc, http, shutdown).await
}

/// Serves a wired delivery role on the given listeners until the shutdown.
pub async fn serve(
    delivery: Delivery,
    grpc: TcpListener,
    http: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartupError> {
    let endpoint = GrpcEndpoint {
        listener: grpc,
        routes: delivery.add_grpc_services(Routes::default()),
        services: GRPC_SERVICES.to_vec(),
    };
    let ops = iap_runtime::http::ops_router(Some(delivery.readiness()));
    iap_runtime::process::serve("iap-delivery", Some(endpoint), (http, ops), shutdown).await
}
