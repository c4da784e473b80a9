//! The client's side of a call over a WebSocket: each frame it sends, as
//! what it means for the call (a request message, the end of them, a
//! protocol error, its going away).

use std::sync::Arc;

use bytes::Bytes;
use prost_reflect::DeserializeOptions;
use switchyard_plugins::error::Code;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::Ending;
use crate::grpc::GrpcTarget;
use crate::transcode::request::{decode_json, deserialize_options};
use crate::upstream::grpc;

/// What a client frame leads to.
pub(super) enum Step {
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
pub(super) struct Client {
    target: Arc<GrpcTarget>,
    options: DeserializeOptions,
    /// Messages taken so far.
    taken: usize,
    /// The client ended its messages (or its one request was taken).
    pub(super) done: bool,
}

// === impl Client ===

impl Client {
    pub(super) fn new(target: Arc<GrpcTarget>) -> Client {
        let options = deserialize_options(&target.route.json);
        Client {
            target,
            options,
            taken: 0,
            done: false,
        }
    }

    /// What the client's next frame (or its going away) leads to.
    pub(super) fn step(&mut self, incoming: Option<Result<Message, WsError>>) -> Step {
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
        let message =
            decode_json(&input, text.as_bytes(), &self.options).map_err(|e| invalid(&e))?;
        grpc::frame(&message).map_err(|e| Ending::client(1011, Code::Internal, format!("{e:?}")))
    }
}
