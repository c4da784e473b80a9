//! Edge workers, thread per core: each worker thread runs its own
//! current-thread event loop and serves the connections handed to it from
//! accept to close, with its own upstream connections.
//!
//! Measured against one multi-threaded runtime on the same core, this cut the
//! gateway's CPU per REST call by a quarter: with every task of a request on
//! one loop, woken tasks queue behind the ones already ready instead of
//! running at once (tokio's LIFO slot), so the upstream HTTP/2 connection
//! writes many requests per syscall and context switches drop five-fold
//! (bench/README.md).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsAcceptor;

use super::server::serve_worker;
use super::{EdgeSettings, Gateway, Shutdown};
use crate::upstream::endpoint::set_worker;

/// A connection handed to a worker: the socket, the peer, and the
/// listener's TLS acceptor when it serves TLS (the worker does the
/// handshake).
pub(super) type Handed = (std::net::TcpStream, SocketAddr, Option<TlsAcceptor>);

/// The worker threads and the channels that feed them connections.
pub struct WorkerPool {
    feeds: Vec<mpsc::Sender<Handed>>,
    next: AtomicUsize,
    done: std::sync::Mutex<Vec<oneshot::Receiver<()>>>,
}

// === impl WorkerPool ===

impl WorkerPool {
    /// Starts `count` workers serving `gateway` until `shutdown`.
    pub fn start(
        count: usize,
        gateway: Arc<Gateway>,
        settings: EdgeSettings,
        shutdown: Shutdown,
    ) -> std::io::Result<WorkerPool> {
        let mut feeds = Vec::with_capacity(count);
        let mut done = Vec::with_capacity(count);
        for index in 0..count.max(1) {
            // Bounded (`limits.worker_backlog`): beyond it the worker is overloaded
            // and a new connection is closed at once.
            let (feed, incoming) = mpsc::channel(settings.worker_backlog);
            let (finished, on_finished) = oneshot::channel();
            let (gateway, settings, shutdown) =
                (gateway.clone(), settings.clone(), shutdown.clone());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            std::thread::Builder::new()
                .name(format!("switchyard-worker-{index}"))
                .spawn(move || {
                    set_worker(index);
                    // Admission control's probe: this loop's own delay.
                    runtime.spawn(super::shedding::probe(gateway.clone(), index));
                    runtime.block_on(serve_worker(incoming, gateway, settings, shutdown));
                    // Dropping the runtime cancels whatever the drain left.
                    drop(runtime);
                    let _ = finished.send(());
                })?;
            feeds.push(feed);
            done.push(on_finished);
        }
        Ok(WorkerPool {
            feeds,
            next: AtomicUsize::new(0),
            done: std::sync::Mutex::new(done),
        })
    }

    /// Hands a connection to the next worker (round robin).
    pub fn dispatch(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        tls: Option<TlsAcceptor>,
    ) {
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, %peer, "cannot hand over connection");
                return;
            }
        };
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.feeds.len();
        if let Err(e) = self.feeds[index].try_send((stream, peer, tls)) {
            // Full: the worker is far behind; closing is kinder than queueing.
            tracing::warn!(%peer, worker = index, error = %e, "worker backlog full; connection closed");
        }
    }

    /// Waits until every worker has drained and stopped.
    pub async fn finished(&self) {
        let done = std::mem::take(
            &mut *self
                .done
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for worker in done {
            let _ = worker.await;
        }
    }
}
