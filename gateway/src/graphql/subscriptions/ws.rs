//! GraphQL over WebSocket with the `graphql-transport-ws` protocol (the
//! one the `graphql-ws` library speaks): `connection_init` →
//! `connection_ack`, then any number of `subscribe` operations on one
//! connection, each answered by `next` messages and a `complete` (or one
//! `error` when it is refused before it runs); the client ends one with
//! `complete`, which cancels its upstream stream.
//!
//! The WebSocket is opened by an HTTP/1.1 upgrade on the endpoint's path,
//! after the endpoint's plugins (auth, rate limits) have passed the upgrade
//! request; its headers are the metadata forwarded on every upstream call
//! of the connection. The `connection_init` payload is not used for auth.
//!
//! Bounds (`graphql.subscriptions`): `max_message` per client message,
//! `max_per_connection` and `max_open` operations, `init_timeout` for
//! `connection_init`; a `ping` every `keepalive`. Protocol violations close
//! the connection with the protocol's codes (4400, 4401, 4408, 4409, 4429).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::Response as GqlResponse;
use futures_util::stream::BoxStream;
use futures_util::{SinkExt, StreamExt};
use http::{Method, StatusCode, header};
use serde::{Deserialize, Serialize};
use switchyard_plugins::stage::{Request, Response};
use tokio_stream::StreamMap;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::{Slot, Transport, execute, is_request_error};
use crate::edge::Shutdown;
use crate::edge::websocket::{Refused, Sessions, Upgrade, has_token};
use crate::graphql::call::RequestHeaders;
use crate::graphql::http::{Body, Rejected, Served, reject};
use crate::graphql::limits::Refusal;
use crate::graphql::protection::{Prepared, prepare};

/// The subprotocol spoken.
pub const PROTOCOL: &str = "graphql-transport-ws";

/// Answers the upgrade (101) and runs the connection once hyper hands it
/// over; or refuses it with a 4xx saying what is wrong.
pub fn accept(served: Arc<Served>, mut req: Request) -> Response {
    let refuse = |refused: Refused| {
        let header = refused.headers();
        let mut res = reject(Rejected(refused.status, refused.message), false);
        if let Some((name, value)) = header {
            res.headers_mut().insert(name, value);
        }
        res
    };
    let upgrade = match Upgrade::prepare(&mut req) {
        Ok(upgrade) => upgrade,
        Err(refused) => return refuse(refused),
    };
    if !has_token(req.headers(), header::SEC_WEBSOCKET_PROTOCOL, PROTOCOL) {
        return refuse(Refused {
            status: StatusCode::BAD_REQUEST,
            message: "GraphQL over WebSocket speaks the `graphql-transport-ws` subprotocol: send `Sec-WebSocket-Protocol: graphql-transport-ws`".to_owned(),
        });
    }
    let headers = RequestHeaders::of(req.headers(), req.extensions());
    let response = upgrade.response(Some(PROTOCOL));
    let max = served.subscriptions.config.max_message.as_usize();
    let sessions = Sessions::of(&req);
    upgrade.spawn(sessions, max, move |ws, shutdown| {
        Session::new(served, headers).run(ws, shutdown)
    });
    response
}

/// A message from the client.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    ConnectionInit {
        #[allow(dead_code)]
        #[serde(default)]
        payload: Option<serde_json::Value>,
    },
    Ping {
        #[allow(dead_code)]
        #[serde(default)]
        payload: Option<serde_json::Value>,
    },
    Pong {
        #[allow(dead_code)]
        #[serde(default)]
        payload: Option<serde_json::Value>,
    },
    Subscribe {
        id: String,
        payload: Body,
    },
    Complete {
        id: String,
    },
}

/// A message to the client carrying an operation's result.
#[derive(Serialize)]
struct ServerMessage<'a, P: Serialize> {
    id: &'a str,
    #[serde(rename = "type")]
    ty: &'static str,
    payload: P,
}

/// What a client message leads to.
enum Action {
    Reply(String),
    Close(u16, String),
    Nothing,
}

/// One operation's results: `(first, response)` items, then `None` once
/// it has ended.
type Results = BoxStream<'static, Option<(bool, GqlResponse)>>;

/// One WebSocket connection.
struct Session {
    served: Arc<Served>,
    /// The upgrade request's headers (forwarded as metadata) and caller.
    headers: RequestHeaders,
    acked: bool,
    active: StreamMap<String, Results>,
    slots: HashMap<String, Slot>,
}

impl Session {
    fn new(served: Arc<Served>, headers: RequestHeaders) -> Session {
        Session {
            served,
            headers,
            acked: false,
            active: StreamMap::new(),
            slots: HashMap::new(),
        }
    }

    async fn run<S>(mut self, mut ws: WebSocketStream<S>, shutdown: Shutdown)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let closing = shutdown.wait();
        tokio::pin!(closing);
        let config = &self.served.subscriptions.config;
        let init_deadline = tokio::time::sleep(config.init_timeout.0);
        tokio::pin!(init_deadline);
        let period = config.keepalive.0;
        let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let action = tokio::select! {
                incoming = ws.next() => match incoming {
                    None => break,
                    Some(Ok(Message::Close(_))) => {
                        // Sends the close reply the library queued.
                        let _ = ws.flush().await;
                        break;
                    }
                    Some(Ok(Message::Text(text))) => self.on_message(text.as_str()),
                    Some(Ok(Message::Binary(_))) => Action::Close(
                        4400,
                        "graphql-transport-ws messages are text".to_owned(),
                    ),
                    Some(Ok(_)) => Action::Nothing, // pings are answered by the library
                    Some(Err(WsError::Capacity(e))) => Action::Close(
                        1009,
                        format!("{e} (graphql.subscriptions.max_message)"),
                    ),
                    Some(Err(_)) => break,
                },
                Some((id, item)) = self.active.next(), if !self.active.is_empty() => {
                    self.on_result(&id, item)
                }
                () = &mut init_deadline, if !self.acked => {
                    Action::Close(4408, "Connection initialisation timeout".to_owned())
                }
                _ = keepalive.tick() => Action::Reply(r#"{"type":"ping"}"#.to_owned()),
                () = &mut closing => Action::Close(1001, "the gateway is shutting down".to_owned()),
            };
            match action {
                Action::Nothing => {}
                Action::Reply(text) => {
                    if ws.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                Action::Close(code, reason) => {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    };
                    let _ = ws.close(Some(frame)).await;
                    break;
                }
            }
        }
        // Dropping the operations cancels their upstream streams.
    }

    fn on_message(&mut self, text: &str) -> Action {
        let message = match serde_json::from_str::<ClientMessage>(text) {
            Ok(message) => message,
            Err(e) => return Action::Close(4400, format!("Invalid message received: {e}")),
        };
        match message {
            ClientMessage::ConnectionInit { .. } if self.acked => {
                Action::Close(4429, "Too many initialisation requests".to_owned())
            }
            ClientMessage::ConnectionInit { .. } => {
                self.acked = true;
                Action::Reply(r#"{"type":"connection_ack"}"#.to_owned())
            }
            ClientMessage::Ping { .. } => Action::Reply(r#"{"type":"pong"}"#.to_owned()),
            ClientMessage::Pong { .. } => Action::Nothing,
            ClientMessage::Subscribe { .. } if !self.acked => {
                Action::Close(4401, "Unauthorized".to_owned())
            }
            ClientMessage::Subscribe { id, .. } if self.slots.contains_key(&id) => {
                Action::Close(4409, format!("Subscriber for {id} already exists"))
            }
            ClientMessage::Subscribe { id, payload } => match self.subscribe(&id, payload) {
                Ok(()) => Action::Nothing,
                Err(errors) => Action::Reply(render(&id, "error", &errors)),
            },
            ClientMessage::Complete { id } => {
                self.active.remove(&id);
                self.slots.remove(&id);
                Action::Nothing
            }
        }
    }

    /// Starts operation `id`, or says why it is refused (the `error`
    /// message's payload).
    fn subscribe(&mut self, id: &str, payload: Body) -> Result<(), serde_json::Value> {
        let max = self.served.subscriptions.config.max_per_connection;
        if self.slots.len() >= max {
            self.served.subscriptions.refused("max_per_connection");
            return Err(refusals(&[Refusal {
                code: "SUBSCRIPTION_LIMIT",
                message: format!(
                    "this connection has {max} operations open (graphql.subscriptions.max_per_connection)"
                ),
            }]));
        }
        let request = match prepare(&self.served.protection, &Method::POST, payload) {
            Ok(Prepared::Ready(request, operation)) => {
                operation.observe(&self.served.protection, "ok");
                request
            }
            Ok(Prepared::Refused(list)) => return Err(refusals(&list)),
            Err(Rejected(_, message)) => {
                return Err(serde_json::json!([{ "message": message }]));
            }
        };
        let slot = self
            .served
            .subscriptions
            .open(Transport::Ws)
            .map_err(|refusal| refusals(&[refusal]))?;
        let results = execute(&self.served, request, &self.headers)
            .enumerate()
            .map(|(i, response)| Some((i == 0, response)))
            .chain(futures_util::stream::once(std::future::ready(None)))
            .boxed();
        self.active.insert(id.to_owned(), results);
        self.slots.insert(id.to_owned(), slot);
        Ok(())
    }

    /// A result of operation `id` as the message to send.
    fn on_result(&mut self, id: &str, item: Option<(bool, GqlResponse)>) -> Action {
        match item {
            // Refused by validation before anything ran: one `error`.
            Some((true, response)) if is_request_error(&response) => {
                self.active.remove(id);
                self.slots.remove(id);
                Action::Reply(render(id, "error", &response.errors))
            }
            Some((_, response)) => {
                if let Some(slot) = self.slots.get(id) {
                    slot.events.inc();
                }
                Action::Reply(render(id, "next", &response))
            }
            None => {
                self.slots.remove(id);
                Action::Reply(format!(
                    r#"{{"id":{},"type":"complete"}}"#,
                    serde_json::Value::from(id)
                ))
            }
        }
    }
}

fn refusals(list: &[Refusal]) -> serde_json::Value {
    list.iter()
        .map(|r| serde_json::json!({"message": r.message, "extensions": {"code": r.code}}))
        .collect()
}

fn render<P: Serialize>(id: &str, ty: &'static str, payload: P) -> String {
    serde_json::to_string(&ServerMessage { id, ty, payload }).unwrap_or_else(|e| {
        format!(r#"{{"id":{},"type":"error","payload":[{{"message":"cannot render the result: {e}"}}]}}"#, serde_json::Value::from(id))
    })
}
