//! GraphQL subscriptions end to end: the demo's server-streaming
//! `WatchOrders` as `watchOrders` over SSE and over WebSocket
//! (`graphql-transport-ws`, driven by the real `graphql-ws` npm client and
//! by a raw WebSocket client for the protocol's error cases), with the
//! upstream stream cancelled when the client leaves.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::TestGateway;
use futures_util::{SinkExt, StreamExt};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use switchyard_demo::Service;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const WATCH: &str = r#"subscription { watchOrders(userId: "1") { id status user { name } } }"#;

/// The join of the demo config: `Order.user`, batched.
const USER_JOIN: &str = "joins: [{ on: demo.orders.v1.Order, field: user, key: user_id, batch: { method: demo.users.v1.UserService.BatchGetUsers, argument: ids, results: users, match: id } }]";

async fn gateway(subscriptions: &str) -> TestGateway {
    TestGateway::demo_with(
        "",
        &format!("graphql: {{ {USER_JOIN}, subscriptions: {{ {subscriptions} }} }}"),
    )
    .await
}

/// Waits until the orders service feeds no `WatchOrders` stream.
async fn upstream_streams_close(gw: &TestGateway) {
    for _ in 0..100 {
        if gw.demo.open_watches() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{} upstream WatchOrders streams still open",
        gw.demo.open_watches()
    );
}

// --- SSE --------------------------------------------------------------

/// An open event stream, read event by event.
struct Events {
    body: hyper::body::Incoming,
    buf: String,
}

impl Events {
    async fn open(gw: &TestGateway, query: &str) -> (StatusCode, http::HeaderMap, Events) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let req = http::Request::post(format!("http://{}/graphql", gw.addr))
            .header("content-type", "application/json")
            .header("accept", "text/event-stream")
            .body(Full::new(Bytes::from(
                json!({ "query": query }).to_string(),
            )))
            .unwrap();
        let res = client.request(req).await.expect("gateway answers");
        let (parts, body) = res.into_parts();
        let events = Events {
            body,
            buf: String::new(),
        };
        (parts.status, parts.headers, events)
    }

    /// The next event (name, data), skipping keep-alive comments.
    async fn next(&mut self) -> Option<(String, String)> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if block.starts_with(':') {
                    continue;
                }
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim_start().to_owned())
                        .unwrap_or_default()
                };
                return Some((field("event:"), field("data:")));
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.body.frame())
                .await
                .expect("an event within 10 s")?
                .expect("body frame");
            if let Some(data) = frame.data_ref() {
                self.buf.push_str(std::str::from_utf8(data).expect("UTF-8"));
            }
        }
    }

    async fn next_json(&mut self) -> Value {
        let (name, data) = self.next().await.expect("an event");
        assert_eq!(name, "next", "data: {data}");
        serde_json::from_str(&data).expect("JSON data")
    }
}

#[tokio::test]
async fn sse_streams_each_upstream_message_as_a_next_event_including_live_changes() {
    let gw = gateway("").await;
    let (status, headers, mut events) = Events::open(&gw, WATCH).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/event-stream");
    // The current orders of user 1 first, with the joined user resolved.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let json = events.next_json().await;
        assert!(json.get("errors").is_none(), "{json}");
        assert_eq!(json["data"]["watchOrders"]["user"]["name"], "Ada Lovelace");
        ids.push(
            json["data"]["watchOrders"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(ids, ["1", "5", "9"]);
    // A change made now arrives on the open stream.
    let created = gw
        .post_json(
            "/graphql",
            &json!({"query": r#"mutation { createOrder(userId: "1", items: [{sku: "A-1", qty: 1}]) { id } }"#})
                .to_string(),
        )
        .await
        .json();
    let id = created["data"]["createOrder"]["id"].clone();
    let live = events.next_json().await;
    assert_eq!(live["data"]["watchOrders"]["id"], id, "{live}");
    assert_eq!(gw.demo.open_watches(), 1);
    let metrics = gw.admin_get("/metrics").await.text();
    assert!(
        metrics.contains("switchyard_graphql_subscriptions_open{transport=\"sse\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchyard_graphql_subscription_events_total{transport=\"sse\"} 4"),
        "{metrics}"
    );
    drop(events);
    upstream_streams_close(&gw).await;
    let metrics = gw.admin_get("/metrics").await.text();
    assert!(
        metrics.contains("switchyard_graphql_subscriptions_open{transport=\"sse\"} 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn sse_reports_an_upstream_failure_as_an_error_event_then_completes() {
    let mut gw = gateway("").await;
    let (_, _, mut events) = Events::open(&gw, WATCH).await;
    events.next_json().await;
    gw.demo.stop(Service::Orders).await;
    loop {
        let json = events.next_json().await;
        if let Some(errors) = json.get("errors") {
            assert_eq!(errors[0]["extensions"]["code"], "UNAVAILABLE", "{json}");
            assert_eq!(errors[0]["path"], json!(["watchOrders"]), "{json}");
            break;
        }
    }
    let (name, _) = events.next().await.expect("complete event");
    assert_eq!(name, "complete");
    assert!(events.next().await.is_none(), "the stream ends");
}

#[tokio::test]
async fn sse_refuses_operations_beyond_max_open_with_a_503() {
    let gw = gateway("max_open: 1").await;
    let (status, _, mut first) = Events::open(&gw, WATCH).await;
    assert_eq!(status, StatusCode::OK);
    first.next_json().await;
    let (status, _, mut second) = Events::open(&gw, WATCH).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let mut body = String::new();
    while let Some(Ok(frame)) = second.body.frame().await {
        body.push_str(std::str::from_utf8(frame.data_ref().unwrap()).unwrap());
    }
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        json["errors"][0]["extensions"]["code"],
        "SUBSCRIPTION_LIMIT"
    );
    // The slot is given back when the first client leaves.
    drop(first);
    upstream_streams_close(&gw).await;
    let (status, _, _) = Events::open(&gw, WATCH).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn sse_refuses_an_operation_over_the_limits_before_any_upstream_call() {
    let gw = TestGateway::demo_with(
        "",
        &format!("graphql: {{ {USER_JOIN}, limits: {{ max_depth: 1 }} }}"),
    )
    .await;
    let (status, headers, _) = Events::open(&gw, WATCH).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(gw.demo.calls(Service::Orders), 0);
}

#[tokio::test]
async fn a_subscription_over_plain_http_is_refused_with_a_clear_error() {
    let gw = gateway("").await;
    let reply = gw
        .post_json("/graphql", &json!({ "query": WATCH }).to_string())
        .await;
    let json = reply.json();
    assert_eq!(
        json["errors"][0]["extensions"]["code"], "SUBSCRIPTION_TRANSPORT",
        "{json}"
    );
    assert_eq!(gw.demo.open_watches(), 0);
    let reply = gw
        .send(
            Method::GET,
            "/graphql?query=subscription%20%7B%20watchOrders%20%7B%20id%20%7D%20%7D",
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(
        reply.json()["errors"][0]["extensions"]["code"],
        "SUBSCRIPTION_TRANSPORT"
    );
}

#[tokio::test]
async fn an_event_source_opens_a_subscription_with_get() {
    let gw = gateway("").await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let query = "subscription%20%7B%20watchOrders(userId%3A%20%221%22)%20%7B%20id%20%7D%20%7D";
    let req = http::Request::get(format!("http://{}/graphql?query={query}", gw.addr))
        .header("accept", "text/event-stream")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = client.request(req).await.expect("gateway answers");
    assert_eq!(res.status(), StatusCode::OK);
    let mut events = Events {
        body: res.into_body(),
        buf: String::new(),
    };
    assert_eq!(events.next_json().await["data"]["watchOrders"]["id"], "1");
    // Mutations stay off GET, event stream or not.
    let reply = gw
        .send(
            Method::GET,
            "/graphql?query=mutation%20%7B%20cancelOrder(id%3A%20%221%22)%20%7B%20id%20%7D%20%7D",
            &[("accept", "text/event-stream")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}

// --- WebSocket: the graphql-ws client -----------------------------------

#[tokio::test]
async fn the_graphql_ws_client_receives_streamed_orders_and_cancelling_ends_the_upstream_stream() {
    let gw = gateway("").await;
    let dir = common::ws_clients_dir();
    let output = tokio::process::Command::new("node")
        .arg(dir.join("graphql_subscribe.mjs"))
        .env("URL", format!("ws://{}/graphql", gw.addr))
        .env("QUERY", WATCH)
        .env("COUNT", "3")
        .env("TIMEOUT_MS", "15000")
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Value> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("NEXT "))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<_> = results
        .iter()
        .map(|r| r["data"]["watchOrders"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["1", "5", "9"], "{stdout}");
    assert_eq!(
        results[0]["data"]["watchOrders"]["user"]["name"],
        "Ada Lovelace"
    );
    assert!(
        stdout.contains("CANCELLED") && stdout.contains("DONE"),
        "{stdout}"
    );
    upstream_streams_close(&gw).await;
}

// --- WebSocket: the protocol's rules ------------------------------------

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(gw: &TestGateway) -> Ws {
    let mut req = format!("ws://{}/graphql", gw.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (ws, res) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    assert_eq!(
        res.headers()["sec-websocket-protocol"],
        "graphql-transport-ws"
    );
    ws
}

async fn send(ws: &mut Ws, json: Value) {
    ws.send(Message::text(json.to_string())).await.unwrap();
}

/// The next protocol message, skipping the server's pings.
async fn recv(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("open")
            .expect("a message");
        match message {
            Message::Text(text) => {
                let json: Value = serde_json::from_str(text.as_str()).unwrap();
                if json["type"] != "ping" {
                    return json;
                }
            }
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// The close code and reason the server ends the connection with.
async fn closed(ws: &mut Ws) -> (u16, String) {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("closed within 10 s");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (frame.code.into(), frame.reason.as_str().to_owned());
            }
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    }
}

async fn init(ws: &mut Ws) {
    send(ws, json!({"type": "connection_init"})).await;
    assert_eq!(recv(ws).await["type"], "connection_ack");
}

fn subscribe(id: &str, query: &str) -> Value {
    json!({"id": id, "type": "subscribe", "payload": {"query": query}})
}

#[tokio::test]
async fn a_client_that_never_sends_connection_init_is_closed_with_4408() {
    let gw = gateway("init_timeout: 200ms").await;
    let mut ws = connect(&gw).await;
    assert_eq!(closed(&mut ws).await.0, 4408);
}

#[tokio::test]
async fn a_gateway_shutting_down_closes_subscription_sockets_with_1001() {
    let gw = gateway("").await;
    let mut ws = connect(&gw).await;
    init(&mut ws).await;
    send(&mut ws, subscribe("1", WATCH)).await;
    assert_eq!(recv(&mut ws).await["type"], "next");
    let stopping = tokio::spawn(gw.stop());
    assert_eq!(closed(&mut ws).await.0, 1001);
    drop(ws);
    common::stopped(stopping).await;
}

#[tokio::test]
async fn subscribe_before_init_is_4401_and_a_second_init_is_4429() {
    let gw = gateway("").await;
    let mut ws = connect(&gw).await;
    send(&mut ws, subscribe("1", WATCH)).await;
    assert_eq!(closed(&mut ws).await.0, 4401);
    let mut ws = connect(&gw).await;
    init(&mut ws).await;
    send(&mut ws, json!({"type": "connection_init"})).await;
    assert_eq!(closed(&mut ws).await.0, 4429);
}

#[tokio::test]
async fn a_reused_operation_id_is_closed_with_4409_and_the_streams_are_cancelled() {
    let gw = gateway("").await;
    let mut ws = connect(&gw).await;
    init(&mut ws).await;
    send(&mut ws, subscribe("a", WATCH)).await;
    assert_eq!(recv(&mut ws).await["type"], "next");
    send(&mut ws, subscribe("a", WATCH)).await;
    let (code, reason) = closed(&mut ws).await;
    assert_eq!(code, 4409);
    assert_eq!(reason, "Subscriber for a already exists");
    upstream_streams_close(&gw).await;
}

#[tokio::test]
async fn complete_from_the_client_cancels_one_operation_and_frees_its_place() {
    let gw = gateway("max_per_connection: 1").await;
    let mut ws = connect(&gw).await;
    init(&mut ws).await;
    send(&mut ws, subscribe("a", WATCH)).await;
    let first = recv(&mut ws).await;
    assert_eq!(
        (first["id"].as_str(), first["type"].as_str()),
        (Some("a"), Some("next"))
    );
    // A second operation on the same connection is over the limit.
    send(&mut ws, subscribe("b", WATCH)).await;
    let refused = loop {
        let message = recv(&mut ws).await;
        if message["id"] == "b" {
            break message;
        }
    };
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"],
        "SUBSCRIPTION_LIMIT"
    );
    let metrics = gw.admin_get("/metrics").await.text();
    assert!(
        metrics.contains(
            "switchyard_graphql_subscriptions_refused_total{limit=\"max_per_connection\"} 1"
        ),
        "{metrics}"
    );
    send(&mut ws, json!({"id": "a", "type": "complete"})).await;
    upstream_streams_close(&gw).await;
    // Its place is free again; a query over the socket runs and completes.
    send(&mut ws, subscribe("c", r#"{ order(id: "1") { id } }"#)).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let message = recv(&mut ws).await;
        if message["id"] == "c" {
            seen.push(message);
        }
    }
    assert_eq!(seen[0]["type"], "next");
    assert_eq!(seen[0]["payload"]["data"]["order"]["id"], "1");
    assert_eq!(seen[1]["type"], "complete");
}

#[tokio::test]
async fn operations_refused_before_they_run_get_one_error_message() {
    let gw = TestGateway::demo_with(
        "",
        &format!("graphql: {{ {USER_JOIN}, limits: {{ max_depth: 1 }} }}"),
    )
    .await;
    let mut ws = connect(&gw).await;
    init(&mut ws).await;
    send(&mut ws, subscribe("deep", WATCH)).await;
    let refused = recv(&mut ws).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"],
        "QUERY_TOO_DEEP"
    );
    send(&mut ws, subscribe("bad", "subscription { nope }")).await;
    let invalid = recv(&mut ws).await;
    assert_eq!(
        (invalid["id"].as_str(), invalid["type"].as_str()),
        (Some("bad"), Some("error"))
    );
    assert!(invalid["payload"][0]["message"].is_string(), "{invalid}");
    // Invalid JSON is a protocol violation.
    ws.send(Message::text("{not json")).await.unwrap();
    assert_eq!(closed(&mut ws).await.0, 4400);
    assert_eq!(gw.demo.calls(Service::Orders), 0);
}

#[tokio::test]
async fn a_message_over_max_message_closes_the_connection_with_1009() {
    let gw = gateway("max_message: 1KiB").await;
    let mut ws = connect(&gw).await;
    init(&mut ws).await;
    let query = format!(
        "subscription {{ watchOrders(userId: \"{}\") {{ id }} }}",
        "x".repeat(2000)
    );
    send(&mut ws, subscribe("big", &query)).await;
    assert_eq!(closed(&mut ws).await.0, 1009);
}

#[tokio::test]
async fn the_upgrade_needs_the_subprotocol_and_passes_the_plugins() {
    let gw = TestGateway::demo_with(
        "",
        "graphql: {}\nplugins: [{ auth: { methods: [{ api_key: { header: x-api-key, keys: [{ consumer: web, sha256: a52782e3a2d4dd2f95f640b9abfb3b2a6b8e722c65f55be830f6e5f619f7f873 }] } }] } }]",
    )
    .await;
    let upgrade = |protocol: &'static str, key: Option<&'static str>| {
        let mut headers = vec![
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-protocol", protocol),
        ];
        if let Some(key) = key {
            headers.push(("x-api-key", key));
        }
        headers
    };
    let reply = gw
        .send(
            Method::GET,
            "/graphql",
            &upgrade("graphql-transport-ws", None),
            Bytes::new(),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "auth runs on the upgrade"
    );
    let reply = gw
        .send(
            Method::GET,
            "/graphql",
            &upgrade("graphql-ws", Some("demo-key-123")),
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.text().contains("graphql-transport-ws"),
        "{}",
        reply.text()
    );
}
