//! The route's JSON options.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cases::normalize;
use crate::harness::PeerGateway;

#[tokio::test]
async fn route_json_options() {
    let gw = PeerGateway::start_with(
        ", json: { emit_defaults: true, use_proto_names: true, enums_as_ints: true, unknown_fields: ignore }",
        &[],
    )
    .await;
    // response_body, proto names, enum numbers, every default written (unset
    // message fields stay absent); unknown query parameters ignored.
    let reply = gw
        .get_path("/v1/items/o1/view?color=COLOR_BLUE&display_name=d&bogus=1&filter.bogus=2")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        normalize(&reply.json()),
        normalize(&json!({
            "id": "o1", "name": "", "count": 0, "big": "0", "ubig": "0", "flag": false,
            "ratio": 0, "ratio32": 0, "color": 3, "tags": [], "ids": [], "colors": [],
            "data": "", "counters": {}, "display_name": "d"
        }))
    );
    // Unknown body fields are ignored, at the top and nested.
    let reply = gw
        .send(
            Method::POST,
            "/v1/items/o2:archive",
            &[],
            Some(r#"{"bogus":{"x":1},"tag":{"key":"k","zzz":1},"createTime":"2024-01-02T03:04:05Z"}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["method"], "ArchiveItem");
    assert_eq!(
        normalize(&body["item"]),
        normalize(&json!({
            "id": "o2", "name": "", "count": 0, "big": "0", "ubig": "0", "flag": false,
            "ratio": 0, "ratio32": 0, "color": 0, "tags": [], "ids": [], "colors": [],
            "data": "", "counters": {}, "display_name": "", "tag": {"key": "k", "value": ""},
            "create_time": "2024-01-02T03:04:05Z"
        }))
    );
    assert_eq!(
        body["seen"]
            .as_str()
            .map(serde_json::from_str::<Value>)
            .and_then(Result::ok),
        Some(json!({"createTime": "2024-01-02T03:04:05Z", "id": "o2", "tag": {"key": "k"}})),
        "the upstream received only the known fields"
    );
    gw.stop().await;
}

// ============================================================================
// An upstream that compresses its responses.
// ============================================================================

/// A grpcio server created with `compression=grpc.Compression.Gzip`
/// compresses every response (gRPC core assumes a client that sends no
/// `grpc-accept-encoding` accepts gzip); the gateway must read it.
#[tokio::test]
async fn gzip_compressing_upstream_is_read() {
    let gw = PeerGateway::start_with("", &["--compression", "gzip"]).await;
    let reply = gw.get_path("/v1/items/gz1/view?name=zipped").await;
    let text = reply.text();
    let status = reply.status;
    gw.stop().await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, r#"{"id":"gz1","name":"zipped"}"#),
        "a gzip-compressing upstream (grpcio server compression) must be readable"
    );
}

// ============================================================================
// A slow upstream, and one that is gone.
// ============================================================================

#[tokio::test]
async fn slow_upstream_is_504_and_stopped_upstream_is_503() {
    let gw = PeerGateway::start_with(", timeout: 300ms", &[]).await;
    let started = std::time::Instant::now();
    let reply = gw
        .send(
            Method::POST,
            "/v1/items/slow:fail",
            &[],
            Some(r#"{"ttl":"3s","count":5}"#),
        )
        .await;
    let elapsed = started.elapsed();
    assert_eq!(
        reply.status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        reply.text()
    );
    assert_eq!(reply.json()["code"], 4, "{}", reply.text());
    assert!(
        elapsed < Duration::from_secs(2),
        "the route timeout (300ms) bounds the call, took {elapsed:?}"
    );
    // The deadline is shorter on this route: the server sees it.
    let reply = gw.get_path("/v1/items/d1").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let deadline = reply.json()["deadlineSeconds"].as_f64().unwrap_or(0.0);
    assert!(
        deadline > 0.0 && deadline <= 0.3,
        "grpc-timeout carries the route's 300ms, the server saw {deadline}s"
    );

    let PeerGateway {
        running,
        addr,
        client,
        mut peer,
    } = gw;
    peer.child.start_kill().expect("kill the peer");
    peer.child.wait().await.expect("peer exits");
    let gw = PeerGateway {
        running,
        addr,
        client,
        peer,
    };
    let reply = gw.get_path("/v1/items/gone").await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert_eq!(reply.json()["code"], 14, "{}", reply.text());
    gw.stop().await;
}
