//! One call over one WebSocket: client frames up as request messages, reply
//! messages down as frames, in a single task that waits on whichever side
//! can move (so a bidi call never deadlocks on one direction's flow control).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use h2::SendStream;
use http::header::{CONTENT_TYPE, TE};
use http::{HeaderMap, HeaderName, HeaderValue};
use prost_reflect::{DeserializeOptions, DynamicMessage};
use switchyard_plugins::error::Code;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::{Ending, PROTOCOL};
use crate::config::UnknownFields;
use crate::edge::Shutdown;
use crate::edge::websocket::Socket;
use crate::grpc::GrpcTarget;
use crate::transcode::handler::observe_upstream;
use crate::transcode::stream::Slot;
use crate::upstream::stream::MessageStream;
use crate::upstream::{UpstreamError, grpc};

/// How long the client has to answer our close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Client messages gathered into one DATA frame, at most (beyond the one
/// that crosses it).
const COALESCE: usize = 16 * 1024;
/// Heartbeats a client may let pass without sending anything.
const SILENT_BEATS: u32 = 3;

/// What a client frame leads to.
enum Step {
    /// A request message to send upstream (its gRPC frame); `last`: the
    /// client's messages end with it.
    Send { frame: Bytes, last: bool },
    /// The client ended its messages.
    HalfClose,
    /// Nothing to do (a ping, a pong).
    Nothing,
    /// The client closed the socket or went away: cancel the call.
    Gone,
    /// The client broke the exchange.
    End(Ending),
}

/// The client's side of the call.
struct Client {
    target: Arc<GrpcTarget>,
    options: DeserializeOptions,
    /// Messages taken so far.
    taken: usize,
    /// The client ended its messages (or its one request was taken).
    done: bool,
}

/// Runs the call of `target` on `ws`, with `metadata` from the upgrade
/// request; `slot` counts it as an open stream until the call ends (the
/// closing handshake after it is not counted).
pub(super) async fn run(
    mut ws: Socket,
    target: Arc<GrpcTarget>,
    metadata: HeaderMap,
    slot: Slot,
    shutdown: Shutdown,
) {
    let ending = tokio::select! {
        ending = call(&mut ws, &target, metadata) => ending,
        () = shutdown.wait() => Some(Ending::client(
            1001,
            Code::Unavailable,
            "the gateway is shutting down",
        )),
    };
    drop(slot);
    let route = &target.route;
    let code = ending.as_ref().map_or(Code::Cancelled, |e| e.code);
    route
        .metrics
        .grpc
        .calls
        .with_label_values(&[route.name.as_str(), PROTOCOL, code.name()])
        .inc();
    if let Some(ending) = ending {
        close(&mut ws, &ending).await;
    }
}

/// The call, until it ends (`Some`: how, to tell the client) or the client
/// goes away (`None`). Dropping the upstream stream cancels it.
async fn call(ws: &mut Socket, target: &Arc<GrpcTarget>, metadata: HeaderMap) -> Option<Ending> {
    let route = &target.route;
    let upstream = &route.upstream;
    let started = Instant::now();
    let opened = match tokio::time::timeout(
        route.timeout,
        upstream.open(&target.path, upstream_headers(metadata)),
    )
    .await
    {
        Ok(Ok(opened)) => opened,
        Ok(Err(error)) => {
            let failed: Result<(), _> = Err(error);
            observe_upstream(route, started, &failed);
            return failed.err().map(|error| Ending::upstream(route, error));
        }
        Err(_) => {
            let error = UpstreamError::Status(tonic::Status::deadline_exceeded(format!(
                "upstream `{}` did not take the call within {:?}",
                upstream.name, route.timeout
            )));
            return Some(Ending::upstream(route, error));
        }
    };
    let mut up = Upward::new(opened.body);
    let head = opened.reply.get();
    tokio::pin!(head);
    let mut head_done = false;
    let mut messages: Option<MessageStream> = None;
    let mut client = Client::new(target.clone());
    let period = route.streams.heartbeat();
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = Instant::now();
    // A unary call has the route's deadline, from its request on.
    let mut deadline = None;
    loop {
        tokio::select! {
            incoming = ws.next(), if up.takes_more() => {
                heard = Instant::now();
                let mut step = client.step(incoming);
                // What the client has already sent goes up with it, as one
                // DATA frame: an upstream may refuse a flood of small frames
                // (h2's "too_many_data_frames" GOAWAY, on a shared connection).
                loop {
                    match step {
                        Step::Gone => {
                            up.send.send_reset(h2::Reason::CANCEL);
                            // Sends the reply to a close frame, if that was it.
                            let _ = ws.flush().await;
                            return None;
                        }
                        Step::End(ending) => {
                            up.send.send_reset(h2::Reason::CANCEL);
                            return Some(ending);
                        }
                        step => up.take(step),
                    }
                    if up.buf.len() >= COALESCE {
                        break;
                    }
                    match ws.next().now_or_never() {
                        Some(incoming) => step = client.step(incoming),
                        None => break,
                    }
                }
                up.flush();
                if deadline.is_none() && client.done && target.is_unary() {
                    deadline = Some(tokio::time::Instant::now() + route.timeout);
                }
            }
            () = until(deadline) => {
                let error = UpstreamError::Status(tonic::Status::deadline_exceeded(format!(
                    "upstream `{}` did not answer within {:?}",
                    upstream.name, route.timeout
                )));
                return Some(Ending::upstream(route, error));
            }
            capacity = std::future::poll_fn(|cx| up.send.poll_capacity(cx)), if !up.buf.is_empty() => {
                up.push(capacity);
            }
            reply = &mut head, if !head_done => {
                head_done = true;
                let result = reply.and_then(|reply| upstream.messages(reply, &target.rpc.output()));
                observe_upstream(route, started, &result);
                match result {
                    Ok(stream) => messages = Some(stream),
                    Err(error) => return Some(Ending::upstream(route, error)),
                }
            }
            next = next_message(&mut messages) => match next {
                Some(Ok(message)) => {
                    let text = match render(target, &message) {
                        Ok(text) => text,
                        Err(ending) => return Some(ending),
                    };
                    if ws.send(Message::text(text)).await.is_err() {
                        return None;
                    }
                }
                Some(Err(error)) => return Some(Ending::upstream(route, error)),
                None => return Some(Ending::ok()),
            },
            _ = heartbeat.tick() => {
                // Not reading the client (waiting on the upstream) is not
                // the client's silence.
                if !up.takes_more() {
                    heard = Instant::now();
                }
                if heard.elapsed() > period * SILENT_BEATS {
                    return Some(Ending::client(
                        1001,
                        Code::Cancelled,
                        format!("the client sent nothing, not even a pong, for {SILENT_BEATS} heartbeats (limits.stream_heartbeat)"),
                    ));
                }
                if ws.send(Message::Ping(Bytes::new())).await.is_err() {
                    return None;
                }
            }
        }
    }
}

/// The request side of the call: client messages waiting for upstream
/// flow-control capacity (up to [`COALESCE`] bytes, and the message that
/// crosses it), and whether the client's messages have ended.
struct Upward {
    send: SendStream<Bytes>,
    buf: BytesMut,
    /// The client's messages end with what is in `buf`.
    end: bool,
}

impl Upward {
    fn new(send: SendStream<Bytes>) -> Upward {
        Upward {
            send,
            buf: BytesMut::new(),
            end: false,
        }
    }

    /// Whether the next client frame is read now: not while messages wait
    /// for the upstream's capacity (backpressure).
    fn takes_more(&self) -> bool {
        self.buf.is_empty()
    }

    /// Takes a message (or the end of them) for the upstream.
    fn take(&mut self, step: Step) {
        match step {
            Step::Send { frame, last } => {
                self.buf.extend_from_slice(&frame);
                self.end |= last;
            }
            Step::HalfClose => self.end = true,
            _ => {}
        }
    }

    /// Asks for the capacity to send what was taken; ends the request
    /// stream at once when nothing is left to send.
    fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.send.reserve_capacity(self.buf.len());
        } else if self.end {
            let _ = self.send.send_data(Bytes::new(), true);
        }
    }

    /// Sends what `capacity` allows.
    fn push(&mut self, capacity: Option<Result<usize, h2::Error>>) {
        match capacity {
            Some(Ok(n)) if n > 0 => {
                let chunk = self.buf.split_to(n.min(self.buf.len())).freeze();
                let done = self.buf.is_empty();
                if self.send.send_data(chunk, done && self.end).is_err() {
                    // The upstream stream is gone; its reply says why.
                    self.buf.clear();
                } else if !done {
                    self.send.reserve_capacity(self.buf.len());
                }
            }
            Some(Ok(_)) => {}
            // The upstream no longer takes messages; its reply says why.
            Some(Err(_)) | None => self.buf.clear(),
        }
    }
}

/// Resolves at `deadline`; never without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The next reply message once the reply has started; never before.
async fn next_message(
    messages: &mut Option<MessageStream>,
) -> Option<Result<DynamicMessage, UpstreamError>> {
    match messages {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// A reply message as JSON text, with the route's JSON options.
fn render(target: &GrpcTarget, message: &DynamicMessage) -> Result<String, Ending> {
    let mut out = Vec::with_capacity(128);
    let mut serializer = serde_json::Serializer::new(&mut out);
    message
        .serialize_with_options(&mut serializer, &target.route.serialize)
        .map_err(|e| {
            Ending::client(
                1011,
                Code::Internal,
                format!("cannot render the reply as JSON: {e}"),
            )
        })?;
    String::from_utf8(out)
        .map_err(|_| Ending::client(1011, Code::Internal, "the reply's JSON is not UTF-8"))
}

/// The request head's metadata: the forwarded headers and what gRPC needs.
/// No `grpc-timeout`: a streaming call lasts as long as its client wants,
/// and a unary one's deadline starts with its request, after the head.
fn upstream_headers(mut headers: HeaderMap) -> HeaderMap {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    headers.insert(
        HeaderName::from_static("grpc-accept-encoding"),
        HeaderValue::from_static("gzip"),
    );
    headers
}

/// Ends the exchange: the error frame if any, our close frame, then the
/// client's close reply (waited for at most [`CLOSE_WAIT`]).
async fn close(ws: &mut Socket, ending: &Ending) {
    if let Some(text) = ending.error_frame()
        && ws.send(Message::text(text)).await.is_err()
    {
        return;
    }
    let frame = CloseFrame {
        code: CloseCode::from(ending.close),
        reason: ending.reason().into(),
    };
    if ws.close(Some(frame)).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

// === impl Client ===

impl Client {
    fn new(target: Arc<GrpcTarget>) -> Client {
        let options = DeserializeOptions::new()
            .deny_unknown_fields(target.route.json.unknown_fields == UnknownFields::Reject);
        Client {
            target,
            options,
            taken: 0,
            done: false,
        }
    }

    /// What the client's next frame (or its going away) leads to.
    fn step(&mut self, incoming: Option<Result<Message, WsError>>) -> Step {
        let text = match incoming {
            None => return Step::Gone,
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => {
                return Step::End(Ending::client(
                    1003,
                    Code::InvalidArgument,
                    "messages are JSON text frames, not binary",
                ));
            }
            Some(Ok(Message::Close(_))) => return Step::Gone,
            Some(Ok(_)) => return Step::Nothing,
            Some(Err(WsError::Capacity(e))) => {
                return Step::End(Ending::client(
                    1009,
                    Code::ResourceExhausted,
                    format!("{e} (the route's max_request_body)"),
                ));
            }
            Some(Err(WsError::Utf8(_))) => {
                return Step::End(Ending::client(
                    1007,
                    Code::InvalidArgument,
                    "a text frame that is not UTF-8",
                ));
            }
            Some(Err(WsError::Protocol(e))) => {
                return Step::End(Ending::client(1002, Code::InvalidArgument, e.to_string()));
            }
            Some(Err(_)) => return Step::Gone,
        };
        if self.done {
            let rpc = &self.target.rpc;
            let why = if rpc.is_client_streaming() {
                "after the empty frame that ended them"
            } else {
                "after its one request"
            };
            return Step::End(Ending::client(
                1008,
                Code::InvalidArgument,
                format!("{} takes no more messages {why}", rpc.full_name()),
            ));
        }
        if text.is_empty() {
            self.done = true;
            return Step::HalfClose;
        }
        match self.message(text.as_str()) {
            Ok(frame) => {
                self.taken += 1;
                let last = !self.target.rpc.is_client_streaming();
                self.done = last;
                Step::Send { frame, last }
            }
            Err(ending) => Step::End(ending),
        }
    }

    /// A client message as the request's gRPC frame.
    fn message(&self, text: &str) -> Result<Bytes, Ending> {
        let input = self.target.rpc.input();
        let invalid = |e: &dyn std::fmt::Display| {
            Ending::client(
                1007,
                Code::InvalidArgument,
                format!(
                    "message {}: invalid JSON for {}: {e}",
                    self.taken + 1,
                    input.full_name()
                ),
            )
        };
        let mut de = serde_json::Deserializer::from_str(text);
        let message =
            DynamicMessage::deserialize_with_options(input.clone(), &mut de, &self.options)
                .map_err(|e| invalid(&e))?;
        de.end().map_err(|e| invalid(&e))?;
        grpc::frame(&message).map_err(|e| Ending::client(1011, Code::Internal, format!("{e:?}")))
    }
}
