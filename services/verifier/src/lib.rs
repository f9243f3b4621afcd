//! `iap-verifier`: the front door for game servers. gRPC `OrderService` (open orders before a
//! purchase), `VerificationService` and `AdminService` as their issues land, and an HTTP port for
//! store notifications and operations endpoints.
//!
//! Handlers are thin: they convert wire types, call a domain use case, and map its error through
//! `iap_runtime::status`. Wiring (which adapters implement which ports) happens in [`Verifier`].

mod grpc;
mod notifications;

/// The gRPC request validation (wire request → use-case command), for the fuzz targets in
/// `fuzz/` only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use iap_domain::usecases::create_order::CreateOrder;
    use iap_domain::usecases::verify_purchase::VerifyPurchase;
    use iap_proto::v1 as pb;

    /// What `OrderService.CreateOrder` makes of a request before any I/O.
    pub fn create_order_command(r: pb::CreateOrderRequest) -> Result<CreateOrder, tonic::Status> {
        crate::grpc::create_order_command(r)
    }

    /// What `VerificationService.VerifyPurchase` makes of a request before any I/O.
    pub fn verify_purchase_command(
        r: pb::VerifyPurchaseRequest,
    ) -> Result<VerifyPurchase, tonic::Status> {
        crate::grpc::verify_purchase_command(r)
    }
}

use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::service::Routes;

use std::time::Duration;

use iap_domain::delivery::DeliveryTrigger;
use iap_domain::notifications::NotificationDecoder;
use iap_domain::ports::PurchaseVerifier;
use iap_domain::usecases::create_order::OrderCreator;
use iap_domain::usecases::verify_purchase::PurchaseVerification;
use iap_domain::{Catalog, Order, OrderState};
use iap_proto::service_names;
use iap_runtime::http::ReadinessCheck;
use iap_runtime::process::GrpcEndpoint;
use iap_runtime::{Settings, Shutdown, StartupError};
use iap_storage::Storage;

/// The gRPC services this process serves, for health reporting.
pub const GRPC_SERVICES: &[&str] = &[service_names::ORDER, service_names::VERIFICATION];

/// The verifier's use cases, wired to their adapters.
#[derive(Clone)]
pub struct Verifier {
    storage: Storage,
    orders: Arc<OrderCreator<Storage>>,
    purchases: Arc<PurchaseVerification<Storage>>,
    delivery: Option<FastPath>,
    decoders: Vec<Arc<dyn NotificationDecoder>>,
}

/// The delivery fast path: who to call and how long a reply may wait for it.
#[derive(Clone)]
struct FastPath {
    trigger: Arc<dyn DeliveryTrigger>,
    wait: Duration,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("fast_path", &self.delivery.as_ref().map(|d| d.wait))
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Wires the use cases over a database, the configured catalog and the store verifiers.
    pub fn new(
        storage: Storage,
        catalog: Arc<Catalog>,
        stores: Vec<Arc<dyn PurchaseVerifier>>,
    ) -> Self {
        let orders = Arc::new(OrderCreator::new(catalog.clone(), storage.clone()));
        let purchases = Arc::new(PurchaseVerification::new(catalog, stores, storage.clone()));
        Self {
            storage,
            orders,
            purchases,
            delivery: None,
            decoders: Vec::new(),
        }
    }

    /// Receives store notifications on the HTTP port (`POST /notifications/{store}`) for the
    /// stores these decoders authenticate.
    pub fn with_notifications(mut self, decoders: Vec<Arc<dyn NotificationDecoder>>) -> Self {
        self.decoders = decoders;
        self
    }

    /// The verification use case (the notification handler records store-reported purchases
    /// through it).
    pub fn purchases(&self) -> Arc<PurchaseVerification<Storage>> {
        self.purchases.clone()
    }

    /// Starts delivery right after a payment is recorded, waiting up to `wait` for it before
    /// the reply; the delivery continues in the background after that.
    pub fn with_fast_path(mut self, trigger: Arc<dyn DeliveryTrigger>, wait: Duration) -> Self {
        self.delivery = Some(FastPath { trigger, wait });
        self
    }

    /// Runs the fast path for a paid order; returns the order as far as it got within the
    /// wait, or `None` (the sweeper finishes the work).
    pub(crate) async fn deliver_now(&self, order: &Order) -> Option<Order> {
        let fast = self.delivery.as_ref()?;
        if !matches!(
            order.state,
            OrderState::Paid | OrderState::Delivering | OrderState::Delivered
        ) {
            return None;
        }
        let (trigger, id) = (fast.trigger.clone(), order.id);
        // Its own task: a reply that stops waiting must not cancel a grant in flight.
        let task = tokio::spawn(async move { trigger.deliver_now(id).await });
        match tokio::time::timeout(fast.wait, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                tracing::warn!(order_id = %id, error = %e, "fast-path delivery failed; the sweeper will retry");
            }
            Ok(Err(e)) => {
                tracing::error!(order_id = %id, error = %e, "fast-path delivery task failed");
            }
            Err(_) => tracing::debug!(order_id = %id, "fast path still running; replying"),
        }
        use iap_domain::ports::OrderRepository;
        self.storage.get_order(id).await.ok().flatten()
    }

    /// Adds the verifier's gRPC services to `routes` (alone, or beside other roles in iapd).
    pub fn add_grpc_services(&self, routes: Routes) -> Routes {
        routes
            .add_service(grpc::order_service(self.clone()))
            .add_service(grpc::verification_service(self.clone()))
    }

    /// The HTTP routes: operations endpoints (and store notifications when they land).
    pub fn http_router(&self) -> axum::Router {
        let receivers = notifications::Receivers {
            decoders: self
                .decoders
                .iter()
                .map(|d| (d.platform(), d.clone()))
                .collect(),
            inbox: Arc::new(self.storage.clone()),
        };
        iap_runtime::http::ops_router(Some(self.readiness()))
            .merge(notifications::router(receivers))
    }

    /// Ready when the database answers.
    pub fn readiness(&self) -> ReadinessCheck {
        let storage = self.storage.clone();
        Arc::new(move || {
            let storage = storage.clone();
            Box::pin(async move {
                storage.ping().await.map_err(|e| format!("database: {e}"))?;
                Ok("database ok".to_owned())
            })
        })
    }
}

/// Bound listeners, so tests can pass port-0 sockets and read the real addresses.
#[derive(Debug)]
pub struct Listeners {
    /// gRPC.
    pub grpc: TcpListener,
    /// HTTP.
    pub http: TcpListener,
}

/// Runs the verifier until the shutdown: opens the database, binds the configured addresses.
pub async fn run(settings: Settings, shutdown: Shutdown) -> Result<(), StartupError> {
    let catalog = Arc::new(settings.catalog()?);
    let url = settings.database_url()?.to_owned();
    let storage = iap_runtime::database::open(&settings, &url).await?;
    let listeners = Listeners {
        grpc: iap_runtime::http::bind("gRPC", settings.verifier.grpc_listen).await?,
        http: iap_runtime::http::bind("HTTP", settings.verifier.http_listen).await?,
    };
    let stores = store_verifiers(&settings)?;
    let mut verifier = Verifier::new(storage, catalog, stores)
        .with_notifications(notification_decoders(&settings)?);
    if let Some(url) = &settings.verifier.delivery_url {
        let trigger = iap_runtime::delivery_client::DeliveryClient::new(url)
            .map_err(|e| StartupError::Config(iap_runtime::ConfigError::Invalid(e)))?;
        verifier = verifier.with_fast_path(
            Arc::new(trigger),
            Duration::from_millis(settings.verifier.fast_path_wait_ms),
        );
    }
    serve(verifier, listeners, shutdown).await
}

/// Serves a wired verifier on the given listeners until the shutdown.
pub async fn serve(
    verifier: Verifier,
    listeners: Listeners,
    shutdown: Shutdown,
) -> Result<(), StartupError> {
    let grpc = GrpcEndpoint {
        listener: listeners.grpc,
        routes: verifier.add_grpc_services(Routes::default()),
        services: GRPC_SERVICES.to_vec(),
    };
    iap_runtime::process::serve(
        "iap-verifier",
        Some(grpc),
        (listeners.http, verifier.http_router()),
        shutdown,
    )
    .await
}

/// The store verifiers the settings configure.
pub fn store_verifiers(
    settings: &Settings,
) -> Result<Vec<Arc<dyn PurchaseVerifier>>, StartupError> {
    Ok(settings.purchase_verifiers()?)
}

/// The store-notification decoders the settings configure.
pub fn notification_decoders(
    settings: &Settings,
) -> Result<Vec<Arc<dyn NotificationDecoder>>, StartupError> {
    Ok(settings.notification_decoders()?)
}
