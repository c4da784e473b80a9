//! Connections to one upstream endpoint: a single HTTP/2 connection,
//! multiplexing every call, opened on first use and re-opened when it closes.
//!
//! This replaces tonic's `Channel`, whose request buffer adds a task hop and a
//! channel send per call; calls here go straight to hyper's `SendRequest`.
//! Balancing across endpoints lives in `super` (p2c over in-flight calls).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::Uri;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tonic::Status;

/// A sender of calls whose body is one complete gRPC frame.
pub type Sender = SendRequest<super::grpc::Frame>;

/// How long an endpoint that refused a connection is passed over.
const DOWN_FOR: Duration = Duration::from_secs(1);

/// One endpoint of an upstream.
#[derive(Debug)]
pub struct Endpoint {
    /// `http://host:port`: the origin for `:scheme` and `:authority`.
    pub origin: Uri,
    address: String,
    connect_timeout: Duration,
    sender: Mutex<Option<Sender>>,
    /// Serialises connection attempts so a burst opens one connection.
    connecting: tokio::sync::Mutex<()>,
    in_flight: AtomicUsize,
    down_until: Mutex<Option<Instant>>,
}

/// Counts a call as in flight until dropped.
pub struct InFlight<'a>(&'a AtomicUsize);

// === impl Endpoint ===

impl Endpoint {
    pub fn new(origin: Uri, connect_timeout: Duration) -> Option<Endpoint> {
        let authority = origin.authority()?;
        let port = authority.port_u16().unwrap_or(80);
        Some(Endpoint {
            address: format!("{}:{port}", authority.host()),
            origin,
            connect_timeout,
            sender: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            in_flight: AtomicUsize::new(0),
            down_until: Mutex::new(None),
        })
    }

    /// Calls in flight on this endpoint, for balancing.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether a recent connection attempt failed.
    pub fn is_down(&self) -> bool {
        lock(&self.down_until).is_some_and(|until| Instant::now() < until)
    }

    pub fn track(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// A sender on the live connection, connecting first if there is none.
    pub async fn sender(&self, upstream: &str) -> Result<Sender, Status> {
        if let Some(sender) = self.live() {
            return Ok(sender);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(sender) = self.live() {
            return Ok(sender);
        }
        match self.connect().await {
            Ok(sender) => {
                *lock(&self.down_until) = None;
                *lock(&self.sender) = Some(sender.clone());
                Ok(sender)
            }
            Err(message) => {
                *lock(&self.down_until) = Some(Instant::now() + DOWN_FOR);
                Err(Status::unavailable(format!(
                    "upstream `{upstream}` at {}: {message}",
                    self.address
                )))
            }
        }
    }

    fn live(&self) -> Option<Sender> {
        lock(&self.sender)
            .as_ref()
            .filter(|s| !s.is_closed())
            .cloned()
    }

    async fn connect(&self) -> Result<Sender, String> {
        let stream = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(&self.address),
        )
        .await
        .map_err(|_| format!("no connection within {:?}", self.connect_timeout))?
        .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP/2 handshake failed: {e}"))?;
        let address = self.address.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%address, error = %e, "upstream connection closed");
            }
        });
        Ok(sender)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values are plain data: a panic elsewhere cannot leave them torn.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// === impl InFlight ===

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
