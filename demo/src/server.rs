//! Serving the demo services, each on its own TCP listener.
//!
//! One tonic `Server` per service (rather than one server with three services) lets tests stop
//! and restart a single upstream to exercise the gateway's failure handling.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::{Router, TcpIncoming};

use crate::DemoHealth;
use crate::pb::health::health_server::HealthServer;
use crate::pb::inventory::inventory_service_server::InventoryServiceServer;
use crate::pb::orders::order_service_server::OrderServiceServer;
use crate::pb::users::user_service_server::UserServiceServer;
use crate::{InMemoryInventory, InMemoryOrders, InMemoryUsers};

/// How long a stop waits for in-flight calls to finish before abandoning the server task.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// One of the three demo services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// `demo.users.v1.UserService`
    Users,
    /// `demo.orders.v1.OrderService`
    Orders,
    /// `demo.inventory.v1.InventoryService`
    Inventory,
}

impl Service {
    /// All services, in the order they are started and printed.
    pub const ALL: [Service; 3] = [Service::Users, Service::Orders, Service::Inventory];

    /// Short lower-case name: `users`, `orders` or `inventory`.
    pub fn name(self) -> &'static str {
        match self {
            Service::Users => "users",
            Service::Orders => "orders",
            Service::Inventory => "inventory",
        }
    }

    /// The full gRPC service name, e.g. `demo.users.v1.UserService`.
    pub fn full_name(self) -> &'static str {
        match self {
            Service::Users => "demo.users.v1.UserService",
            Service::Orders => "demo.orders.v1.OrderService",
            Service::Inventory => "demo.inventory.v1.InventoryService",
        }
    }

    fn index(self) -> usize {
        match self {
            Service::Users => 0,
            Service::Orders => 1,
            Service::Inventory => 2,
        }
    }
}

/// One running tonic server and the means to stop it.
#[derive(Debug)]
struct Running {
    /// Sending, or dropping, starts a graceful shutdown.
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    /// Binds `addr` and serves `router` on it until stopped; returns the bound address.
    ///
    /// `on_stop` runs when shutdown begins, to end streams that would otherwise keep the
    /// graceful shutdown waiting forever.
    async fn start(
        router: Router,
        addr: SocketAddr,
        on_stop: impl FnOnce() + Send + 'static,
    ) -> io::Result<(SocketAddr, Self)> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let (stop, stopped) = oneshot::channel::<()>();
        let signal = async move {
            // An error means the handle was dropped, which also means "stop".
            let _ = stopped.await;
            on_stop();
        };
        let task = tokio::spawn(async move {
            if let Err(error) = router.serve_with_incoming_shutdown(incoming, signal).await {
                tracing::error!(%local, %error, "demo service stopped with an error");
            }
        });
        Ok((local, Self { stop, task }))
    }

    /// Stops accepting, lets in-flight calls finish (bounded by [`DRAIN_TIMEOUT`]) and returns
    /// once the listener is closed.
    async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(DRAIN_TIMEOUT, &mut task)
            .await
            .is_err()
        {
            tracing::warn!("demo service did not drain in time; abandoning its connections");
            task.abort();
        }
    }
}

/// The three demo services, each served on its own listener.
///
/// Dropping it shuts every service down in the background; [`DemoServer::shutdown`] does the
/// same and waits for it.
#[derive(Debug)]
pub struct DemoServer {
    /// Address `demo.users.v1.UserService` listens on.
    pub users: SocketAddr,
    /// Address `demo.orders.v1.OrderService` listens on.
    pub orders: SocketAddr,
    /// Address `demo.inventory.v1.InventoryService` listens on.
    pub inventory: SocketAddr,
    /// The stores outlive their servers, so a restarted service keeps its data.
    users_store: InMemoryUsers,
    orders_store: InMemoryOrders,
    inventory_store: InMemoryInventory,
    /// Indexed by [`Service::index`]; `None` while a service is stopped.
    running: [Option<Running>; 3],
    /// Each server's `grpc.health.v1.Health` state, by [`Service::index`].
    health: [DemoHealth; 3],
    /// Calls each service received (health checks not included), by [`Service::index`].
    calls: [Arc<AtomicUsize>; 3],
}

/// Binds each service on its own listener (port 0 picks an ephemeral port) and serves until the
/// returned [`DemoServer`] is dropped or shut down.
///
/// Fails if any address cannot be bound; services already started are then stopped again.
pub async fn spawn(
    users: SocketAddr,
    orders: SocketAddr,
    inventory: SocketAddr,
) -> io::Result<DemoServer> {
    let mut server = DemoServer {
        users,
        orders,
        inventory,
        users_store: InMemoryUsers::new(),
        orders_store: InMemoryOrders::new(),
        inventory_store: InMemoryInventory::new(),
        running: [None, None, None],
        health: Service::ALL.map(|s| DemoHealth::new(s.full_name())),
        calls: Default::default(),
    };
    for service in Service::ALL {
        server.start(service).await?;
    }
    Ok(server)
}

impl DemoServer {
    /// The address `service` listens on (kept while it is stopped, for [`DemoServer::restart`]).
    pub fn addr(&self, service: Service) -> SocketAddr {
        match service {
            Service::Users => self.users,
            Service::Orders => self.orders,
            Service::Inventory => self.inventory,
        }
    }

    /// `http://<addr>` of `service`, ready for a tonic client's `connect`.
    pub fn url(&self, service: Service) -> String {
        format!("http://{}", self.addr(service))
    }

    /// Whether `service` is currently serving.
    pub fn is_running(&self, service: Service) -> bool {
        self.running[service.index()].is_some()
    }

    /// Sets whether `service`'s server answers `grpc.health.v1.Health/Check` with SERVING (for
    /// the empty name and the service's full name) or NOT_SERVING. Calls are served either way.
    pub fn set_serving(&self, service: Service, serving: bool) {
        self.health[service.index()].set_serving(serving);
    }

    /// Calls `service` has received since start (health checks not counted).
    pub fn calls(&self, service: Service) -> usize {
        self.calls[service.index()].load(Ordering::SeqCst)
    }

    /// The `read_mask` paths of the latest `GetUser` call (empty: none sent).
    pub fn last_read_mask(&self) -> Vec<String> {
        self.users_store.last_read_mask()
    }

    /// Number of open `WatchOrders` streams; see [`InMemoryOrders::open_watches`].
    pub fn open_watches(&self) -> usize {
        self.orders_store.open_watches()
    }

    /// Stops one service: its listener closes (new connections are refused), idle connections
    /// get an HTTP/2 GOAWAY, open `WatchOrders` streams end with UNAVAILABLE. No-op if stopped.
    pub async fn stop(&mut self, service: Service) {
        if let Some(running) = self.running[service.index()].take() {
            running.stop().await;
        }
    }

    /// Starts a stopped service again on the same address with the data it had; a running
    /// service is stopped first.
    pub async fn restart(&mut self, service: Service) -> io::Result<()> {
        self.stop(service).await;
        self.start(service).await
    }

    /// Stops all services and waits until they are down.
    pub async fn shutdown(mut self) {
        let [users, orders, inventory] = std::mem::take(&mut self.running);
        tokio::join!(stop(users), stop(orders), stop(inventory));
    }

    async fn start(&mut self, service: Service) -> io::Result<()> {
        let addr = self.addr(service);
        self.start_on(service, addr).await.map_err(|error| {
            // Name the service and address: "address in use" alone does not say which one.
            io::Error::new(
                error.kind(),
                format!("{} on {addr}: {error}", service.name()),
            )
        })
    }

    /// Requests may be gzip-compressed; replies are not (like most gRPC
    /// servers): compressing sub-kilobyte messages costs both sides more CPU
    /// than it saves. The gateway's handling of compressed replies is tested
    /// against the Python peer. Each server also answers `grpc.health.v1.Health`.
    async fn start_on(&mut self, service: Service, addr: SocketAddr) -> io::Result<()> {
        let health = HealthServer::new(self.health[service.index()].clone());
        let calls = self.calls[service.index()].clone();
        let count = move |request: tonic::Request<()>| {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(request)
        };
        let router = Server::builder().add_service(health);
        let (bound, running) = match service {
            Service::Users => {
                let svc = UserServiceServer::new(self.users_store.clone())
                    .accept_compressed(CompressionEncoding::Gzip);
                let router = router.add_service(InterceptedService::new(svc, count));
                Running::start(router, addr, || {}).await?
            }
            Service::Orders => {
                let svc = OrderServiceServer::new(self.orders_store.clone())
                    .accept_compressed(CompressionEncoding::Gzip);
                let store = self.orders_store.clone();
                let on_stop = move || store.close_streams();
                let router = router.add_service(InterceptedService::new(svc, count));
                Running::start(router, addr, on_stop).await?
            }
            Service::Inventory => {
                let svc = InventoryServiceServer::new(self.inventory_store.clone())
                    .accept_compressed(CompressionEncoding::Gzip);
                let router = router.add_service(InterceptedService::new(svc, count));
                Running::start(router, addr, || {}).await?
            }
        };
        match service {
            Service::Users => self.users = bound,
            Service::Orders => self.orders = bound,
            Service::Inventory => self.inventory = bound,
        }
        self.running[service.index()] = Some(running);
        Ok(())
    }
}

async fn stop(running: Option<Running>) {
    if let Some(running) = running {
        running.stop().await;
    }
}
