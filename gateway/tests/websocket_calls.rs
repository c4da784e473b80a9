//! WebSocket clients of route methods (`routes[].websocket`): a real
//! WebSocket client (tokio-tungstenite) calls the demo services through the
//! gateway at `/{package.Service}/{Method}` in all four kinds of method, with
//! JSON text frames, close codes from gRPC statuses and RFC 6455 limits.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::TestGateway;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const INVENTORY: &str = "demo.inventory.v1.InventoryService";

async fn connect(gw: &TestGateway, method: &str) -> Ws {
    let url = format!("ws://{}/{method}", gw.addr);
    let (ws, res) = tokio_tungstenite::connect_async(url.into_client_request().unwrap())
        .await
        .unwrap_or_else(|e| panic!("upgrade to {method}: {e}"));
    assert_eq!(res.status(), 101);
    ws
}

async fn send(ws: &mut Ws, json: Value) {
    ws.send(Message::text(json.to_string())).await.unwrap();
}

/// Ends the client's messages.
async fn end(ws: &mut Ws) {
    ws.send(Message::text("")).await.unwrap();
}

/// What the gateway sends next, pings skipped: a JSON message, or the close.
#[derive(Debug)]
enum Next {
    Json(Value),
    Close(u16, String),
}

async fn next(ws: &mut Ws) -> Next {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s");
        match message {
            Some(Ok(Message::Text(text))) => {
                return Next::Json(serde_json::from_str(text.as_str()).expect("JSON"));
            }
            Some(Ok(Message::Close(frame))) => {
                let frame = frame.expect("a close code");
                return Next::Close(u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}

async fn json(ws: &mut Ws) -> Value {
    match next(ws).await {
        Next::Json(value) => value,
        other => panic!("expected a message, got {other:?}"),
    }
}

async fn closed(ws: &mut Ws) -> (u16, String) {
    match next(ws).await {
        Next::Close(code, reason) => (code, reason),
        other => panic!("expected the close, got {other:?}"),
    }
}

/// The error frame and the close that follows it.
async fn failed(ws: &mut Ws) -> (Value, u16) {
    let error = json(ws).await;
    let (code, reason) = closed(ws).await;
    assert_eq!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .get(..reason.len()),
        Some(reason.as_str()),
        "the close reason is the error's message (cut): {error}"
    );
    (error["error"].clone(), code)
}

#[tokio::test]
async fn a_bidi_call_answers_each_message_as_it_arrives_and_closes_normally() {
    let gw = TestGateway::demo_with(", websocket: true", "").await;
    let mut ws = connect(&gw, &format!("{INVENTORY}/LookupStock")).await;
    for (sku, available) in [("A-1", 100), ("B-9", 40), ("A-2", 90)] {
        send(&mut ws, json!({"sku": sku})).await;
        let stock = json(&mut ws).await;
        assert_eq!(stock["sku"], sku);
        assert_eq!(stock["available"], available);
    }
    end(&mut ws).await;
    assert_eq!(closed(&mut ws).await.0, 1000);
    assert_eq!(
        gw.metric(
            r#"switchyard_grpc_calls_total{code="OK",protocol="websocket",route="inventory"}"#
        )
        .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn a_client_streaming_call_answers_once_the_client_ends_its_messages() {
    let gw = TestGateway::demo_with(", websocket: true", "").await;
    let mut ws = connect(&gw, &format!("{INVENTORY}/SumStock")).await;
    for sku in ["A-1", "A-9", "A-1"] {
        send(&mut ws, json!({"sku": sku})).await;
    }
    end(&mut ws).await;
    let total = json(&mut ws).await;
    assert_eq!(
        (total["skus"].as_i64(), total["available"].as_i64()),
        (Some(3), Some(220))
    );
    assert_eq!(closed(&mut ws).await.0, 1000);
}

#[tokio::test]
async fn unary_and_server_streaming_calls_take_the_first_message_as_the_request() {
    let gw = TestGateway::demo_with(", websocket: true", "").await;
    let mut ws = connect(&gw, "demo.users.v1.UserService/GetUser").await;
    send(&mut ws, json!({"id": "2"})).await;
    assert_eq!(json(&mut ws).await["name"], "Grace Hopper");
    assert_eq!(closed(&mut ws).await.0, 1000);
    drop(ws);

    // A server stream: user 1's current orders arrive, then the stream
    // stays open; the client closing it cancels the upstream call.
    let mut ws = connect(&gw, "demo.orders.v1.OrderService/WatchOrders").await;
    send(&mut ws, json!({"userId": "1"})).await;
    let order = json(&mut ws).await;
    assert_eq!(order["userId"], "1");
    wait_for_metric(&gw, r#"switchyard_streams_open{protocol="websocket"}"#, 1.0).await;
    // A second message is refused: WatchOrders takes one request.
    // (More of user 1's orders may come before the error frame.)
    send(&mut ws, json!({"userId": "2"})).await;
    let error = loop {
        let frame = json(&mut ws).await;
        if frame.get("error").is_some() {
            break frame["error"].clone();
        }
        assert_eq!(frame["userId"], "1");
    };
    assert_eq!(closed(&mut ws).await.0, 1008, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("after its one request"),
        "{error}"
    );
    wait_for_metric(&gw, r#"switchyard_streams_open{protocol="websocket"}"#, 0.0).await;
}

#[tokio::test]
async fn upstream_failures_close_with_4000_plus_the_grpc_code_after_an_error_frame() {
    let gw = TestGateway::demo_with(", websocket: true", "").await;
    let mut ws = connect(&gw, &format!("{INVENTORY}/LookupStock")).await;
    send(&mut ws, json!({"sku": "A-1"})).await;
    json(&mut ws).await;
    send(&mut ws, json!({"sku": "Z-404"})).await;
    let (error, code) = failed(&mut ws).await;
    assert_eq!(code, 4005, "NOT_FOUND: {error}");
    assert_eq!(error["code"], 5);
    assert!(
        error["message"].as_str().unwrap().contains("Z-404"),
        "{error}"
    );
    assert_eq!(
        gw.metric(r#"switchyard_grpc_calls_total{code="NOT_FOUND",protocol="websocket",route="inventory"}"#)
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn malformed_client_messages_close_with_the_rfc_6455_codes() {
    let gw = TestGateway::demo_with(", websocket: true, max_request_body: 1KiB", "").await;
    let lookup = format!("{INVENTORY}/LookupStock");

    // Not JSON, and JSON with a field the request type does not have: 1007.
    let mut ws = connect(&gw, &lookup).await;
    ws.send(Message::text("{sku: A-1")).await.unwrap();
    let (error, code) = failed(&mut ws).await;
    assert_eq!((code, error["code"].as_i64()), (1007, Some(3)), "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("demo.inventory.v1.GetStockRequest"),
        "{error}"
    );
    let mut ws = connect(&gw, &lookup).await;
    send(&mut ws, json!({"sku": "A-1", "colour": "red"})).await;
    let (error, code) = failed(&mut ws).await;
    assert_eq!(code, 1007);
    assert!(
        error["message"].as_str().unwrap().contains("colour"),
        "{error}"
    );

    // A binary frame: 1003.
    let mut ws = connect(&gw, &lookup).await;
    ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(failed(&mut ws).await.1, 1003);

    // A message over the route's max_request_body: 1009.
    let mut ws = connect(&gw, &lookup).await;
    send(&mut ws, json!({"sku": "x".repeat(4096)})).await;
    assert_eq!(failed(&mut ws).await.1, 1009);

    // A message after the client ended its side: 1008.
    let mut ws = connect(&gw, &format!("{INVENTORY}/SumStock")).await;
    send(&mut ws, json!({"sku": "A-1"})).await;
    end(&mut ws).await;
    send(&mut ws, json!({"sku": "A-2"})).await;
    // The total may come first, if the upstream answered before the frame.
    let first = json(&mut ws).await;
    let error = if first.get("error").is_some() {
        first
    } else {
        json(&mut ws).await
    };
    assert_eq!(error["error"]["code"], 3, "{error}");
    assert_eq!(closed(&mut ws).await.0, 1008);
}

#[tokio::test]
async fn thousands_of_messages_in_flight_both_ways_arrive_in_order() {
    let gw = TestGateway::demo_with(", websocket: true", "").await;
    let ws = connect(&gw, &format!("{INVENTORY}/LookupStock")).await;
    let (mut sink, mut stream) = ws.split();
    const N: usize = 5000;
    let skus: Vec<String> = (0..N).map(|i| format!("A-{}", 1 + i % 9)).collect();
    let sending = {
        let skus = skus.clone();
        tokio::spawn(async move {
            for sku in skus {
                let text = json!({"sku": sku}).to_string();
                sink.send(Message::text(text)).await.unwrap();
            }
            sink.send(Message::text("")).await.unwrap();
            sink
        })
    };
    let mut answered = 0;
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("frames keep coming")
    {
        match frame.unwrap() {
            Message::Text(text) => {
                let stock: Value = serde_json::from_str(text.as_str()).unwrap();
                assert_eq!(
                    stock["sku"],
                    skus[answered].as_str(),
                    "answer {answered}: {stock}"
                );
                answered += 1;
            }
            Message::Close(frame) => {
                assert_eq!(frame.unwrap().code, CloseCode::Normal);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(answered, N);
    drop(sending.await.unwrap());
}

#[tokio::test]
async fn upgrades_pass_the_route_plugins_and_the_stream_limit_first() {
    // sha256("demo-key-123") → consumer `gold`.
    let gw = TestGateway::demo_with(
        ", websocket: true, plugins: [ { auth: { methods: [ { api_key: { header: x-api-key, keys: [ \
         { consumer: gold, sha256: a52782e3a2d4dd2f95f640b9abfb3b2a6b8e722c65f55be830f6e5f619f7f873 } ] } } ] } } ]",
        "limits: { max_streams: 1 }",
    )
    .await;
    let url = format!("ws://{}/{INVENTORY}/LookupStock", gw.addr);
    // No key: the plugin's 401, as JSON, and no upgrade.
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), 401);
            let body: Value = serde_json::from_slice(res.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["code"], 16, "{body}");
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    let keyed = || {
        let mut req = url.as_str().into_client_request().unwrap();
        req.headers_mut()
            .insert("x-api-key", "demo-key-123".parse().unwrap());
        req
    };
    let (mut first, _) = tokio_tungstenite::connect_async(keyed())
        .await
        .expect("upgrade");
    // The one stream slot is taken: 503.
    match tokio_tungstenite::connect_async(keyed()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 503),
        other => panic!("expected a 503, got {other:?}"),
    }
    send(&mut first, json!({"sku": "A-3"})).await;
    assert_eq!(json(&mut first).await["available"], 80);
    first.close(None).await.unwrap();
    wait_for_metric(&gw, r#"switchyard_streams_open{protocol="websocket"}"#, 0.0).await;
    // The slot is free again.
    let (mut again, _) = tokio_tungstenite::connect_async(keyed())
        .await
        .expect("upgrade");
    send(&mut again, json!({"sku": "A-3"})).await;
    assert_eq!(json(&mut again).await["available"], 80);
}

#[tokio::test]
async fn a_client_that_answers_no_ping_is_closed_with_1001() {
    let gw =
        TestGateway::demo_with(", websocket: true", "limits: { stream_heartbeat: 50ms }").await;
    let mut ws = connect(&gw, &format!("{INVENTORY}/LookupStock")).await;
    // Pings come while the client reads (and answers them).
    let mut pings = 0;
    while pings < 2 {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            other => panic!("expected pings, got {other:?}"),
        }
    }
    // A client that stops reading sends no pongs: closed after 3 beats.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (error, code) = failed(&mut ws).await;
    assert_eq!(code, 1001, "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("heartbeat"),
        "{error}"
    );
}

#[tokio::test]
async fn routes_without_websocket_do_not_upgrade() {
    let gw = TestGateway::demo_with(", grpc: { passthrough: true }", "").await;
    let url = format!("ws://{}/{INVENTORY}/LookupStock", gw.addr);
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), 404);
        }
        other => panic!("expected a 404, got {other:?}"),
    }
}

async fn wait_for_metric(gw: &TestGateway, line: &str, want: f64) {
    for _ in 0..100 {
        if gw.metric(line).await == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{line} never became {want}: {:?}", gw.metric(line).await);
}

#[tokio::test]
async fn the_node_ws_client_streams_a_client_streaming_call() {
    let gw = TestGateway::demo_with(", websocket: true", "").await;
    let run = |messages: &str| {
        tokio::process::Command::new("node")
            .arg(common::ws_clients_dir().join("method_call.mjs"))
            .env("URL", format!("ws://{}/{INVENTORY}/SumStock", gw.addr))
            .env("MESSAGES", messages)
            .env("END", "1")
            .output()
    };
    let output = run(r#"[{"sku":"A-1"},{"sku":"B-9"}]"#)
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [r#"MESSAGE {"skus":2,"available":140}"#, "CLOSE 1000 "],
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // An unknown SKU: the error frame, then 4005 with the status message.
    let output = run(r#"[{"sku":"A-1"},{"sku":"Q-7"}]"#)
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with(r#"MESSAGE {"error":{"code":5,"#),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("CLOSE 4005 ") && lines[1].contains("Q-7"),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_gateway_shutting_down_closes_its_sockets_with_1001() {
    let gw = TestGateway::demo_with(", websocket: true", "").await;
    let mut ws = connect(&gw, "demo.orders.v1.OrderService/WatchOrders").await;
    send(&mut ws, json!({"userId": "1"})).await;
    json(&mut ws).await;
    let stopping = tokio::spawn(gw.stop());
    let error = loop {
        let frame = json(&mut ws).await;
        if frame.get("error").is_some() {
            break frame["error"].clone();
        }
    };
    assert_eq!(error["code"], 14, "UNAVAILABLE: {error}");
    assert_eq!(closed(&mut ws).await.0, 1001);
    drop(ws);
    common::stopped(stopping).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_call_past_the_route_timeout_closes_with_4004() {
    // A users upstream whose GetUser takes 1 s (a blocking sleep on its
    // own thread of this multi-threaded test runtime).
    let pool = common::scripted::pool(common::repo_root().join("proto"));
    let user = pool
        .get_message_by_name("demo.users.v1.User")
        .expect("User");
    let slow: common::scripted::Handler = Arc::new(move |_| {
        std::thread::sleep(Duration::from_secs(1));
        prost_reflect::DynamicMessage::new(user.clone())
    });
    let users = common::scripted::start(pool, HashMap::from([("GetUser", slow)])).await;
    let yaml = common::one_route_config(
        None,
        "demo.users.v1.UserService",
        &format!("\"http://{}\"", users.addr),
        "",
        ", timeout: 200ms, websocket: true",
    );
    let gw = TestGateway::start_yaml(common::spawn_demo().await, &yaml).await;
    let mut ws = connect(&gw, "demo.users.v1.UserService/GetUser").await;
    send(&mut ws, json!({"id": "1"})).await;
    let (error, code) = failed(&mut ws).await;
    assert_eq!(code, 4004, "DEADLINE_EXCEEDED: {error}");
    assert!(
        error["message"].as_str().unwrap().contains("200ms"),
        "{error}"
    );
}
