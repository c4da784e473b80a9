//! Server-streaming methods over REST: each upstream message is sent as it
//! arrives, as Server-Sent Events (`Accept: text/event-stream`: an `id:`
//! counting from 1 and the JSON as `data:` per message, `event: error` with
//! the google.rpc.Status JSON on failure, a comment line every
//! `limits.stream_heartbeat` while idle) or as newline-delimited JSON
//! (`application/x-ndjson`, the default: one message per line, a failure as
//! a last line `{"error": {…status…}}`).
//!
//! A failure before the stream starts (the upstream's handler refusing the
//! call) is an ordinary JSON error with its HTTP status. A client's
//! `Last-Event-ID` reaches the upstream as `last-event-id` metadata, so it
//! can resume. Backpressure is the client's: the next message is read from
//! the upstream only once the previous one is sent. A client that goes away
//! drops the body, which cancels the upstream call. At most
//! `limits.max_streams` are open at once (503 beyond).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt as _;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use http_body::Frame;
use http_body_util::StreamBody;
use prometheus::IntGauge;
use prost_reflect::DynamicMessage;
use switchyard_plugins::error::{Code, ErrorResponse};
use switchyard_plugins::stage::{BoxError, Response, box_body};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::binding::Binding;
use super::handler::{forward_metadata, observe_upstream, upstream_error};
use super::response;
use crate::config::Limits;
use crate::observability::Metrics;
use crate::upstream::stream::MessageStream;
use crate::upstream::{Call, Upstream};

const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// How streams are bounded.
#[derive(Clone, Debug)]
pub struct StreamLimits {
    slots: Arc<Semaphore>,
    max: usize,
    heartbeat: Duration,
}

/// How the messages are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Sse,
    Ndjson,
}

// === impl StreamLimits ===

impl StreamLimits {
    pub fn new(limits: &Limits) -> StreamLimits {
        StreamLimits {
            slots: Arc::new(Semaphore::new(limits.max_streams)),
            max: limits.max_streams,
            heartbeat: limits.stream_heartbeat.0.max(Duration::from_millis(10)),
        }
    }

    /// One of the `limits.max_streams` slots, or 503.
    pub(super) fn permit(&self) -> Result<OwnedSemaphorePermit, ErrorResponse> {
        self.slots.clone().try_acquire_owned().map_err(|_| {
            ErrorResponse::with_status(
                StatusCode::SERVICE_UNAVAILABLE,
                Code::Unavailable,
                format!("too many streams open (limits.max_streams = {})", self.max),
            )
        })
    }

    /// `limits.stream_heartbeat`: SSE comments, WebSocket pings.
    pub(super) fn heartbeat(&self) -> Duration {
        self.heartbeat
    }
}

// === impl Format ===

impl Format {
    /// SSE when the client accepts `text/event-stream`, else NDJSON.
    pub fn of(headers: &HeaderMap) -> Format {
        let sse = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/event-stream"));
        if sse { Format::Sse } else { Format::Ndjson }
    }

    fn label(self) -> &'static str {
        match self {
            Format::Sse => "sse",
            Format::Ndjson => "ndjson",
        }
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Format::Sse => "text/event-stream",
            Format::Ndjson => "application/x-ndjson",
        })
    }
}

/// Opens the server stream for `message` and answers with its messages.
pub async fn serve(
    binding: Arc<Binding>,
    upstream: Upstream,
    message: DynamicMessage,
    headers: &HeaderMap,
) -> Result<Response, ErrorResponse> {
    let route = &binding.route;
    let format = Format::of(headers);
    let permit = route.streams.permit()?;
    let mut metadata = forward_metadata(headers, &route.headers);
    if let Some(id) = headers.get(&LAST_EVENT_ID) {
        metadata.insert(LAST_EVENT_ID, id.clone());
    }
    let call = Call {
        path: &binding.grpc_path,
        output: &binding.output,
        metadata,
        timeout: route.timeout,
        idempotent: false,
    };
    let started = Instant::now();
    let result = upstream.server_stream(call, &message).await;
    observe_upstream(route, &upstream, started, &result);
    let messages = result.map_err(|e| upstream_error(route, e))?;
    let slot = Slot::new(&route.metrics, format.label(), permit);
    let feed = Feed {
        binding: binding.clone(),
        messages,
        format,
        heartbeat: tokio::time::interval_at(
            tokio::time::Instant::now() + route.streams.heartbeat,
            route.streams.heartbeat,
        ),
        sent: 0,
        done: false,
        _slot: slot,
    };
    let frames = futures_util::stream::unfold(feed, Feed::next_frame)
        .map(|bytes| Ok::<_, BoxError>(Frame::data(bytes)));
    let mut response = http::Response::new(box_body(StreamBody::new(frames)));
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, format.content_type());
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies such as nginx must not buffer the stream.
    out.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    Ok(response)
}

/// An open stream, counted in `streams_open{protocol}` until dropped.
pub(super) struct Slot {
    open: IntGauge,
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    pub(super) fn new(metrics: &Metrics, protocol: &str, permit: OwnedSemaphorePermit) -> Slot {
        let open = metrics.grpc.open_streams.with_label_values(&[protocol]);
        open.inc();
        Slot {
            open,
            _permit: permit,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// The state of one response stream.
struct Feed {
    binding: Arc<Binding>,
    messages: MessageStream,
    format: Format,
    heartbeat: tokio::time::Interval,
    sent: u64,
    done: bool,
    _slot: Slot,
}

impl Feed {
    /// The next bytes to send: a message, a heartbeat or the error; `None`
    /// once the stream is over.
    async fn next_frame(mut self) -> Option<(Bytes, Feed)> {
        if self.done {
            return None;
        }
        let next = tokio::select! {
            next = self.messages.next() => next,
            _ = self.heartbeat.tick(), if self.format == Format::Sse => {
                return Some((Bytes::from_static(b": heartbeat\n\n"), self));
            }
        };
        let bytes = match next {
            None => return None,
            Some(Ok(message)) => match response::render(&self.binding, &message) {
                Ok(json) => {
                    self.sent += 1;
                    self.message(&json)
                }
                Err(error) => self.error(&error),
            },
            Some(Err(error)) => self.error(&upstream_error(&self.binding.route, error)),
        };
        self.heartbeat.reset();
        Some((bytes, self))
    }

    fn message(&self, json: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(json.len() + 32);
        match self.format {
            Format::Sse => {
                out.put_slice(format!("id: {}\n", self.sent).as_bytes());
                data_lines(&mut out, json);
                out.put_slice(b"\n");
            }
            Format::Ndjson => {
                out.put_slice(json);
                out.put_u8(b'\n');
            }
        }
        out.freeze()
    }

    /// The last frame: the failure as a google.rpc.Status.
    fn error(&mut self, error: &ErrorResponse) -> Bytes {
        self.done = true;
        let status = error.body_json();
        let mut out = BytesMut::with_capacity(status.len() + 32);
        match self.format {
            Format::Sse => {
                out.put_slice(b"event: error\n");
                data_lines(&mut out, &status);
                out.put_slice(b"\n");
            }
            Format::Ndjson => {
                out.put_slice(b"{\"error\":");
                out.put_slice(&status);
                out.put_slice(b"}\n");
            }
        }
        out.freeze()
    }
}

/// `data:` lines for `json` (one per line it has, as SSE requires).
fn data_lines(out: &mut BytesMut, json: &[u8]) {
    for line in json.split(|b| *b == b'\n') {
        out.put_slice(b"data: ");
        out.put_slice(line);
        out.put_u8(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_is_chosen_by_accept_and_ndjson_is_the_default() {
        let mut h = HeaderMap::new();
        assert_eq!(Format::of(&h), Format::Ndjson);
        h.insert(header::ACCEPT, "text/event-stream".parse().unwrap());
        assert_eq!(Format::of(&h), Format::Sse);
        h.insert(header::ACCEPT, "application/x-ndjson".parse().unwrap());
        assert_eq!(Format::of(&h), Format::Ndjson);
    }

    #[test]
    fn multi_line_json_becomes_one_data_line_per_line() {
        let mut out = BytesMut::new();
        data_lines(&mut out, b"{\n  \"a\": 1\n}");
        assert_eq!(&out[..], b"data: {\ndata:   \"a\": 1\ndata: }\n");
    }
}
