//! The WebSocket opening handshake (RFC 6455 §4.2) over an HTTP/1.1
//! upgrade, shared by the endpoints that speak WebSocket (GraphQL
//! subscriptions, streaming methods on routes): the request is checked, the
//! 101 answer built, and the connection handed over once hyper lets go of it.
//!
//! An upgraded connection leaves hyper's graceful shutdown, so the sessions
//! are tracked here ([`Sessions`]): told when the gateway shuts down (they
//! close with 1001), and waited for within `limits.shutdown_grace`.

use std::future::Future;

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use switchyard_plugins::stage::{Request, Response, empty_body};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::task::TaskTracker;

use super::Shutdown;

/// A WebSocket over an upgraded edge connection.
pub type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// An upgrade request that passed the checks: answer it with
/// [`Upgrade::response`], then run the socket with [`Upgrade::spawn`].
pub struct Upgrade {
    accept_key: HeaderValue,
    on_upgrade: OnUpgrade,
}

/// Why an upgrade request is refused: the status and what is wrong (and,
/// for a version mismatch, `Sec-WebSocket-Version: 13` to send back).
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub status: StatusCode,
    pub message: String,
}

/// The edge's WebSocket sessions: where they run, and the signal that the
/// gateway is shutting down. Requests that ask for an upgrade carry it in
/// their extensions.
#[derive(Clone, Default)]
pub struct Sessions {
    tracker: TaskTracker,
    shutdown: Shutdown,
}

/// Whether `req` asks to upgrade to a WebSocket.
pub fn is_upgrade(req: &Request) -> bool {
    req.method() == Method::GET && has_token(req.headers(), header::UPGRADE, "websocket")
}

/// Whether a comma-separated header holds `token` (case-insensitive).
pub fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

// === impl Upgrade ===

impl Upgrade {
    /// Checks the handshake headers of `req` (an [`is_upgrade`] request)
    /// and takes its connection for the upgrade.
    pub fn prepare(req: &mut Request) -> Result<Upgrade, Refused> {
        let headers = req.headers();
        let bad = |message: &str| Refused {
            status: StatusCode::BAD_REQUEST,
            message: message.to_owned(),
        };
        if !has_token(headers, header::CONNECTION, "upgrade") {
            return Err(bad("a WebSocket upgrade needs `Connection: upgrade`"));
        }
        if headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            return Err(Refused {
                status: StatusCode::UPGRADE_REQUIRED,
                message: "only WebSocket version 13 is supported".to_owned(),
            });
        }
        let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
            return Err(bad("a WebSocket upgrade needs `Sec-WebSocket-Key`"));
        };
        let accept_key = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .expect("base64 is a valid header value");
        Ok(Upgrade {
            accept_key,
            on_upgrade: hyper::upgrade::on(req),
        })
    }

    /// The 101 answer, naming the `subprotocol` chosen if any.
    pub fn response(&self, subprotocol: Option<&'static str>) -> Response {
        let mut res = http::Response::new(empty_body());
        *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let out = res.headers_mut();
        out.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        out.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        out.insert(header::SEC_WEBSOCKET_ACCEPT, self.accept_key.clone());
        if let Some(protocol) = subprotocol {
            out.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(protocol),
            );
        }
        res
    }

    /// Runs `session` on the socket once hyper has sent the 101 and handed
    /// the connection over, among the `sessions` of `req` (an upgrade the
    /// dispatcher saw; else untracked); every message (and frame) is bounded
    /// by `max_message` bytes. The session gets the gateway's shutdown
    /// signal.
    pub fn spawn<F, Fut>(self, sessions: Sessions, max_message: usize, session: F)
    where
        F: FnOnce(Socket, Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let shutdown = sessions.shutdown.clone();
        sessions.tracker.spawn(async move {
            match self.on_upgrade.await {
                Ok(upgraded) => {
                    let config = WebSocketConfig::default()
                        .max_message_size(Some(max_message))
                        .max_frame_size(Some(max_message));
                    let ws = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(config),
                    )
                    .await;
                    session(ws, shutdown).await;
                }
                Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
            }
        });
    }
}

// === impl Sessions ===

impl Sessions {
    pub fn new(shutdown: Shutdown) -> Sessions {
        Sessions {
            tracker: TaskTracker::new(),
            shutdown,
        }
    }

    /// The sessions an upgrade request belongs to (put there by the
    /// dispatcher); untracked ones when it has none.
    pub fn of(req: &Request) -> Sessions {
        req.extensions()
            .get::<Sessions>()
            .cloned()
            .unwrap_or_default()
    }

    /// Resolves once no session is left (after shutdown: new ones may still
    /// start until then).
    pub async fn drained(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

// === impl Refused ===

impl Refused {
    /// Headers the refusal calls for.
    pub fn headers(&self) -> Option<(HeaderName, HeaderValue)> {
        (self.status == StatusCode::UPGRADE_REQUIRED).then(|| {
            (
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade_request(headers: &[(&str, &str)]) -> Request {
        let mut builder = http::Request::get("/ws");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(empty_body()).unwrap()
    }

    #[test]
    fn upgrade_tokens_are_found_in_lists_whatever_their_case() {
        let req = upgrade_request(&[("upgrade", "h2c, WebSocket")]);
        assert!(is_upgrade(&req));
        let req = upgrade_request(&[("upgrade", "h2c")]);
        assert!(!is_upgrade(&req));
    }

    #[test]
    fn the_accept_key_is_the_rfc_6455_example() {
        let mut req = upgrade_request(&[
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        let upgrade = Upgrade::prepare(&mut req).unwrap();
        let res = upgrade.response(None);
        assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            res.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn a_wrong_version_asks_for_13_and_a_missing_key_is_a_400() {
        let mut req = upgrade_request(&[
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-websocket-version", "8"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        let refused = Upgrade::prepare(&mut req).err().unwrap();
        assert_eq!(refused.status, StatusCode::UPGRADE_REQUIRED);
        assert_eq!(refused.headers().unwrap().1, "13");
        let mut req = upgrade_request(&[
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-websocket-version", "13"),
        ]);
        let refused = Upgrade::prepare(&mut req).err().unwrap();
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(refused.message.contains("Sec-WebSocket-Key"));
    }
}
