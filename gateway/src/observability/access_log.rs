//! The access log (`access_log:`): one JSON line per request, written by a
//! thread of its own through a bounded queue, so a slow disk or a blocked
//! stdout never holds a request; past `buffer_lines` waiting lines, lines
//! are dropped and counted (`switchyard_access_log_dropped_total`).
//!
//! A line is written when the response body ends (or the client goes
//! away): its `bytes` are the body bytes sent, its `duration_ms` the whole
//! exchange, its `grpc_status` the one in the trailers when the call
//! streamed. No bodies, no header values but the request id and the trace
//! id, and paths as the route's template (`/v1/users/{id}`), never as sent.
//!
//! ```json
//! {"time":"2026-11-29T07:40:12.113Z","request_id":"4f0c…","trace_id":"4bf9…",
//!  "route":"users","method":"GET","path":"/v1/users/{id}","protocol":"rest",
//!  "status":200,"grpc_status":0,"upstream":"users","duration_ms":1.84,
//!  "bytes":87,"consumer":"ci","client":"10.0.0.7"}
//! ```
//!
//! A route with a `split` adds `"variant"` (and `upstream` is the
//! variant's).

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as _, Frame, SizeHint};
use serde::Serialize;
use switchyard_plugins::stage::{Body, BoxError, Response};
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};

use crate::config::AccessLogConfig;

/// An open access log.
pub struct AccessLog {
    writer: NonBlocking,
    /// Flushes what is queued when the log is dropped (the runtime it
    /// belongs to is replaced, or the process stops).
    _guard: WorkerGuard,
    sample: f64,
    dropped: ErrorCounter,
    /// `access_log_dropped_total`, and the drops already added to it.
    dropped_total: prometheus::IntCounter,
    counted: AtomicUsize,
}

/// What the dispatcher knows of a request before it is served.
pub struct Started {
    pub at: SystemTime,
    pub clock: Instant,
    pub method: http::Method,
    pub trace_id: Option<String>,
    pub client: Option<IpAddr>,
    /// Filled by `auth` when it admits the request.
    pub consumer: Arc<OnceLock<String>>,
    /// Filled with the variant and its upstream when a split route chose.
    pub variant: crate::routing::VariantSlot,
}

/// What the dispatcher learnt serving it.
pub struct Served {
    pub route: String,
    pub path: String,
    pub protocol: &'static str,
    pub upstream: Option<String>,
}

/// One line.
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    request_id: Option<&'a str>,
    trace_id: Option<&'a str>,
    route: &'a str,
    method: &'a str,
    path: &'a str,
    protocol: &'static str,
    status: u16,
    grpc_status: Option<i32>,
    upstream: Option<&'a str>,
    /// The variant of a split route (`routes[].split`).
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
    duration_ms: f64,
    bytes: u64,
    consumer: Option<&'a str>,
    client: Option<IpAddr>,
    /// The client went away before the body ended.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    incomplete: bool,
}

impl AccessLog {
    /// Opens the log `config` names (`stdout`, `stderr`, or a file appended
    /// to, created if missing; `resolve` turns a relative path into one).
    pub fn open(
        config: &AccessLogConfig,
        resolve: impl Fn(&str) -> std::path::PathBuf,
        dropped_total: prometheus::IntCounter,
    ) -> Result<AccessLog, String> {
        let builder = NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(config.buffer_lines.max(1))
            .thread_name("access-log");
        let (writer, guard) = match config.output.as_str() {
            "stdout" => builder.finish(std::io::stdout()),
            "stderr" => builder.finish(std::io::stderr()),
            path => builder.finish(std::io::BufWriter::new(open_file(&resolve(path))?)),
        };
        Ok(AccessLog {
            dropped: writer.error_counter(),
            writer,
            _guard: guard,
            sample: config.sample.clamp(0.0, 1.0),
            dropped_total,
            counted: AtomicUsize::new(0),
        })
    }

    /// Lines dropped so far because the queue was full.
    pub fn dropped(&self) -> usize {
        self.dropped.dropped_lines()
    }

    /// Wraps the response so that its line is written when the body ends;
    /// an exchange outside the sample is not logged unless it failed
    /// (status 5xx, or a gRPC status other than OK in the head).
    pub fn wrap(
        self: &Arc<Self>,
        response: Response,
        started: Started,
        served: Served,
    ) -> Response {
        let head_status = grpc_status(response.headers());
        let failed = response.status().is_server_error() || head_status.is_some_and(|s| s != 0);
        if !failed && self.sample < 1.0 && fastrand::f64() >= self.sample {
            return response;
        }
        let (parts, body) = response.into_parts();
        let pending = Pending {
            log: self.clone(),
            request_id: parts
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            status: parts.status.as_u16(),
            grpc_status: head_status,
            started,
            served,
            bytes: 0,
        };
        let body = Logged {
            inner: body,
            pending: Some(pending),
        };
        Response::from_parts(parts, Body::new(body))
    }

    fn write(&self, line: &Line<'_>) {
        let mut buf = Vec::with_capacity(320);
        if serde_json::to_writer(&mut buf, line).is_ok() {
            buf.push(b'\n');
            // One write, one queued line (`NonBlocking` never splits it).
            let _ = self.writer.clone().write_all(&buf);
        }
        let dropped = self.dropped();
        let counted = self.counted.swap(dropped, Ordering::Relaxed);
        if dropped > counted {
            self.dropped_total.inc_by((dropped - counted) as u64);
        }
    }
}

fn open_file(path: &Path) -> Result<std::fs::File, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open the access log {}: {e}", path.display()))
}

fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// The line of one exchange, until its body ends.
struct Pending {
    log: Arc<AccessLog>,
    request_id: Option<String>,
    status: u16,
    grpc_status: Option<i32>,
    started: Started,
    served: Served,
    bytes: u64,
}

impl Pending {
    fn finish(self, incomplete: bool) {
        let started = &self.started;
        let line = Line {
            time: humantime::format_rfc3339_millis(started.at).to_string(),
            request_id: self.request_id.as_deref(),
            trace_id: started.trace_id.as_deref(),
            route: &self.served.route,
            method: started.method.as_str(),
            path: &self.served.path,
            protocol: self.served.protocol,
            status: self.status,
            grpc_status: self.grpc_status,
            upstream: match started.variant.0.get() {
                Some((_, upstream)) => Some(upstream.as_str()),
                None => self.served.upstream.as_deref(),
            },
            variant: started.variant.0.get().map(|(variant, _)| &**variant),
            duration_ms: (started.clock.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
            bytes: self.bytes,
            consumer: started.consumer.get().map(String::as_str),
            client: started.client,
            incomplete,
        };
        self.log.write(&line);
    }
}

/// A response body that writes its exchange's line when it ends or is
/// dropped.
struct Logged {
    inner: Body,
    pending: Option<Pending>,
}

impl http_body::Body for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(pending) = &mut self.pending {
                    if let Some(data) = frame.data_ref() {
                        pending.bytes += data.len() as u64;
                    } else if let Some(trailers) = frame.trailers_ref()
                        && let Some(status) = grpc_status(trailers)
                    {
                        pending.grpc_status = Some(status);
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(pending) = self.pending.take() {
                    pending.finish(false);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(pending) = self.pending.take() {
                    pending.finish(true);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            // A body hyper never polled to its end: a complete empty body
            // (HEAD, 204) is not `incomplete`.
            let ended = self.inner.is_end_stream();
            pending.finish(!ended);
        }
    }
}
