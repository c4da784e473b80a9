//! Connections to one upstream endpoint: a single HTTP/2 connection,
//! multiplexing every call, opened on first use and re-opened when it closes.
//!
//! Calls go straight to the `h2` crate's `SendRequest`: no request buffer
//! task (tonic's `Channel`) and no per-call dispatch channel and spawned
//! response task (hyper's client), which profiling showed per request.
//! Balancing across endpoints lives in `super` (p2c or round robin), the
//! failure record that passes endpoints over in `outlier.rs`, and active
//! health checks in `health.rs`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Uri;
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::Status;

/// A sender of calls on one HTTP/2 connection.
pub type Sender = h2::client::SendRequest<Bytes>;

use super::UpstreamError;
use super::outlier::{EndpointMetrics, OutlierPolicy, OutlierState};
use super::tls::EndpointTls;

/// The live connection: its sender, and whether it has ended.
#[derive(Clone, Debug)]
pub struct Live {
    pub sender: Sender,
    closed: Arc<AtomicBool>,
}

/// One endpoint of an upstream.
#[derive(Debug)]
pub struct Endpoint {
    /// `http(s)://host:port`: the origin for `:scheme` and `:authority`.
    pub origin: Uri,
    address: String,
    /// For `https://`: the connector and the name to verify.
    tls: Option<EndpointTls>,
    settings: ConnSettings,
    /// One connection per worker thread: a call is sent, and its reply read,
    /// on the event loop that serves the client, with no cross-thread wake-ups.
    slots: Box<[Slot]>,
    in_flight: AtomicUsize,
    policy: OutlierPolicy,
    outlier: Mutex<OutlierState>,
    /// Whether `outlier` may hold anything: lets the usual case (no recent
    /// failure) skip its lock on the request path.
    troubled: AtomicBool,
    /// Cleared by failing active health checks.
    healthy: AtomicBool,
    metrics: EndpointMetrics,
}

/// One worker's connection to the endpoint.
#[derive(Debug, Default)]
struct Slot {
    live: Mutex<Option<Live>>,
    /// Serialises connection attempts so a burst opens one connection.
    connecting: tokio::sync::Mutex<()>,
}

thread_local! {
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Declares the calling thread to be edge worker `index`, so its calls use
/// that worker's connections. Threads that never call it use slot 0.
pub fn set_worker(index: usize) {
    WORKER.with(|w| w.set(index));
}

/// The calling thread's edge worker (0 off the workers).
pub fn current_worker() -> usize {
    WORKER.with(|w| w.get())
}

/// How connections to an endpoint are opened and kept.
#[derive(Clone, Copy, Debug)]
pub struct ConnSettings {
    pub connect_timeout: Duration,
    /// A PING is sent this often; a connection whose peer does not answer
    /// within `keepalive_timeout` is dropped and replaced. This finds a peer
    /// that vanished without closing (host down, network cut), which TCP alone
    /// notices only after minutes.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// Edge worker threads, each with its own connection.
    pub workers: usize,
}

/// Counts a call as in flight until dropped.
pub struct InFlight<'a>(&'a AtomicUsize);

// === impl Endpoint ===

impl Endpoint {
    pub fn new(
        origin: Uri,
        settings: ConnSettings,
        policy: OutlierPolicy,
        metrics: EndpointMetrics,
        tls: Option<EndpointTls>,
    ) -> Option<Endpoint> {
        let authority = origin.authority()?;
        let default_port = if tls.is_some() { 443 } else { 80 };
        let port = authority.port_u16().unwrap_or(default_port);
        Some(Endpoint {
            address: format!("{}:{port}", authority.host()),
            origin,
            tls,
            settings,
            slots: (0..settings.workers.max(1))
                .map(|_| Slot::default())
                .collect(),
            in_flight: AtomicUsize::new(0),
            policy,
            outlier: Mutex::new(OutlierState::default()),
            troubled: AtomicBool::new(false),
            healthy: AtomicBool::new(true),
            metrics: {
                metrics.healthy.set(1);
                metrics
            },
        })
    }

    /// `host:port`, for logs.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Calls in flight on this endpoint, for balancing.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether the balancer should pass this endpoint over: ejected, just
    /// refused a connection, or failing its health checks.
    pub fn is_out(&self, now: Instant) -> bool {
        !self.healthy.load(Ordering::Relaxed)
            || (self.troubled.load(Ordering::Relaxed) && lock(&self.outlier).is_out(now))
    }

    /// Records a call's outcome for outlier ejection: a transport failure, an
    /// UNAVAILABLE or a broken protocol is a failure, any other answer a success.
    pub fn record<T>(&self, upstream: &str, result: &Result<T, UpstreamError>) {
        let failed = match result {
            Ok(_) | Err(UpstreamError::ReplyTooLarge { .. }) => false,
            Err(UpstreamError::Status(status)) => status.code() == tonic::Code::Unavailable,
            Err(UpstreamError::Transport { .. } | UpstreamError::Protocol(_)) => true,
        };
        if failed {
            let ejected = self.troubled(|o| o.failure(&self.policy, Instant::now()));
            self.ejected(upstream, ejected);
        } else if self.troubled.load(Ordering::Relaxed) {
            let reopened = {
                let mut outlier = lock(&self.outlier);
                self.troubled.store(false, Ordering::Relaxed);
                outlier.success()
            };
            if reopened {
                tracing::info!(upstream, endpoint = %self.address, "ejected upstream endpoint answers again");
                self.publish();
            }
        }
    }

    /// What `/admin/upstreams` shows of it at `now`.
    pub fn status(&self, now: Instant) -> super::status::EndpointStatus {
        let outlier = lock(&self.outlier);
        let (consecutive_failures, ejections, left) = outlier.snapshot(now);
        super::status::EndpointStatus {
            address: self.address.clone(),
            in_service: !self.is_out_with(&outlier, now),
            healthy: self.healthy.load(Ordering::Relaxed),
            circuit_open: outlier.is_open(),
            ejected_for_ms: left.map(|d| d.as_millis() as u64),
            consecutive_failures,
            ejections,
            in_flight: self.in_flight(),
        }
    }

    fn is_out_with(&self, outlier: &OutlierState, now: Instant) -> bool {
        !self.healthy.load(Ordering::Relaxed) || outlier.is_out(now)
    }

    /// Sets the active health-check verdict.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
        self.publish();
    }

    /// Updates the failure record, marking it as worth looking at.
    fn troubled<R>(&self, f: impl FnOnce(&mut OutlierState) -> R) -> R {
        let mut outlier = lock(&self.outlier);
        self.troubled.store(true, Ordering::Relaxed);
        f(&mut outlier)
    }

    fn ejected(&self, upstream: &str, ejected: Option<Duration>) {
        if let Some(length) = ejected {
            tracing::warn!(upstream, endpoint = %self.address, ?length, "upstream endpoint ejected after consecutive failures");
            self.metrics.ejections.inc();
            self.publish();
        }
    }

    /// Updates the `healthy` gauge.
    fn publish(&self) {
        let up = self.healthy.load(Ordering::Relaxed) && !lock(&self.outlier).is_open();
        self.metrics.healthy.set(i64::from(up));
    }

    /// A connection of its own, not shared with calls (for health checks).
    pub async fn dedicated(&self) -> Result<Live, String> {
        self.connect().await
    }

    pub fn track(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// A sender on the live connection, connecting first if there is none.
    pub async fn sender(&self, upstream: &str) -> Result<Sender, Status> {
        let slot = &self.slots[WORKER.with(std::cell::Cell::get) % self.slots.len()];
        if let Some(sender) = slot.live() {
            return Ok(sender);
        }
        let _one_at_a_time = slot.connecting.lock().await;
        if let Some(sender) = slot.live() {
            return Ok(sender);
        }
        match self.connect().await {
            Ok(live) => {
                let sender = live.sender.clone();
                *lock(&slot.live) = Some(live);
                Ok(sender)
            }
            Err(message) => {
                let ejected = self.troubled(|o| o.connect_failed(&self.policy, Instant::now()));
                self.ejected(upstream, ejected);
                Err(Status::unavailable(format!(
                    "upstream `{upstream}` at {}: {message}",
                    self.address
                )))
            }
        }
    }

    async fn connect(&self) -> Result<Live, String> {
        let stream = tokio::time::timeout(
            self.settings.connect_timeout,
            tokio::net::TcpStream::connect(&self.address),
        )
        .await
        .map_err(|_| format!("no connection within {:?}", self.settings.connect_timeout))?
        .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return self.handshake(stream).await;
        };
        let stream = tokio::time::timeout(
            self.settings.connect_timeout,
            tls.connector.connect(tls.name.clone(), stream),
        )
        .await
        .map_err(|_| {
            format!(
                "no TLS handshake within {:?}",
                self.settings.connect_timeout
            )
        })?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
        self.handshake(stream).await
    }

    /// Opens HTTP/2 over `io` (TCP, or TLS over it) and keeps it alive.
    async fn handshake<T>(&self, io: T) -> Result<Live, String>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, mut connection) = h2::client::Builder::new()
            // Replies are small and many; a 1 MiB connection window keeps a
            // burst of them from waiting on WINDOW_UPDATEs.
            .initial_connection_window_size(1 << 20)
            .handshake(io)
            .await
            .map_err(|e| format!("HTTP/2 handshake failed: {e}"))?;
        let closed = Arc::new(AtomicBool::new(false));
        let pings = connection.ping_pong();
        let address = self.address.clone();
        let on_close = closed.clone();
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%address, error = %e, "upstream connection closed");
            }
            on_close.store(true, Ordering::Release);
        });
        if let Some(pings) = pings {
            tokio::spawn(keepalive(
                pings,
                self.settings,
                closed.clone(),
                driver,
                self.address.clone(),
            ));
        }
        Ok(Live { sender, closed })
    }
}

/// Pings the connection until it ends; on a missed pong, marks it closed (new
/// calls open another) and stops it (in-flight calls fail with UNAVAILABLE).
async fn keepalive(
    mut pings: h2::PingPong,
    settings: ConnSettings,
    closed: Arc<AtomicBool>,
    driver: tokio::task::JoinHandle<()>,
    address: String,
) {
    while !closed.load(Ordering::Acquire) {
        tokio::time::sleep(settings.keepalive_interval).await;
        if closed.load(Ordering::Acquire) {
            return;
        }
        let pong =
            tokio::time::timeout(settings.keepalive_timeout, pings.ping(h2::Ping::opaque())).await;
        if !matches!(pong, Ok(Ok(_))) {
            tracing::warn!(%address, "upstream did not answer a keep-alive ping; reconnecting");
            closed.store(true, Ordering::Release);
            driver.abort();
            return;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values are plain data: a panic elsewhere cannot leave them torn.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// === impl Live ===

impl Live {
    /// Whether the connection has ended (a new one is needed).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

// === impl Slot ===

impl Slot {
    fn live(&self) -> Option<Sender> {
        lock(&self.live)
            .as_ref()
            .filter(|l| !l.closed.load(Ordering::Acquire))
            .map(|l| l.sender.clone())
    }
}

// === impl InFlight ===

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
