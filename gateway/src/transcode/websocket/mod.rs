//! WebSocket clients of a route's methods (`routes[].websocket`), at
//! `GET /{package.Service}/{Method}` with an HTTP/1.1 upgrade (RFC 6455).
//!
//! The upgrade request runs through the route's plugins like any call (an
//! auth or rate-limit refusal is its HTTP answer), then takes one of the
//! `limits.max_streams` slots (503 beyond) and opens one call upstream with
//! the request's forwarded headers as metadata. On the socket, each text
//! frame from the client is a request message in JSON (proto3 JSON mapping,
//! the route's `json` options) and each reply message goes back as a text
//! frame; `session` runs the exchange:
//!
//! - a method that does not stream requests takes the first message as its
//!   request; a client- or bidi-streaming one takes every message until the
//!   client sends an empty text frame (the end of its messages); a unary
//!   call has the route's `timeout` from its request on (4004 beyond),
//!   streaming ones last as long as the client wants;
//! - the call ends with a close frame: 1000 when it succeeded, else a last
//!   text frame `{"error": {code, message, details}}` (the shared error
//!   body) and the close code from [`Ending`] — 4000 + the gRPC code for
//!   the upstream's status, so clients can tell NOT_FOUND (4005) from
//!   PERMISSION_DENIED (4007);
//! - a client that closes or goes away cancels the upstream call;
//! - backpressure both ways: a client message is read only once the previous
//!   one has gone upstream (HTTP/2 flow control), and a reply message only
//!   once the previous frame is written to the client;
//! - pings every `limits.stream_heartbeat`; a client that sends nothing, not
//!   even a pong, for three of them is closed (1001);
//! - every message (and frame) is bounded by the route's `max_request_body`
//!   (1009 beyond), reply messages by `limits.max_upstream_message`;
//! - a gateway shutting down closes its sockets with 1001 and waits for
//!   them within `limits.shutdown_grace`.

mod client;
mod session;

use std::sync::Arc;

use switchyard_plugins::error::{Code, ErrorResponse};
use switchyard_plugins::stage::{Request, Response};

use super::handler::{forward_metadata, upstream_error};
use super::stream::Slot;
use crate::edge::websocket::{Sessions, Upgrade};
use crate::grpc::GrpcTarget;
use crate::routing::RouteCtx;
use crate::upstream::UpstreamError;

/// The label of WebSocket calls in `streams_open` and `grpc_calls_total`.
const PROTOCOL: &str = "websocket";

/// The match handed to the route's pipeline in the request extensions.
#[derive(Clone, Debug)]
pub struct WsMatched {
    pub target: Arc<GrpcTarget>,
}

/// How a call over a WebSocket ended: the close frame to send, the error
/// frame before it, and the gRPC code counted in `grpc_calls_total`.
#[derive(Debug)]
struct Ending {
    close: u16,
    error: Option<ErrorResponse>,
    code: Code,
}

/// Answers the upgrade (101) and runs the call once hyper hands the
/// connection over; or refuses it (503 with every stream slot taken, 4xx for
/// a malformed handshake).
pub fn accept(mut req: Request, matched: WsMatched) -> Result<Response, ErrorResponse> {
    let target = matched.target;
    let route = &target.route;
    let permit = route.streams.permit()?;
    let upgrade = Upgrade::prepare(&mut req).map_err(|refused| {
        let code = if refused.status.is_client_error() {
            Code::InvalidArgument
        } else {
            Code::FailedPrecondition
        };
        let mut error = ErrorResponse::with_status(refused.status, code, refused.message.clone());
        if let Some((name, value)) = refused.headers() {
            error = error.with_header(name, value);
        }
        error
    })?;
    let metadata = forward_metadata(req.headers(), &route.headers);
    let upstream = route
        .choose_for(req.headers(), req.extensions())
        .upstream
        .clone();
    let slot = Slot::new(&route.metrics, PROTOCOL, permit);
    let response = upgrade.response(None);
    let max_message = route.max_body;
    let sessions = Sessions::of(&req);
    upgrade.spawn(sessions, max_message, move |ws, shutdown| {
        session::run(ws, target, upstream, metadata, slot, shutdown)
    });
    Ok(response)
}

// === impl Ending ===

impl Ending {
    /// The call succeeded.
    fn ok() -> Ending {
        Ending {
            close: 1000,
            error: None,
            code: Code::Ok,
        }
    }

    /// The client broke the exchange: `close` (a 1xxx code) with the error.
    fn client(close: u16, code: Code, message: impl Into<String>) -> Ending {
        Ending {
            close,
            error: Some(ErrorResponse::new(code, message)),
            code,
        }
    }

    /// The upstream call failed: its status as 4000 + the gRPC code, or
    /// 1014 (bad gateway) when the upstream broke the protocol.
    fn upstream(route: &RouteCtx, error: UpstreamError) -> Ending {
        let broken = matches!(
            error,
            UpstreamError::Protocol(_) | UpstreamError::ReplyTooLarge { .. }
        );
        let error = upstream_error(route, error);
        let close = if broken {
            1014
        } else {
            4000 + error.code as u16
        };
        Ending {
            close,
            code: error.code,
            error: Some(error),
        }
    }

    /// The close frame's reason: the error's message, cut to the 123 bytes
    /// a close frame holds (on a character boundary).
    fn reason(&self) -> String {
        let Some(error) = &self.error else {
            return String::new();
        };
        let mut end = error.message.len().min(123);
        while !error.message.is_char_boundary(end) {
            end -= 1;
        }
        error.message[..end].to_owned()
    }

    /// The last text frame, `{"error": {…}}`, when the call failed.
    fn error_frame(&self) -> Option<String> {
        let error = self.error.as_ref()?;
        let mut out = br#"{"error":"#.to_vec();
        out.extend_from_slice(&error.body_json());
        out.push(b'}');
        String::from_utf8(out).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_close_frame_on_a_character_boundary() {
        let long = "é".repeat(100);
        let ending = Ending::client(1007, Code::InvalidArgument, long);
        let reason = ending.reason();
        assert!(reason.len() <= 123);
        assert_eq!(reason.len(), 122);
        assert_eq!(Ending::ok().reason(), "");
    }

    #[test]
    fn the_error_frame_wraps_the_shared_error_body() {
        let ending = Ending::client(1007, Code::InvalidArgument, "bad sku");
        let frame: serde_json::Value =
            serde_json::from_str(&ending.error_frame().unwrap()).unwrap();
        assert_eq!(frame["error"]["code"], 3);
        assert_eq!(frame["error"]["message"], "bad sku");
        assert!(Ending::ok().error_frame().is_none());
    }
}
