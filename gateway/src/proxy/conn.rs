//! HTTP/1.1 connections to an upstream endpoint, driven inside the request
//! that uses them: no task per connection and no channel between the
//! request and its connection (hyper-util's pooled client spawns both),
//! as the gRPC upstreams drive their h2 connections (`upstream::endpoint`).
//!
//! A connection is taken from its worker's idle list (or opened), polled
//! by the request's future until the answer's head is in, then by the
//! answer's body ([`Driven`]) until its end, when it goes back to the idle
//! list. One dropped half-way (a client gone, a deadline) is closed.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use switchyard_plugins::stage::{Body, BoxError, Request};
use tower::ServiceExt as _;

/// What a connection runs over: TCP, or TLS for `https://` endpoints.
type Io = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;

/// Opens TCP (and TLS) connections.
pub type Connector = HttpsConnector<HttpConnector>;

/// One HTTP/1.1 connection: the request sender and the connection's state
/// machine, which only runs while someone polls it.
pub struct Conn {
    sender: http1::SendRequest<Body>,
    conn: http1::Connection<Io, Body>,
    idle_since: Instant,
}

/// The idle connections of one endpoint, per edge worker.
pub struct IdleConns {
    slots: Box<[Mutex<Vec<Conn>>]>,
    max: usize,
    timeout: Duration,
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum SendError {
    /// No connection: refused, timed out, or its TLS handshake failed.
    Connect(BoxError),
    /// The exchange failed on an open connection.
    Broken(BoxError),
}

impl IdleConns {
    pub fn new(workers: usize, max: usize, timeout: Duration) -> IdleConns {
        IdleConns {
            slots: (0..workers.max(1)).map(|_| Mutex::default()).collect(),
            max,
            timeout,
        }
    }

    fn slot(&self) -> &Mutex<Vec<Conn>> {
        let worker = crate::upstream::endpoint::current_worker();
        &self.slots[worker % self.slots.len()]
    }

    /// The most recently used idle connection not idle for too long.
    fn take(&self) -> Option<Conn> {
        let mut idle = self.slot().lock().unwrap_or_else(|e| e.into_inner());
        while let Some(conn) = idle.pop() {
            if conn.idle_since.elapsed() < self.timeout {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for the next request, unless the list is full.
    fn put(&self, mut conn: Conn) {
        let mut idle = self.slot().lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max {
            conn.idle_since = Instant::now();
            idle.push(conn);
        }
    }
}

/// Sends `req` (its URI in origin form) to `origin` over an idle connection of `idle` (or a
/// new one), driving it until the answer's head; the answer's body drives
/// it on and hands it back to `idle` at its end. A request an idle
/// connection turned out to be closed for is sent again on another.
pub async fn send(
    idle: Arc<IdleConns>,
    connector: &Connector,
    connect_timeout: Duration,
    origin: &http::Uri,
    mut req: Request,
) -> Result<http::Response<Body>, SendError> {
    loop {
        let (mut conn, reused) = match idle.take() {
            Some(conn) => (conn, true),
            None => (connect(connector, connect_timeout, origin).await?, false),
        };
        if !ready(&mut conn).await {
            if reused {
                continue;
            }
            return Err(SendError::Broken("the connection closed at once".into()));
        }
        let sent = pin!(conn.sender.try_send_request(req));
        match drive(&mut conn.conn, sent).await {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                if body.is_end_stream() {
                    // Nothing to read (HEAD, 204, 304): reusable now.
                    idle.put(conn);
                    return Ok(http::Response::from_parts(
                        parts,
                        Body::new(Driven {
                            body,
                            conn: None,
                            idle,
                        }),
                    ));
                }
                let body = Driven {
                    body,
                    conn: Some(conn),
                    idle,
                };
                return Ok(http::Response::from_parts(parts, Body::new(body)));
            }
            Err(mut e) => match e.take_message() {
                // Never written: the idle connection was closed under it.
                Some(again) if reused => req = again,
                _ => return Err(SendError::Broken(e.into_error().into())),
            },
        }
    }
}

async fn connect(
    connector: &Connector,
    timeout: Duration,
    uri: &http::Uri,
) -> Result<Conn, SendError> {
    let io = tokio::time::timeout(timeout, connector.clone().oneshot(uri.clone()))
        .await
        .map_err(|_| SendError::Connect("connect timed out".into()))?
        .map_err(SendError::Connect)?;
    let (sender, conn) = http1::Builder::new()
        .handshake(io)
        .await
        .map_err(|e| SendError::Connect(e.into()))?;
    Ok(Conn {
        sender,
        conn,
        idle_since: Instant::now(),
    })
}

/// Drives `conn` until it can take a request: `false` if it is closed.
async fn ready(conn: &mut Conn) -> bool {
    std::future::poll_fn(|cx| {
        if Pin::new(&mut conn.conn).poll(cx).is_ready() {
            return Poll::Ready(false);
        }
        conn.sender.poll_ready(cx).map(|r| r.is_ok())
    })
    .await
}

/// Polls `sent` and the connection together until the answer's head (or
/// the failure) is in.
async fn drive<F, T>(conn: &mut http1::Connection<Io, Body>, mut sent: Pin<&mut F>) -> T
where
    F: Future<Output = T>,
{
    let mut finished = false;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = sent.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        if !finished && Pin::new(&mut *conn).poll(cx).is_ready() {
            // The connection ended: the request's callback is dropped, so
            // `sent` now resolves (with the error).
            finished = true;
            return sent.as_mut().poll(cx);
        }
        Poll::Pending
    })
    .await
}

/// An answer's body, driving its connection until the last frame, then
/// handing the connection back.
struct Driven {
    body: Incoming,
    conn: Option<Conn>,
    idle: Arc<IdleConns>,
}

impl HttpBody for Driven {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(conn) = &mut this.conn
            && Pin::new(&mut conn.conn).poll(cx).is_ready()
        {
            this.conn = None;
        }
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        // The end: no more frames, or the last one (a server stops polling
        // a body once `is_end_stream` says so).
        let ended = match &frame {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => this.body.is_end_stream(),
            _ => false,
        };
        if ended && let Some(conn) = this.conn.take() {
            this.idle.put(conn);
        }
        frame.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
