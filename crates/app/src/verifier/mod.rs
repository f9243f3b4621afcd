//! The verifier role: the front door for game servers. gRPC `OrderService` (open orders before a
//! purchase), `VerificationService`, `AdminService` for operators, and an HTTP port for store
//! notifications and operations endpoints.
//!
//! Handlers are thin: they convert wire types, call a domain use case, and map its error through
//! `iap_runtime::status`. [`crate::App`] decides which adapters stand behind the use cases;
//! [`Verifier`] holds them for the handlers.

pub(crate) mod grpc;
mod notifications;

use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::service::Routes;

use std::time::Duration;

use iap_domain::admin::OrderRevoker;
use iap_domain::delivery::DeliveryTrigger;
use iap_domain::notifications::NotificationDecoder;
use iap_domain::ports::PurchaseVerifier;
use iap_domain::usecases::admin::Administration;
use iap_domain::usecases::create_order::OrderCreator;
use iap_domain::usecases::unclaimed::UnclaimedPurchases;
use iap_domain::usecases::verify_purchase::PurchaseVerification;
use iap_domain::{Catalog, Order, OrderState};
use iap_proto::service_names;
use iap_runtime::auth::GrpcAuth;
use iap_runtime::http::ReadinessCheck;
use iap_runtime::process::GrpcEndpoint;
use iap_runtime::{Settings, Shutdown, StartupError};
use iap_storage::Storage;

/// The gRPC services this process serves, for health reporting.
pub const GRPC_SERVICES: &[&str] = &[
    service_names::ORDER,
    service_names::VERIFICATION,
    service_names::ADMIN,
];

/// The verifier's use cases, wired to their adapters.
#[derive(Clone)]
pub struct Verifier {
    storage: Storage,
    catalog: Arc<Catalog>,
    orders: Arc<OrderCreator<Storage>>,
    purchases: Arc<PurchaseVerification<Storage>>,
    delivery: Option<FastPath>,
    revoker: Option<Arc<dyn OrderRevoker>>,
    decoders: Vec<Arc<dyn NotificationDecoder>>,
    auth: GrpcAuth,
    tls: Option<tonic::transport::ServerTlsConfig>,
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
            .field("revoker", &self.revoker.is_some())
            .field("auth", &self.auth)
            .field("tls", &self.tls.is_some())
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
        let purchases = Arc::new(PurchaseVerification::new(
            catalog.clone(),
            stores,
            storage.clone(),
        ));
        Self::with_purchases(storage, catalog, purchases)
    }

    /// Wires the use cases over a database, the catalog and a purchase verification use case
    /// built once for the whole process (the notification handler and the subscription job share
    /// it).
    pub fn with_purchases(
        storage: Storage,
        catalog: Arc<Catalog>,
        purchases: Arc<PurchaseVerification<Storage>>,
    ) -> Self {
        let orders = Arc::new(OrderCreator::new(catalog.clone(), storage.clone()));
        Self {
            storage,
            catalog,
            orders,
            purchases,
            delivery: None,
            revoker: None,
            decoders: Vec::new(),
            auth: GrpcAuth::default(),
            tls: None,
        }
    }

    /// Lets `AdminService.RevokeOrder` take items back through `revoker` (the delivery role in
    /// process, or `DeliveryService` over gRPC). Without it, RevokeOrder answers
    /// `FAILED_PRECONDITION` / `DELIVERY_NOT_CONFIGURED`.
    pub fn with_revoker(mut self, revoker: Arc<dyn OrderRevoker>) -> Self {
        self.revoker = Some(revoker);
        self
    }

    /// Requires bearer tokens: the admin token on `AdminService`, the service token on
    /// `OrderService` and `VerificationService`. Open by default.
    pub fn with_auth(mut self, auth: GrpcAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Serves gRPC over TLS (mutual when the config names a client CA).
    pub fn with_tls(mut self, tls: Option<tonic::transport::ServerTlsConfig>) -> Self {
        self.tls = tls;
        self
    }

    /// The operators' use cases over this verifier's storage, catalog and delivery: a
    /// redelivered or compensated order is delivered through the fast path's trigger (or left
    /// due for the sweeper when there is none).
    fn administration(&self) -> Arc<Administration<Storage>> {
        Arc::new(Administration::new(
            self.storage.clone(),
            self.catalog.clone(),
            self.delivery.as_ref().map(|d| d.trigger.clone()),
            self.revoker.clone(),
        ))
    }

    /// Kept unclaimed purchases for operators: claimed ones are asked of the store again through
    /// this verifier's store clients and delivered like a compensation.
    fn unclaimed(&self) -> Arc<UnclaimedPurchases<Storage>> {
        Arc::new(UnclaimedPurchases::new(
            self.storage.clone(),
            self.purchases.clone(),
            self.delivery.as_ref().map(|d| d.trigger.clone()),
        ))
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
            .add_service(grpc::order_service(self.clone(), self.auth.service.clone()))
            .add_service(grpc::verification_service(
                self.clone(),
                self.auth.service.clone(),
            ))
            .add_service(grpc::admin_service(
                self.administration(),
                self.unclaimed(),
                self.auth.admin.clone(),
            ))
    }

    /// The store notification receivers (`POST /notifications/{store}`), for the port the
    /// stores reach beside the health endpoints (`/metrics` is on `verifier.metrics_listen`).
    pub fn notification_router(&self) -> axum::Router {
        let receivers = notifications::Receivers {
            decoders: self
                .decoders
                .iter()
                .map(|d| (d.platform(), d.clone()))
                .collect(),
            inbox: Arc::new(self.storage.clone()),
        };
        notifications::router(receivers)
    }

    /// Ready when the database answers.
    pub fn readiness(&self) -> ReadinessCheck {
        crate::app::readiness(self.storage.clone(), None)
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

/// Serves a wired verifier on the given listeners until the shutdown, without `/metrics`.
pub async fn serve(
    verifier: Verifier,
    listeners: Listeners,
    shutdown: Shutdown,
) -> Result<(), StartupError> {
    serve_with_metrics(verifier, listeners, None, shutdown).await
}

/// [`serve`], with `/metrics` on `metrics`.
pub async fn serve_with_metrics(
    verifier: Verifier,
    listeners: Listeners,
    metrics: Option<TcpListener>,
    shutdown: Shutdown,
) -> Result<(), StartupError> {
    let grpc = GrpcEndpoint {
        listener: listeners.grpc,
        routes: verifier.add_grpc_services(Routes::default()),
        services: GRPC_SERVICES.to_vec(),
        tls: verifier.tls.clone(),
    };
    iap_runtime::process::serve_with_metrics(
        "iap-verifier",
        Some(grpc),
        (
            listeners.http,
            iap_runtime::http::health_router(Some(verifier.readiness()))
                .merge(verifier.notification_router()),
        ),
        metrics,
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
