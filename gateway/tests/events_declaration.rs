//! What an event definition can say, end to end through the gateway to a
//! real NATS JetStream: extension attributes from headers and the
//! authenticated consumer, data as a selected field or as binary protobuf,
//! and events on chosen HTTP statuses (a failed call's error as data).

mod common;

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use common::TestGateway;
use common::nats::consume;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const NATS: &str = "nats://127.0.0.1:4222";

fn unique() -> String {
    format!("{:x}", fastrand::u64(..))
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The orders route, behind an API key (consumer `shop`), with three
/// event definitions on CreateOrder, each to its own subject.
async fn gateway(stream: &str, prefix: &str) -> (TestGateway, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("switchyard-decl-{}", unique()));
    let demo = common::spawn_demo().await;
    let top = format!(
        r#"
events:
  outbox: {{ path: "{outbox}", flush_interval: 2ms, retry_initial: 50ms, retry_max: 200ms }}
  sinks:
    bus: {{ nats: {{ url: "{NATS}", ack_timeout: 1s, stream: {{ name: {stream}, subjects: ["{prefix}.>"] }} }} }}
"#,
        outbox = dir.join("outbox.redb").display(),
    );
    let events = format!(
        r#"upstream: orders,
      plugins: [{{ auth: {{ methods: [{{ api_key: {{ header: x-api-key, keys: [{{ consumer: shop, sha256: {key} }}] }} }}] }} }}],
      events: [
        {{ method: CreateOrder, type: order.created, sink: bus, destination: "{prefix}.ext",
           subject: "users/{{request.user_id}}", data: response.create_time,
           extensions: {{ consumer: "{{consumer}}", traceparent: "{{header.traceparent}}", tenant: "{{header.x-tenant}}", orderid: "{{response.id}}" }} }},
        {{ method: CreateOrder, type: order.created.pb, sink: bus, destination: "{prefix}.pb", format: protobuf }},
        {{ method: CreateOrder, type: order.rejected, sink: bus, destination: "{prefix}.rejected", on_status: [400], data: response }}
      ] "#,
        key = sha256_hex("shop-key"),
    );
    let yaml = common::demo_config(&demo, "", &top).replace("upstream: orders ", &events);
    (TestGateway::start_yaml(demo, &yaml).await, dir)
}

async fn post_order(gw: &TestGateway, body: Value, extra: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut headers = vec![
        ("content-type", "application/json"),
        ("x-api-key", "shop-key"),
    ];
    headers.extend_from_slice(extra);
    let reply = gw
        .send(
            Method::POST,
            "/v1/orders",
            &headers,
            Bytes::from(body.to_string()),
        )
        .await;
    let json = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    (reply.status, json)
}

/// The events on the stream, by their `type`.
async fn events_by_type(stream: &str, n: usize) -> std::collections::BTreeMap<String, Value> {
    consume(NATS, stream, n, Duration::from_secs(10))
        .await
        .into_iter()
        .map(|(_, event)| (event["type"].as_str().unwrap_or_default().to_owned(), event))
        .collect()
}

#[tokio::test]
async fn definitions_choose_data_extensions_encoding_and_statuses() {
    let (stream, prefix) = (format!("D{}", unique()), format!("d{}", unique()));
    let (gw, dir) = gateway(&stream, &prefix).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (status, order) = post_order(
        &gw,
        json!({"userId": "2", "items": [{"sku": "A-1", "qty": 1}]}),
        &[("traceparent", traceparent), ("x-tenant", "acme")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{order}");
    // A refused order: only the `on_status: [400]` definition publishes.
    let (status, error) = post_order(&gw, json!({"userId": "2", "items": []}), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");

    let events = events_by_type(&stream, 3).await;
    assert_eq!(
        events.keys().map(String::as_str).collect::<Vec<_>>(),
        ["order.created", "order.created.pb", "order.rejected"],
        "one event per definition whose condition held: {events:?}"
    );

    let ext = &events["order.created"];
    assert_eq!(ext["subject"], "users/2");
    assert_eq!(ext["consumer"], "shop", "{ext}");
    assert_eq!(ext["traceparent"], traceparent);
    assert_eq!(ext["tenant"], "acme");
    assert_eq!(ext["orderid"], order["id"]);
    assert_eq!(ext["dataschema"], "proto:google.protobuf.Timestamp");
    assert_eq!(
        ext["data"], order["createTime"],
        "data is the selected field"
    );

    let pb = &events["order.created.pb"];
    assert_eq!(pb["datacontenttype"], "application/protobuf");
    assert_eq!(pb["dataschema"], "proto:demo.orders.v1.Order");
    assert!(pb.get("data").is_none(), "{pb}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(pb["data_base64"].as_str().expect("data_base64"))
        .expect("base64");
    // Field 1 (id), wire type 2: the order id as the first field.
    let id = order["id"].as_str().unwrap();
    assert_eq!(bytes[0], 0x0a);
    assert_eq!(&bytes[2..2 + id.len()], id.as_bytes());
    assert!(pb.get("consumer").is_none(), "no extensions declared: {pb}");

    let rejected = &events["order.rejected"];
    assert_eq!(
        rejected["data"]["code"], 3,
        "the error is the data: {rejected}"
    );
    assert_eq!(rejected["data"]["message"], error["message"]);
    assert!(rejected.get("dataschema").is_none(), "{rejected}");

    drop(gw);
    if let Ok(client) = async_nats::connect(NATS).await {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(&stream)
            .await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn bad_definitions_are_config_errors_at_their_key() {
    let base = |definition: &str| {
        format!(
            r#"
listeners: [{{ address: "127.0.0.1:0" }}]
protos: {{ sources: ["{proto}"] }}
upstreams: {{ orders: {{ endpoints: ["http://127.0.0.1:1"] }} }}
events: {{ outbox: {{ path: "{outbox}" }}, sinks: {{ out: {{ stdout: {{}} }} }} }}
routes:
  - service: demo.orders.v1.OrderService
    upstream: orders
    events: [{{ method: CreateOrder, type: t, sink: out, destination: d, {definition} }}]
"#,
            proto = common::repo_root().join("proto").display(),
            outbox = std::env::temp_dir()
                .join(format!("switchyard-decl-{}.redb", unique()))
                .display(),
        )
    };
    for (definition, expected) in [
        (
            "data: response.items",
            "`items` is not a singular message field",
        ),
        ("data: reply", "expected `response`, `request`"),
        (
            "extensions: { Tenant: x }",
            "not an extension attribute name",
        ),
        ("extensions: { subject: x }", "context attribute"),
        (
            "extensions: { tenant: \"{header.x y}\" }",
            "not a header name",
        ),
        ("subject: \"{cookie.x}\"", "a placeholder is"),
        ("on_status: [1000]", "1000 is not an HTTP status"),
    ] {
        let error = common::config_error(&base(definition)).await;
        assert!(
            error.contains(expected),
            "{definition}: expected {expected:?} in\n{error}"
        );
        assert!(
            error.contains("routes[0].events[0]"),
            "{definition}: {error}"
        );
    }
}
