//! Header → metadata forwarding, and response metadata → headers.

use http::{Method, StatusCode};
use serde_json::json;

use crate::harness::{PeerGateway, Reply};

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// The echoed metadata without the `traceparent` the gateway started (the
/// request brought none), after checking it is one.
fn without_started_trace(reply: &Reply) -> serde_json::Value {
    let mut json = reply.json();
    let started = json
        .as_object_mut()
        .and_then(|m| m.remove("traceparent"))
        .unwrap_or_else(|| panic!("no traceparent reached the upstream: {}", reply.text()));
    let started = started.as_str().unwrap_or_default();
    assert!(
        started.len() == 55 && started.starts_with("00-") && started.ends_with("-01"),
        "{started}"
    );
    json
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn default_header_forwarding() {
    let gw = PeerGateway::start().await;
    let reply = gw
        .send(
            Method::GET,
            "/v1/headers",
            &[
                ("authorization", "Bearer peer-token"),
                ("x-request-id", "rid-123"),
                ("traceparent", TRACEPARENT),
                ("x-secret-internal", "do-not-forward"),
                ("cookie", "session=1"),
                ("x-forwarded-for", "10.0.0.1"),
            ],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"authorization": "Bearer peer-token", "x-request-id": "rid-123", "traceparent": TRACEPARENT}),
        "exactly the default allow-list reaches the upstream"
    );
    assert_eq!(
        header(&reply, "grpc-metadata-x-peer-server"),
        Some("python-grpcio"),
        "initial response metadata comes back prefixed: {:?}",
        reply.headers
    );
    assert_eq!(
        header(&reply, "grpc-metadata-x-peer-trailer"),
        Some("done"),
        "trailing response metadata comes back prefixed: {:?}",
        reply.headers
    );
    assert!(
        reply.headers.get("x-peer-server").is_none(),
        "response metadata is not copied unprefixed"
    );
    // A header sent twice reaches the upstream with both values.
    let reply = gw
        .send(
            Method::GET,
            "/v1/headers",
            &[("x-request-id", "first"), ("x-request-id", "second")],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        without_started_trace(&reply),
        json!({"x-request-id": "first,second"})
    );
    // Without any allowed header, the upstream sees only the trace context.
    let reply = gw
        .send(
            Method::GET,
            "/v1/headers",
            &[("x-secret-internal", "do-not-forward")],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(without_started_trace(&reply), json!({}));
    gw.stop().await;
}

#[tokio::test]
async fn configured_header_forwarding() {
    let gw = PeerGateway::start_with(
        r#", headers: { forward: ["authorization"], forward_prefixes: ["x-peer-"], response_prefix: "x-upstream-" }"#,
        &[],
    )
    .await;
    let reply = gw
        .send(
            Method::GET,
            "/v1/headers",
            &[
                ("authorization", "Basic YTpi"),
                ("x-request-id", "not-in-the-list-now"),
                ("x-peer-tenant", "acme"),
                ("x-peer-region", "eu"),
                ("x-secret-internal", "no"),
            ],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        without_started_trace(&reply),
        json!({"authorization": "Basic YTpi", "x-peer-tenant": "acme", "x-peer-region": "eu"})
    );
    assert_eq!(
        header(&reply, "x-upstream-x-peer-server"),
        Some("python-grpcio"),
        "{:?}",
        reply.headers
    );
    assert!(reply.headers.get("grpc-metadata-x-peer-server").is_none());
    gw.stop().await;
}
