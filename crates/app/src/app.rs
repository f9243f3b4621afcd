//! [`App`]: one process, put together once. The database, the store clients (each loads TLS
//! roots and keys), the catalog and the purchase verification use case are built a single time
//! and shared by every role the process plays; the roles then add their gRPC services, their
//! HTTP routes and their jobs. Which delivery the verifier's fast path and the scheduler's jobs
//! call is decided here, and only here: the delivery role in process when the process has it,
//! `DeliveryService` over gRPC (`verifier.delivery_url`, `scheduler.delivery_url`) otherwise.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::service::Routes;

use iap_domain::delivery::DeliveryTrigger;
use iap_domain::usecases::deliver::Deliveries;
use iap_domain::usecases::verify_purchase::PurchaseVerification;
use iap_runtime::auth::GrpcAuth;
use iap_runtime::delivery_client::DeliveryClient;
use iap_runtime::http::ReadinessCheck;
use iap_runtime::jobs::{EntitlementSyncJob, JobSet, NotificationInboxJob};
use iap_runtime::lock::LockBackend;
use iap_runtime::process::GrpcEndpoint;
use iap_runtime::settings::{ENTITLEMENT_SYNC, GAUGES, NOTIFICATION_INBOX, ORDER_SWEEP};
use iap_runtime::{ConfigError, Settings, Shutdown, StartupError};
use iap_storage::Storage;

use crate::Roles;
use crate::delivery::{self, Delivery};
use crate::order_sweep::OrderSweep;
use crate::scheduler::{self, OrderGauges};
use crate::verifier::{self, Verifier};

/// A process, wired and bound, ready to run.
pub struct App {
    name: &'static str,
    grpc: Option<GrpcEndpoint>,
    http: (TcpListener, axum::Router),
    metrics: Option<TcpListener>,
    jobs: JobSet,
    addresses: Addresses,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .field("addresses", &self.addresses)
            .field("jobs", &self.jobs)
            .finish_non_exhaustive()
    }
}

/// Where a built [`App`] listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// gRPC (none for the scheduler alone).
    pub grpc: Option<SocketAddr>,
    /// HTTP: store notifications and health with the verifier role, the operations port
    /// (`/metrics` included) otherwise.
    pub http: SocketAddr,
    /// `/metrics` on its own port (the verifier role keeps it off the port the stores reach).
    pub metrics: Option<SocketAddr>,
}

/// Listeners the caller bound itself, used instead of binding the configured addresses: tests
/// pass port-0 sockets, and `iapd` binds its HTTP port before its embedded emulator starts (the
/// emulator pushes notifications there).
#[derive(Debug, Default)]
pub struct BoundListeners {
    /// Instead of the role's gRPC address.
    pub grpc: Option<TcpListener>,
    /// Instead of the role's HTTP address.
    pub http: Option<TcpListener>,
    /// Instead of `verifier.metrics_listen`.
    pub metrics: Option<TcpListener>,
}

/// The addresses a process with these roles listens on: the verifier's when it is the front
/// door, the delivery role's otherwise, the scheduler's operations port alone last.
struct Ports {
    grpc: Option<SocketAddr>,
    http: SocketAddr,
    metrics: Option<SocketAddr>,
}

impl Ports {
    fn of(settings: &Settings, roles: Roles) -> Ports {
        if roles.verifier {
            Ports {
                grpc: Some(settings.verifier.grpc_listen),
                http: settings.verifier.http_listen,
                metrics: Some(settings.verifier.metrics_listen),
            }
        } else if roles.delivery {
            Ports {
                grpc: Some(settings.delivery.grpc_listen),
                http: settings.delivery.http_listen,
                metrics: None,
            }
        } else {
            Ports {
                grpc: None,
                http: settings.scheduler.http_listen,
                metrics: None,
            }
        }
    }
}

impl App {
    /// Builds a process playing `roles` from `settings`, binding the configured addresses.
    pub async fn build(settings: &Settings, roles: Roles) -> Result<App, StartupError> {
        App::build_on(settings, roles, BoundListeners::default()).await
    }

    /// [`App::build`], on listeners the caller bound where it gives them.
    pub async fn build_on(
        settings: &Settings,
        roles: Roles,
        mut bound: BoundListeners,
    ) -> Result<App, StartupError> {
        if !(roles.verifier || roles.delivery || roles.scheduler) {
            return Err(invalid("a process needs at least one role".into()));
        }
        let name = roles.process_name();
        let url = settings.database_url()?.to_owned();
        let storage = iap_runtime::database::open(settings, &url).await?;

        // Bound before any store is contacted: a port in use is the first thing reported.
        let ports = Ports::of(settings, roles);
        let grpc_listener = match ports.grpc {
            Some(addr) => Some(listener(bound.grpc.take(), "gRPC", addr).await?),
            None => None,
        };
        let http_listener = listener(bound.http.take(), "HTTP", ports.http).await?;
        let metrics = match ports.metrics {
            Some(addr) => Some(listener(bound.metrics.take(), "metrics", addr).await?),
            None => None,
        };

        // One set of store clients, one catalog and one verification use case for every role.
        let stores = settings.store_clients()?;
        let catalog = Arc::new(settings.catalog()?);
        let purchases = Arc::new(PurchaseVerification::new(
            catalog.clone(),
            stores.verifiers(),
            storage.clone(),
        ));
        let auth = GrpcAuth::from_settings(&settings.auth);
        auth.warn_if_open(name, roles.verifier);
        let tls = iap_runtime::auth::server_tls(&settings.auth)?;

        let mut jobs = JobSet::default();
        let mut routes = Routes::default();
        let mut services = Vec::new();

        let delivery = match roles.delivery {
            true => {
                let delivery = Delivery::new(
                    storage.clone(),
                    LockBackend::from_settings(settings)?,
                    delivery::game_server(settings)?,
                    stores.confirmers(),
                    settings.delivery.policy(),
                )
                .with_auth(auth.clone());
                let inbox = delivery::notification_handler(
                    &delivery,
                    settings,
                    &stores,
                    Some(purchases.clone()),
                )?;
                add_delivery_jobs(&mut jobs, &delivery, settings, inbox);
                Some(delivery)
            }
            false => None,
        };
        let in_process = delivery.as_ref().map(Delivery::deliveries);

        let http_router = if roles.verifier {
            let mut verifier =
                Verifier::with_purchases(storage.clone(), catalog, purchases.clone())
                    .with_notifications(stores.decoders())
                    .with_auth(auth)
                    .with_tls(tls.clone());
            let wait = Duration::from_millis(settings.verifier.fast_path_wait_ms);
            match remote_or_local(
                &in_process,
                settings.verifier.delivery_url.as_deref(),
                settings,
            )? {
                Some((trigger, revoker)) => {
                    verifier = verifier.with_fast_path(trigger, wait).with_revoker(revoker);
                }
                None => tracing::info!(
                    "verifier.delivery_url is not set: paid, redelivered and compensated orders \
                     wait for the sweeper, and AdminService.RevokeOrder is unavailable"
                ),
            }
            routes = verifier.add_grpc_services(routes);
            services.extend_from_slice(verifier::GRPC_SERVICES);
            Some(verifier.notification_router())
        } else {
            None
        };
        if let Some(delivery) = &delivery {
            routes = delivery.add_grpc_services(routes);
            services.extend_from_slice(delivery::GRPC_SERVICES);
        }

        if roles.scheduler {
            jobs.add(
                OrderGauges::new(storage.clone()),
                settings.job(GAUGES).interval,
            );
            match remote_or_local(
                &in_process,
                settings.scheduler.delivery_url.as_deref(),
                settings,
            )? {
                Some((trigger, _)) => {
                    // With the delivery role in the process its own sweep covers the backlog.
                    if delivery.is_none() {
                        let sweep = settings.job(ORDER_SWEEP);
                        jobs.add(
                            OrderSweep::new(
                                storage.clone(),
                                trigger.clone(),
                                sweep.batch,
                                sweep.concurrency,
                                sweep.hold,
                            ),
                            sweep.interval,
                        );
                    }
                    scheduler::add_store_jobs(
                        &mut jobs, settings, &storage, &stores, purchases, trigger,
                    );
                }
                None => tracing::info!(
                    "order sweep, subscription checks and reconciliation off: \
                     scheduler.delivery_url is not set"
                ),
            }
        }

        let readiness = readiness(storage, delivery.as_ref().map(|d| d.lock().clone()));
        // The verifier's port faces the stores: health and receivers, `/metrics` on its own
        // port. Otherwise the HTTP port is the operations port, `/metrics` included.
        let http_router = match http_router {
            Some(receivers) => iap_runtime::http::health_router(Some(readiness)).merge(receivers),
            None => iap_runtime::http::ops_router(Some(readiness)),
        };
        let local = |l: &TcpListener| {
            l.local_addr()
                .map_err(|e| StartupError::Server(format!("listener address: {e}")))
        };
        let addresses = Addresses {
            grpc: grpc_listener.as_ref().map(local).transpose()?,
            http: local(&http_listener)?,
            metrics: metrics.as_ref().map(local).transpose()?,
        };
        let grpc = grpc_listener.map(|listener| GrpcEndpoint {
            listener,
            routes,
            services,
            tls,
        });
        tracing::debug!(process = name, jobs = ?jobs, "wired");
        Ok(App {
            name,
            grpc,
            http: (http_listener, http_router),
            metrics,
            jobs,
            addresses,
        })
    }

    /// Where this process listens.
    pub fn addresses(&self) -> Addresses {
        self.addresses
    }

    /// The jobs this process runs, by name.
    pub fn job_names(&self) -> Vec<&'static str> {
        self.jobs.names()
    }

    /// Serves every endpoint and runs every job until the shutdown; in-flight calls finish
    /// first.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), StartupError> {
        let jobs = self.jobs.run(shutdown.clone());
        let servers = iap_runtime::process::serve_with_metrics(
            self.name,
            self.grpc,
            self.http,
            self.metrics,
            shutdown,
        );
        // Boxed: the joined job loops make a large future.
        let ((), result) = tokio::join!(jobs, Box::pin(servers));
        result
    }
}

/// The delivery role's jobs, each as `[jobs.<name>]` sets it: `order_sweep` (due orders
/// delivered again in process), `entitlement_sync` (subscription versions the game has not
/// acknowledged, `GameServerService.UpdateSubscription`) and `notification_inbox` (at least
/// every 200 ms by default, whether or not the sweep is on: notifications must not wait for it).
fn add_delivery_jobs(
    jobs: &mut JobSet,
    delivery: &Delivery,
    settings: &Settings,
    inbox: Arc<iap_domain::usecases::handle_notifications::NotificationHandler<Storage>>,
) {
    jobs.add(
        delivery.sweeper(settings),
        settings.job(ORDER_SWEEP).interval,
    );
    let sync = settings.job(ENTITLEMENT_SYNC);
    jobs.add(
        EntitlementSyncJob {
            sync: delivery
                .entitlement_sync(Duration::from_millis(settings.delivery.call_deadline_ms)),
            batch: sync.batch,
        },
        sync.interval,
    );
    let notifications = settings.job(NOTIFICATION_INBOX);
    jobs.add(
        NotificationInboxJob {
            handler: inbox,
            batch: notifications.batch,
        },
        notifications.interval,
    );
}

/// The delivery a role hands its orders to, and the one that takes items back: the delivery
/// role in this process when there is one, else `DeliveryService` at `url`, else none.
type DeliveryPair = (
    Arc<dyn DeliveryTrigger>,
    Arc<dyn iap_domain::admin::OrderRevoker>,
);

fn remote_or_local(
    in_process: &Option<Arc<Deliveries<Storage>>>,
    url: Option<&str>,
    settings: &Settings,
) -> Result<Option<DeliveryPair>, StartupError> {
    if let Some(local) = in_process {
        return Ok(Some((local.clone(), local.clone())));
    }
    let Some(url) = url else {
        return Ok(None);
    };
    let client = Arc::new(DeliveryClient::with_auth(url, &settings.auth).map_err(invalid)?);
    Ok(Some((client.clone(), client)))
}

/// Ready when the database answers. With the delivery role, the lock's state is reported too but
/// never makes the process unready: without Redis, delivery continues on the database fence.
pub(crate) fn readiness(storage: Storage, lock: Option<LockBackend>) -> ReadinessCheck {
    Arc::new(move || {
        let (storage, lock) = (storage.clone(), lock.clone());
        Box::pin(async move {
            storage.ping().await.map_err(|e| format!("database: {e}"))?;
            Ok(match lock {
                Some(lock) => format!("database ok; lock {}", lock.describe().await),
                None => "database ok".to_owned(),
            })
        })
    })
}

async fn listener(
    bound: Option<TcpListener>,
    what: &str,
    addr: SocketAddr,
) -> Result<TcpListener, StartupError> {
    match bound {
        Some(listener) => Ok(listener),
        None => iap_runtime::http::bind(what, addr).await,
    }
}

fn invalid(message: String) -> StartupError {
    StartupError::Config(ConfigError::Invalid(message))
}
