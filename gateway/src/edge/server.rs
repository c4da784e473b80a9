//! Listeners and connections. One hyper-util auto builder (HTTP/1.1 and h2c
//! by preface) per worker, with the edge limits from the config, over TCP or
//! TLS (`edge::tls`; the worker does the handshake); every connection is
//! watched so shutdown can drain it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use switchyard_plugins::body_deadline::DeadlineBody;
use switchyard_plugins::stage::{ClientAddr, ClientCertificate, box_body};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::Gateway;
use super::tls::TlsListener;
use super::workers::{Handed, WorkerPool};
use crate::config::Limits;

/// Connection-level settings, taken from `limits:`.
#[derive(Clone, Debug)]
pub struct EdgeSettings {
    pub max_headers: usize,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub h2_max_concurrent_streams: u32,
    pub shutdown_grace: Duration,
    pub worker_backlog: usize,
}

/// Signals listeners to stop accepting and drain.
#[derive(Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
    rx: watch::Receiver<bool>,
}

// === impl EdgeSettings ===

impl From<&Limits> for EdgeSettings {
    fn from(l: &Limits) -> Self {
        EdgeSettings {
            max_headers: l.max_headers,
            max_header_bytes: l.max_header_bytes.as_usize(),
            header_read_timeout: l.header_read_timeout.0,
            h2_max_concurrent_streams: l.h2_max_concurrent_streams,
            shutdown_grace: l.shutdown_grace.0,
            worker_backlog: l.worker_backlog.max(1),
        }
    }
}

// === impl Shutdown ===

impl Shutdown {
    pub fn new() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        Shutdown {
            tx: Arc::new(tx),
            rx,
        }
    }

    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }

    /// Resolves once shutdown was triggered.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

// === serving ===

fn builder(settings: &EdgeSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_headers(settings.max_headers)
        .max_buf_size(settings.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

/// Accepts on `listener` until `shutdown`, handing each connection to a
/// worker (with `tls`, the listener's TLS acceptor). Accepting is cheap and
/// rare (connections are kept alive), so one task per listener does it; the
/// workers do everything else, the TLS handshake included.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<TlsListener>>,
    workers: Arc<WorkerPool>,
    shutdown: Shutdown,
) {
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                // The TLS settings of now: a certificate reload reaches
                // new connections only.
                workers.dispatch(stream, peer, tls.as_ref().map(|t| t.acceptor()));
            }
            () = &mut stop => break,
        }
    }
}

/// Serves connections handed to this worker until shutdown, then drains them
/// for at most the grace period. Runs on the worker's own event loop.
pub(super) async fn serve_worker(
    mut incoming: tokio::sync::mpsc::Receiver<Handed>,
    gateway: Arc<Gateway>,
    settings: EdgeSettings,
    shutdown: Shutdown,
) {
    let builder = builder(&settings);
    let graceful = GracefulShutdown::new();
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            next = incoming.recv() => {
                let Some((stream, peer, tls)) = next else { break };
                match (tokio::net::TcpStream::from_std(stream), tls) {
                    (Ok(stream), None) => serve_connection(&builder, &graceful, stream, peer, gateway.clone()),
                    (Ok(stream), Some(tls)) => {
                        let (builder, watcher, gateway) = (builder.clone(), graceful.watcher(), gateway.clone());
                        let timeout = settings.header_read_timeout;
                        tokio::spawn(async move {
                            let handshakes = &gateway.metrics.tls_handshakes;
                            match tokio::time::timeout(timeout, tls.accept(stream)).await {
                                Ok(Ok(stream)) => {
                                    handshakes.with_label_values(&["ok"]).inc();
                                    let client = super::tls::client_certificate(stream.get_ref().1);
                                    serve_connection_watched(&builder, watcher, stream, peer, client, gateway);
                                }
                                Ok(Err(e)) => {
                                    handshakes.with_label_values(&["failed"]).inc();
                                    tracing::debug!(error = %e, %peer, "TLS handshake failed");
                                }
                                Err(_) => {
                                    handshakes.with_label_values(&["timeout"]).inc();
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                }
                            }
                        });
                    }
                    (Err(e), _) => tracing::warn!(error = %e, %peer, "cannot register connection"),
                }
            }
            () = &mut stop => break,
        }
    }
    // Upgraded connections (WebSockets) left `graceful`: their sessions
    // close on the same signal and are waited for within the same grace.
    let drained = async {
        graceful.shutdown().await;
        gateway.sessions.drained().await;
    };
    tokio::select! {
        () = drained => tracing::debug!("connections drained"),
        () = tokio::time::sleep(settings.shutdown_grace) => tracing::warn!("drain deadline passed; closing remaining connections"),
    }
}

fn serve_connection<I>(
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    stream: I,
    peer: SocketAddr,
    gateway: Arc<Gateway>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve_connection_watched(builder, graceful.watcher(), stream, peer, None, gateway);
}

/// Serves one connection (TCP or TLS), drained by the graceful shutdown
/// behind `watcher`; each request carries the peer's address and, over
/// mutual TLS, the client certificate's identity.
fn serve_connection_watched<I>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    stream: I,
    peer: SocketAddr,
    client: Option<ClientCertificate>,
    gateway: Arc<Gateway>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let transport = if client.is_some() || is_tls::<I>() {
        "tls"
    } else {
        "tcp"
    };
    let tls = transport == "tls";
    let metrics = &gateway.metrics;
    metrics.connections.with_label_values(&[transport]).inc();
    let open = Open::new(metrics.connections_open.with_label_values(&[transport]));
    // Read from the runtime of the connection's start: a reload reaches new connections.
    let body_timeout = gateway.runtime().loaded.config.limits.body_read_timeout.0;
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        // gRPC and gRPC-Web bodies are streams of messages, bound by the
        // call's deadline, not by `body_read_timeout`.
        let mut req = if crate::grpc::Protocol::of(req.headers()).is_some() {
            req.map(box_body)
        } else {
            req.map(|body| box_body(DeadlineBody::new(body, body_timeout)))
        };
        req.extensions_mut().insert(ClientAddr(peer));
        if tls {
            req.extensions_mut().insert(crate::proxy::Encrypted);
        }
        if let Some(client) = &client {
            req.extensions_mut().insert(client.clone());
        }
        gateway.clone().dispatch(req)
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    let conn = watcher.watch(conn.into_owned());
    tokio::spawn(async move {
        let _open = open;
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, %peer, "connection ended with an error");
        }
    });
}

/// Counts a connection in `connections_open` while it lives.
struct Open(prometheus::IntGauge);

impl Open {
    fn new(gauge: prometheus::IntGauge) -> Open {
        gauge.inc();
        Open(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Whether connections of type `I` are TLS streams.
fn is_tls<I: 'static>() -> bool {
    std::any::TypeId::of::<I>()
        == std::any::TypeId::of::<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>()
}
