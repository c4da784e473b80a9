//! Starting and stopping a whole gateway: compile the config, bind the
//! listeners and the admin listener, serve until told to stop, then drain.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::admin;
use crate::config::{ConfigError, KeyPath, LoadedConfig};
use crate::edge::{self, EdgeSettings, Gateway, Shutdown, WorkerPool};
use crate::observability::Metrics;
use crate::reload::{self, Reloader, Trigger};
use crate::runtime::Runtime;

/// A started gateway.
pub struct Running {
    /// Bound public addresses, in `listeners:` order (port 0 resolved).
    pub listeners: Vec<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub gateway: Arc<Gateway>,
    /// Reloads the config file the gateway was started from.
    pub reloader: Arc<Reloader>,
    shutdown: Shutdown,
    tasks: JoinSet<()>,
    workers: Arc<WorkerPool>,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] ConfigError),
}

/// How to start.
#[derive(Clone, Copy, Debug, Default)]
pub struct StartOptions {
    /// `--strict-reload`: refuse a reload that stops exposing a method.
    pub strict_reload: bool,
}

/// Compiles `loaded` and starts serving it.
pub async fn start(loaded: LoadedConfig) -> Result<Running, StartError> {
    start_with(loaded, StartOptions::default()).await
}

/// [`start`] with options.
pub async fn start_with(
    loaded: LoadedConfig,
    options: StartOptions,
) -> Result<Running, StartError> {
    let source = loaded.source.clone();
    let settings = EdgeSettings::from(&loaded.config.limits);
    let listeners_cfg = loaded.config.listeners.clone();
    let worker_count = loaded.config.worker_count();
    let admin_cfg = loaded.config.admin.clone();
    let tls = edge::tls::listeners(&loaded)?;
    let metrics = Arc::new(Metrics::new());
    let runtime = Runtime::build(loaded, metrics.clone()).await?;
    let shutdown = Shutdown::new();
    let gateway = Gateway::new(runtime, shutdown.clone());
    let workers = WorkerPool::start(worker_count, gateway.clone(), settings, shutdown.clone())
        .map_err(|e| {
            source.error_at(
                &KeyPath::root().key("workers"),
                format!("cannot start worker threads: {e}"),
            )
        })?;
    let workers = Arc::new(workers);
    let reloader = Reloader::new(source.path.clone(), gateway.clone(), options.strict_reload);
    let mut tasks = JoinSet::new();
    tasks.spawn(reload::watch::watch(reloader.clone(), shutdown.wait()));
    let mut bound = Vec::new();
    for (i, listener) in listeners_cfg.iter().enumerate() {
        let key = KeyPath::root().key("listeners").index(i).key("address");
        let socket = bind(&listener.address)
            .await
            .map_err(|e| source.error_at(&key, e))?;
        bound.push(
            socket
                .local_addr()
                .map_err(|e| source.error_at(&key, e.to_string()))?,
        );
        let tls = tls[i].clone();
        tracing::info!(listener = %listener.name, address = %bound[i], tls = tls.is_some(), "listening");
        if let Some(tls) = &tls {
            tasks.spawn(tls.clone().watch(metrics.tls_reloads(), shutdown.wait()));
        }
        tasks.spawn(edge::serve(socket, tls, workers.clone(), shutdown.clone()));
    }
    let mut admin_addr = None;
    if admin_cfg.enabled {
        let key = KeyPath::root().key("admin").key("address");
        let socket = bind(&admin_cfg.address)
            .await
            .map_err(|e| source.error_at(&key, e))?;
        let addr = socket
            .local_addr()
            .map_err(|e| source.error_at(&key, e.to_string()))?;
        tracing::info!(address = %addr, "admin listening");
        admin_addr = Some(addr);
        tasks.spawn(admin::serve(socket, reloader.clone(), shutdown.clone()));
    }
    gateway.set_ready(true);
    Ok(Running {
        listeners: bound,
        admin: admin_addr,
        gateway,
        reloader,
        shutdown,
        tasks,
        workers,
    })
}

async fn bind(address: &str) -> Result<TcpListener, String> {
    TcpListener::bind(address)
        .await
        .map_err(|e| format!("cannot listen on {address}: {e}"))
}

// === impl Running ===

impl Running {
    /// Stops accepting, drains in-flight requests (bounded by
    /// `limits.shutdown_grace`), and returns when every listener is done.
    pub async fn stop(mut self) {
        self.gateway.set_ready(false);
        self.shutdown.trigger();
        while self.tasks.join_next().await.is_some() {}
        self.workers.finished().await;
    }

    /// Serves until SIGINT or SIGTERM, then stops; reloads the config on
    /// SIGHUP.
    pub async fn run_until_signal(self) {
        #[cfg(unix)]
        let hangups = tokio::spawn(reload_on_hangup(self.reloader.clone()));
        wait_for_signal().await;
        #[cfg(unix)]
        hangups.abort();
        tracing::info!("shutting down: draining connections");
        self.stop().await;
    }
}

/// Reloads the config at each SIGHUP.
#[cfg(unix)]
async fn reload_on_hangup(reloader: Arc<Reloader>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: reload with POST /admin/reload");
        return;
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the config");
        // The outcome is logged, counted and kept for /admin/config.
        let _ = reloader.reload(Trigger::Signal).await;
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
