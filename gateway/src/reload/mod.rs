//! Config reload without a restart (docs/operations.md).
//!
//! A reload — the file watch, `SIGHUP`, or `POST /admin/reload` — reads the
//! config file, compiles the complete next [`Runtime`] beside the running
//! one (protos, routes, plugin stacks; the events subsystem and unchanged
//! upstreams taken over), and swaps it in atomically. Requests and streams
//! in flight finish on the version they started on. A file that does not
//! compile changes nothing: the running version keeps serving, the error
//! (file, line, key) is logged, counted in
//! `switchyard_config_reload_total{result="error"}` and shown by
//! `/admin/config`. Reloads run one at a time.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;

use crate::config::{self, ConfigError};
use crate::edge::Gateway;
use crate::runtime::Runtime;

pub mod exposed;
pub mod redact;
pub mod watch;

use watch::Fingerprint;

/// Reload attempts `/admin/config` lists, newest first.
pub const HISTORY: usize = 20;

/// What asked for a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The process started with this version.
    Start,
    /// The watch saw the files change.
    Watch,
    /// `SIGHUP`.
    Signal,
    /// `POST /admin/reload`.
    Admin,
}

/// One reload attempt, as `/admin/config` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    /// RFC 3339, UTC.
    pub at: String,
    pub trigger: Trigger,
    /// `ok` or `error`.
    pub result: &'static str,
    /// The version serving after the attempt.
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

/// Why a reload was refused.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub file: String,
    /// 1-based; 0 when the error has no place in the file.
    pub line: u64,
    pub column: u64,
    /// The config key, e.g. `routes[0].upstream`.
    pub key: String,
    pub message: String,
}

impl From<&ConfigError> for Failure {
    fn from(e: &ConfigError) -> Failure {
        Failure {
            file: e.file.display().to_string(),
            line: e.line,
            column: e.column,
            key: e.key.clone(),
            message: e.message.clone(),
        }
    }
}

/// The running version and what happened to the reloads.
#[derive(Debug)]
struct State {
    /// The running version's fingerprint, as hex (its first 12 digits).
    version: String,
    loaded_at: String,
    /// The fingerprint of the files the last attempt read (the watch does
    /// not try the same bytes twice).
    seen: Option<Fingerprint>,
    last_error: Option<Failure>,
    history: VecDeque<Attempt>,
}

/// Reloads one gateway's config.
pub struct Reloader {
    /// The config file.
    pub path: PathBuf,
    pub gateway: Arc<Gateway>,
    /// `--strict-reload` (or the running config's `reload.strict`).
    strict: bool,
    /// One reload at a time.
    running: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

/// What `/admin/config` shows about versions.
#[derive(Debug, Serialize)]
pub struct Status {
    pub file: String,
    pub version: String,
    pub loaded_at: String,
    pub strict: bool,
    pub last_error: Option<Failure>,
    pub history: Vec<Attempt>,
}

impl Reloader {
    /// The reloader of `gateway`, serving the config read from `path`.
    pub fn new(path: PathBuf, gateway: Arc<Gateway>, strict: bool) -> Arc<Reloader> {
        let runtime = gateway.runtime();
        // The text the running version was compiled from.
        let text = runtime.loaded.source.text().as_bytes();
        let fingerprint = watch::fingerprint(&runtime.loaded, text);
        let seen = Some(fingerprint);
        let version = hex(&fingerprint);
        let now = now();
        let history = VecDeque::from([Attempt {
            at: now.clone(),
            trigger: Trigger::Start,
            result: "ok",
            version: version.clone(),
            error: None,
        }]);
        Arc::new(Reloader {
            path,
            gateway,
            strict,
            running: tokio::sync::Mutex::new(()),
            state: Mutex::new(State {
                version,
                loaded_at: now,
                seen,
                last_error: None,
                history,
            }),
        })
    }

    /// Reloads now; the version serving after it, or why the file was
    /// refused (the running version keeps serving then).
    pub async fn reload(&self, trigger: Trigger) -> Result<String, ConfigError> {
        let _one_at_a_time = self.running.lock().await;
        let current = self.gateway.runtime();
        let (next, text) = match self.next(&current).await {
            Ok(next) => next,
            Err((e, text)) => {
                let seen = text.map(|t| watch::fingerprint(&current.loaded, &t));
                tracing::error!(trigger = ?trigger, error = %e, "config reload refused: the running config keeps serving");
                self.gateway.metrics.config_reloads(false);
                let mut state = self.lock();
                state.seen = seen.or(state.seen);
                let version = state.version.clone();
                let failure = Failure::from(&e);
                state.last_error = Some(failure.clone());
                state.record(trigger, "error", version, Some(failure));
                return Err(e);
            }
        };
        let fingerprint = watch::fingerprint(&next.loaded, &text);
        let version = hex(&fingerprint);
        let routes = next.loaded.config.routes.len();
        self.gateway.swap(next);
        self.gateway.metrics.config_reloads(true);
        tracing::info!(trigger = ?trigger, version = %version, routes, "config reloaded");
        let mut state = self.lock();
        state.seen = Some(fingerprint);
        state.version = version.clone();
        state.loaded_at = now();
        state.record(trigger, "ok", version.clone(), None);
        Ok(version)
    }

    /// Reads and compiles the next version; on error, the file's bytes
    /// when it could be read.
    async fn next(
        &self,
        current: &Arc<Runtime>,
    ) -> Result<(Runtime, Vec<u8>), (ConfigError, Option<Vec<u8>>)> {
        let path = self.path.clone();
        let read = tokio::task::spawn_blocking(move || std::fs::read_to_string(&path)).await;
        let text = match read {
            Ok(Ok(text)) => text,
            Ok(Err(e)) => {
                let e = ConfigError::file(&self.path, format!("cannot read config file: {e}"));
                return Err((e, None));
            }
            Err(e) => return Err((ConfigError::file(&self.path, e.to_string()), None)),
        };
        let bytes = text.clone().into_bytes();
        let loaded = config::parse(&self.path, text).map_err(|e| (e, Some(bytes.clone())))?;
        let next = current
            .build_next(loaded)
            .await
            .map_err(|e| (e, Some(bytes.clone())))?;
        if self.strict || current.loaded.config.reload.strict {
            let dropped = exposed::dropped(current, &next);
            if !dropped.is_empty() {
                let e = ConfigError::file(
                    &self.path,
                    format!(
                        "strict reload: the new config stops exposing {} method(s) the running one exposes: {}",
                        dropped.len(),
                        dropped.join("; ")
                    ),
                );
                return Err((e, Some(bytes)));
            }
        }
        Ok((next, bytes))
    }

    /// The fingerprint of the files the last attempt read.
    pub fn seen(&self) -> Option<Fingerprint> {
        self.lock().seen
    }

    /// The running version and the reload history.
    pub fn status(&self) -> Status {
        let state = self.lock();
        Status {
            file: self.path.display().to_string(),
            version: state.version.clone(),
            loaded_at: state.loaded_at.clone(),
            strict: self.strict || self.gateway.runtime().loaded.config.reload.strict,
            last_error: state.last_error.clone(),
            history: state.history.iter().cloned().collect(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl State {
    fn record(
        &mut self,
        trigger: Trigger,
        result: &'static str,
        version: String,
        error: Option<Failure>,
    ) {
        if self.history.len() == HISTORY {
            self.history.pop_back();
        }
        self.history.push_front(Attempt {
            at: now(),
            trigger,
            result,
            version,
            error,
        });
    }
}

/// The first 12 hex digits.
fn hex(fingerprint: &Fingerprint) -> String {
    fingerprint[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}
