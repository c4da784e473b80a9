//! Plugin outcomes on `/metrics`: why requests were refused, by route, and
//! the fixed phase order (a rate limit listed before `auth` still runs after
//! it), through the real gateway.

mod common;

use bytes::Bytes;
use common::TestGateway;
use http::{Method, StatusCode};

/// sha256("demo-key-123").
const DEMO_KEY_SHA: &str = "a52782e3a2d4dd2f95f640b9abfb3b2a6b8e722c65f55be830f6e5f619f7f873";

/// The value of the sample `name{labels}` in a Prometheus text exposition
/// (labels in the exposition's alphabetical order), 0 when absent.
fn sample(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn auth_outcomes_and_rate_limit_decisions_are_counted_per_route() {
    // Listed rate_limit first: the phase order still runs auth first, so the
    // limit is keyed on the consumer and refused credentials spend nothing.
    let route = format!(
        ", plugins: [ {{ rate_limit: {{ name: per-consumer, rate: 2/min, key: [consumer] }} }}, \
         {{ auth: {{ methods: [ {{ api_key: {{ header: x-api-key, keys: [ {{ consumer: partner, sha256: {DEMO_KEY_SHA} }} ] }} }} ], \
         allow: {{ consumers: [someone-else] }} }} }} ]"
    );
    let gw = TestGateway::demo_with(&route, "").await;
    let send = |key: Option<&'static str>| {
        let headers: Vec<(&str, &str)> = key.map(|k| ("x-api-key", k)).into_iter().collect();
        let gw = &gw;
        async move {
            gw.send(Method::GET, "/v1/users/1", &headers, Bytes::new())
                .await
                .status
        }
    };
    assert_eq!(send(None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(send(Some("wrong")).await, StatusCode::UNAUTHORIZED);
    assert_eq!(send(Some("wrong-again")).await, StatusCode::UNAUTHORIZED);
    // A valid key whose consumer `allow` refuses.
    assert_eq!(send(Some("demo-key-123")).await, StatusCode::FORBIDDEN);

    let metrics = gw.admin_get("/metrics").await.text();
    let auth = |outcome: &str| {
        sample(
            &metrics,
            &format!("switchyard_auth_requests_total{{outcome=\"{outcome}\",route=\"users\"}}"),
        )
    };
    assert_eq!(auth("missing_credentials"), 1.0, "{metrics}");
    assert_eq!(auth("invalid_credentials"), 2.0);
    assert_eq!(auth("forbidden"), 1.0);
    assert_eq!(auth("authenticated"), 0.0);
    // No request got past auth, so the limit decided nothing.
    assert!(!metrics.contains("switchyard_rate_limit_decisions_total{decision=\"allowed\",policy=\"per-consumer\",route=\"users\"} 1"));
    gw.stop().await;
}

#[tokio::test]
async fn rate_limit_decisions_are_counted_per_route_and_policy() {
    let route = format!(
        ", plugins: [ {{ rate_limit: {{ name: per-consumer, rate: 2/min, key: [consumer] }} }}, \
         {{ auth: {{ methods: [ {{ api_key: {{ header: x-api-key, keys: [ {{ consumer: partner, sha256: {DEMO_KEY_SHA} }} ] }} }} ] }} }} ]"
    );
    let gw = TestGateway::demo_with(&route, "").await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let reply = gw
            .send(
                Method::GET,
                "/v1/users/1",
                &[("x-api-key", "demo-key-123")],
                Bytes::new(),
            )
            .await;
        statuses.push(reply.status);
    }
    // Refused credentials spend no quota: they never reach the limit.
    let refused = gw.get("/v1/users/1").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let metrics = gw.admin_get("/metrics").await.text();
    let decisions = |decision: &str| {
        sample(
            &metrics,
            &format!(
                "switchyard_rate_limit_decisions_total{{decision=\"{decision}\",policy=\"per-consumer\",route=\"users\"}}"
            ),
        )
    };
    assert_eq!(decisions("allowed"), 2.0, "{metrics}");
    assert_eq!(decisions("limited"), 1.0);
    assert_eq!(
        sample(
            &metrics,
            "switchyard_auth_requests_total{outcome=\"authenticated\",route=\"users\"}"
        ),
        3.0
    );
    gw.stop().await;
}
