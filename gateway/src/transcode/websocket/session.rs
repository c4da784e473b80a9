//! One call over one WebSocket: client frames up as request messages, reply
//! messages down as frames, in a single task that waits on whichever side
//! can move (so a bidi call never deadlocks on one direction's flow control).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use h2::SendStream;
use http::HeaderMap;
use prost_reflect::DynamicMessage;
use switchyard_plugins::error::Code;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::client::{Client, Step};
use super::{Ending, PROTOCOL};
use crate::edge::Shutdown;
use crate::edge::websocket::Socket;
use crate::grpc::GrpcTarget;
use crate::transcode::handler::{observe_outcome, observe_upstream};
use crate::transcode::response::render_message;
use crate::transcode::stream::Slot;
use crate::upstream::grpc::set_call_headers;
use crate::upstream::raw::Opened;
use crate::upstream::stream::MessageStream;
use crate::upstream::{Upstream, UpstreamError};

/// How long the client has to answer our close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Client messages gathered into one DATA frame, at most (beyond the one
/// that crosses it).
const COALESCE: usize = 16 * 1024;
/// Heartbeats a client may let pass without sending anything.
const SILENT_BEATS: u32 = 3;

/// Runs the call of `target` on `ws`, with `metadata` from the upgrade
/// request; `slot` counts it as an open stream until the call ends (the
/// closing handshake after it is not counted).
pub(super) async fn run(
    mut ws: Socket,
    target: Arc<GrpcTarget>,
    upstream: Upstream,
    metadata: HeaderMap,
    slot: Slot,
    shutdown: Shutdown,
) {
    let ending = tokio::select! {
        ending = call(&mut ws, &target, &upstream, metadata) => ending,
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
async fn call(
    ws: &mut Socket,
    target: &Arc<GrpcTarget>,
    upstream: &Upstream,
    metadata: HeaderMap,
) -> Option<Ending> {
    let route = &target.route;
    let started = Instant::now();
    let opened = match open(target, upstream, metadata, started).await {
        Ok(opened) => opened,
        Err(ending) => return Some(ending),
    };
    let mut up = Upward::new(opened.body);
    let head = opened.reply.get();
    tokio::pin!(head);
    let mut head_done = false;
    let mut messages: Option<MessageStream> = None;
    let mut client = Client::new(target.clone());
    let mut beats = Beats::new(route.streams.heartbeat());
    // A unary call has the route's deadline, from its request on.
    let mut deadline = None;
    loop {
        let flow = tokio::select! {
            incoming = ws.next(), if up.takes_more() => {
                beats.heard();
                let flow = from_client(ws, &mut client, &mut up, incoming).await;
                if deadline.is_none() && client.done && target.is_unary() {
                    deadline = Some(tokio::time::Instant::now() + route.timeout);
                }
                flow
            }
            () = until(deadline) => Flow::Stop(Some(Ending::upstream(
                route,
                UpstreamError::Status(tonic::Status::deadline_exceeded(format!(
                    "upstream `{}` did not answer within {:?}",
                    upstream.name, route.timeout
                ))),
            ))),
            capacity = std::future::poll_fn(|cx| up.send.poll_capacity(cx)), if !up.buf.is_empty() => {
                up.push(capacity);
                Flow::Go
            }
            reply = &mut head, if !head_done => {
                head_done = true;
                let result = reply.and_then(|reply| upstream.messages(reply, &target.rpc.output()));
                observe_upstream(route, upstream, started, &result);
                match result {
                    Ok(stream) => {
                        messages = Some(stream);
                        Flow::Go
                    }
                    Err(error) => Flow::Stop(Some(Ending::upstream(route, error))),
                }
            }
            next = next_message(&mut messages) => to_client(ws, target, next).await,
            _ = beats.interval.tick() => beats.beat(ws, up.takes_more()).await,
        };
        if let Flow::Stop(ending) = flow {
            return ending;
        }
    }
}

/// Whether the exchange goes on, or how it stopped (`None`: the client
/// went away).
enum Flow {
    Go,
    Stop(Option<Ending>),
}

/// Opens the upstream call, within the route's timeout.
async fn open<'a>(
    target: &'a GrpcTarget,
    upstream: &'a Upstream,
    metadata: HeaderMap,
    started: Instant,
) -> Result<Opened<'a>, Ending> {
    let route = &target.route;
    let opening = upstream.open(&target.path, upstream_headers(metadata));
    match tokio::time::timeout(route.timeout, opening).await {
        Ok(Ok(opened)) => Ok(opened),
        Ok(Err(error)) => {
            observe_outcome(route, upstream, started, Some(&error));
            Err(Ending::upstream(route, error))
        }
        Err(_) => {
            let error = UpstreamError::Status(tonic::Status::deadline_exceeded(format!(
                "upstream `{}` did not take the call within {:?}",
                upstream.name, route.timeout
            )));
            Err(Ending::upstream(route, error))
        }
    }
}

/// Takes a client frame, and what the client has already sent after it
/// (up to [`COALESCE`] bytes): they go up as one DATA frame, since an
/// upstream may refuse a flood of small frames (h2's "too_many_data_frames"
/// GOAWAY, on a shared connection).
async fn from_client(
    ws: &mut Socket,
    client: &mut Client,
    up: &mut Upward,
    incoming: Option<Result<Message, WsError>>,
) -> Flow {
    let mut step = client.step(incoming);
    loop {
        match step {
            Step::Gone => {
                up.send.send_reset(h2::Reason::CANCEL);
                // Sends the reply to a close frame, if that was it.
                let _ = ws.flush().await;
                return Flow::Stop(None);
            }
            Step::End(ending) => {
                up.send.send_reset(h2::Reason::CANCEL);
                return Flow::Stop(Some(ending));
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
    Flow::Go
}

/// Sends a reply message to the client, or ends the call with the stream.
async fn to_client(
    ws: &mut Socket,
    target: &GrpcTarget,
    next: Option<Result<DynamicMessage, UpstreamError>>,
) -> Flow {
    match next {
        Some(Ok(message)) => match render(target, &message) {
            Ok(text) => match ws.send(Message::text(text)).await {
                Ok(()) => Flow::Go,
                Err(_) => Flow::Stop(None),
            },
            Err(ending) => Flow::Stop(Some(ending)),
        },
        Some(Err(error)) => Flow::Stop(Some(Ending::upstream(&target.route, error))),
        None => Flow::Stop(Some(Ending::ok())),
    }
}

/// The heartbeat: a ping each period, and the client's silence.
struct Beats {
    interval: tokio::time::Interval,
    period: Duration,
    heard: Instant,
}

impl Beats {
    fn new(period: Duration) -> Beats {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Beats {
            interval,
            period,
            heard: Instant::now(),
        }
    }

    /// The client sent something (a pong counts).
    fn heard(&mut self) {
        self.heard = Instant::now();
    }

    /// A tick: closes a silent client, else pings. `reading`: whether the
    /// client is being read (waiting on the upstream is not its silence).
    async fn beat(&mut self, ws: &mut Socket, reading: bool) -> Flow {
        if !reading {
            self.heard();
        }
        if self.heard.elapsed() > self.period * SILENT_BEATS {
            return Flow::Stop(Some(Ending::client(
                1001,
                Code::Cancelled,
                format!(
                    "the client sent nothing, not even a pong, for {SILENT_BEATS} heartbeats (limits.stream_heartbeat)"
                ),
            )));
        }
        match ws.send(Message::Ping(Bytes::new())).await {
            Ok(()) => Flow::Go,
            Err(_) => Flow::Stop(None),
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
fn render(target: &GrpcTarget, message: &DynamicMessage) -> Result<Utf8Bytes, Ending> {
    let failed = |message: String| Ending::client(1011, Code::Internal, message);
    let json = render_message(message, &target.route.serialize).map_err(|e| failed(e.message))?;
    Utf8Bytes::try_from(json).map_err(|_| failed("the reply's JSON is not UTF-8".to_owned()))
}

/// The request head: the forwarded headers and what gRPC needs. No
/// `grpc-timeout`: a streaming call lasts as long as its client wants, and a
/// unary one's deadline starts with its request, after the head.
fn upstream_headers(mut headers: HeaderMap) -> HeaderMap {
    set_call_headers(&mut headers);
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
