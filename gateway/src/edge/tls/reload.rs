//! Certificate hot reload: a listener's TLS settings live behind an
//! [`ArcSwap`]; each accepted connection takes the current ones, so a
//! reload changes what new connections get and never touches established
//! ones. A watcher reads the listener's files every `reload_interval` and
//! rebuilds when their bytes changed (mtimes miss same-second rewrites and
//! Kubernetes' symlink swaps; the files are a few KiB). A set that does not
//! load (a certificate written before its key, a bad PEM) is logged and
//! counted; the running settings stay until the files load again.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus::IntCounterVec;
use tokio_rustls::TlsAcceptor;

use super::server_config;
use crate::config::ListenerTls;

/// The TLS side of one listener.
pub struct TlsListener {
    name: String,
    /// The listener's `tls:` with every path resolved.
    tls: ListenerTls,
    current: ArcSwap<rustls::ServerConfig>,
}

/// What one look at the files found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    /// The same bytes as last time.
    Unchanged,
    /// Changed and loaded: new connections get them.
    Reloaded,
    /// Changed but not loadable: the running settings stay.
    Failed(String),
}

impl TlsListener {
    /// Loads the listener's files; `resolve` turns a path of the config into
    /// a file path.
    pub fn new(
        name: &str,
        tls: &ListenerTls,
        resolve: impl Fn(&str) -> PathBuf,
    ) -> Result<TlsListener, String> {
        let mut tls = tls.clone();
        let path = |p: &str| resolve(p).display().to_string();
        for certificate in &mut tls.certificates {
            certificate.cert = path(&certificate.cert);
            certificate.key = path(&certificate.key);
        }
        if let Some(auth) = &mut tls.client_auth {
            auth.ca = path(&auth.ca);
        }
        let current = ArcSwap::new(server_config(&tls)?);
        Ok(TlsListener {
            name: name.to_owned(),
            tls,
            current,
        })
    }

    /// The acceptor for a connection accepted now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// The files the settings come from.
    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .tls
            .certificates
            .iter()
            .flat_map(|c| [PathBuf::from(&c.cert), PathBuf::from(&c.key)])
            .collect();
        files.extend(self.tls.client_auth.iter().map(|a| PathBuf::from(&a.ca)));
        files
    }

    /// The files' bytes (`None` for one that cannot be read).
    fn read(&self) -> Vec<Option<Vec<u8>>> {
        self.files()
            .iter()
            .map(|file| std::fs::read(file).ok())
            .collect()
    }

    /// Rebuilds the settings when the files differ from `seen` (updated).
    pub fn reload_if_changed(&self, seen: &mut Vec<Option<Vec<u8>>>) -> Reload {
        let now = self.read();
        if now == *seen {
            return Reload::Unchanged;
        }
        *seen = now;
        match server_config(&self.tls) {
            Ok(config) => {
                self.current.store(config);
                Reload::Reloaded
            }
            Err(e) => Reload::Failed(e),
        }
    }

    /// Looks at the files every `reload_interval` until `stop` (never when
    /// it is 0), logging and counting (`tls_reloads_total`) each change.
    pub async fn watch(self: Arc<Self>, reloads: IntCounterVec, stop: impl Future<Output = ()>) {
        let interval = self.tls.reload_interval.0;
        if interval.is_zero() {
            return;
        }
        tokio::pin!(stop);
        let mut seen = self.read();
        let mut every = tokio::time::interval_at(
            tokio::time::Instant::now() + interval,
            interval.max(Duration::from_millis(1)),
        );
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = &mut stop => return,
            }
            // Reading and parsing a few small files: not worth a blocking
            // thread every interval.
            match self.reload_if_changed(&mut seen) {
                Reload::Unchanged => {}
                Reload::Reloaded => {
                    tracing::info!(listener = %self.name, "TLS files changed: new connections get them");
                    reloads.with_label_values(&[&self.name, "reloaded"]).inc();
                }
                Reload::Failed(error) => {
                    tracing::warn!(listener = %self.name, %error, "TLS files changed but do not load: still serving the previous ones");
                    reloads.with_label_values(&[&self.name, "failed"]).inc();
                }
            }
        }
    }
}
