//! GraphQL over Server-Sent Events, "distinct connections" mode of the
//! GraphQL over SSE protocol: one operation per request (`POST` with a JSON
//! body, or `GET` with the query string for queries and subscriptions an
//! `EventSource` can open), `Accept: text/event-stream`. Each result is an
//! `event: next` with the JSON response as data, the end an
//! `event: complete`; a comment line every `graphql.subscriptions.keepalive`
//! keeps idle connections open through proxies.
//!
//! A request refused before anything runs (limits, persisted queries, a
//! malformed body) is an ordinary JSON 4xx, not a stream.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use switchyard_plugins::stage::{BoxError, Response};

use super::{Slot, Transport, execute};
use crate::graphql::call::RequestHeaders;
use crate::graphql::http::{Body, Served, errors_json, reject, render};
use crate::graphql::protection::{Prepared, prepare};

const EVENT_STREAM: &str = "text/event-stream";

/// Whether the client asks for an event stream.
pub fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(EVENT_STREAM))
}

/// Runs one operation as an event stream.
pub(crate) fn serve(served: &Served, parts: &http::request::Parts, body: Body) -> Response {
    let request = match prepare(&served.protection, &parts.method, body) {
        Ok(Prepared::Ready(request, operation)) => {
            operation.observe(&served.protection, "ok");
            request
        }
        Ok(Prepared::Refused(refusals)) => return refused(StatusCode::BAD_REQUEST, &refusals),
        Err(rejected) => return reject(rejected, false),
    };
    let slot = match served.subscriptions.open(Transport::Sse) {
        Ok(slot) => slot,
        Err(refusal) => return refused(StatusCode::SERVICE_UNAVAILABLE, &[refusal]),
    };
    let feed = Feed {
        events: execute(
            served,
            request,
            &RequestHeaders::of(&parts.headers, &parts.extensions),
        ),
        keepalive: keepalive(served.subscriptions.config.keepalive.0),
        slot,
        done: false,
    };
    let frames = futures_util::stream::unfold(feed, Feed::next_frame)
        .map(|bytes| Ok::<_, BoxError>(Frame::data(bytes)));
    let mut res = http::Response::new(StreamBody::new(frames).boxed_unsync());
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(EVENT_STREAM));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tells nginx-style proxies in front not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

/// Refused before it ran: the JSON errors, as a GraphQL-over-HTTP answer.
fn refused(status: StatusCode, refusals: &[crate::graphql::limits::Refusal]) -> Response {
    render(status, &errors_json(refusals), false)
}

fn keepalive(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

/// The operation's responses becoming the body, read only as the client
/// reads: dropping it (the client went away) cancels the upstream stream.
struct Feed {
    events: BoxStream<'static, async_graphql::Response>,
    keepalive: tokio::time::Interval,
    slot: Slot,
    done: bool,
}

impl Feed {
    async fn next_frame(mut self) -> Option<(Bytes, Feed)> {
        if self.done {
            return None;
        }
        let bytes = tokio::select! {
            event = self.events.next() => match event {
                Some(response) => {
                    self.slot.events.inc();
                    next_event(&response)
                }
                None => {
                    self.done = true;
                    Bytes::from_static(b"event: complete\ndata:\n\n")
                }
            },
            _ = self.keepalive.tick() => Bytes::from_static(b":\n\n"),
        };
        Some((bytes, self))
    }
}

/// `event: next` with the response on one `data:` line (JSON has no raw
/// newlines).
fn next_event(response: &async_graphql::Response) -> Bytes {
    let mut out = b"event: next\ndata: ".to_vec();
    if serde_json::to_writer(&mut out, response).is_err() {
        out.truncate(b"event: next\ndata: ".len());
        out.extend_from_slice(br#"{"errors":[{"message":"cannot render the response"}]}"#);
    }
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}
