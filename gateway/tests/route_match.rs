//! Route selection beyond method and path: header conditions
//! (`routes[].match_headers`), through the real gateway.

mod common;

use bytes::Bytes;
use common::TestGateway;
use http::{Method, StatusCode};

/// A canary route (own upstream: a second demo instance) for requests with
/// `x-canary: 1` or a `beta/` client, and the stable route for the rest.
fn canary_config(stable: &str, canary: &str) -> String {
    format!(
        r#"
listeners: [{{ address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
protos: {{ sources: ["{proto}"] }}
upstreams:
  stable: {{ endpoints: ["{stable}"] }}
  canary: {{ endpoints: ["{canary}"] }}
routes:
  - name: stable
    service: demo.users.v1.UserService
    upstream: stable
    plugins: [ {{ headers: {{ response: {{ set: {{ x-served-by: stable }} }} }} }} ]
  - name: canary
    service: demo.users.v1.UserService
    upstream: canary
    match_headers: [ {{ name: X-Canary, exact: "1" }} ]
    plugins: [ {{ headers: {{ response: {{ set: {{ x-served-by: canary }} }} }} }} ]
  - name: beta-clients
    service: demo.users.v1.UserService
    upstream: canary
    match_headers: [ {{ name: user-agent, prefix: "beta/" }}, {{ name: x-no-beta, present: false }} ]
    plugins: [ {{ headers: {{ response: {{ set: {{ x-served-by: beta }} }} }} }} ]
"#,
        proto = common::repo_root().join("proto").display(),
    )
}

#[tokio::test]
async fn header_conditions_pick_among_routes_of_the_same_path_before_the_unconditional_one() {
    let stable = common::spawn_demo().await;
    let canary = common::spawn_demo().await;
    let yaml = canary_config(
        &stable.url(switchyard_demo::Service::Users),
        &canary.url(switchyard_demo::Service::Users),
    );
    let gw = TestGateway::start_yaml(stable, &yaml).await;
    for (headers, want) in [
        (&[][..], "stable"),
        (&[("x-canary", "1")][..], "canary"),
        (&[("x-canary", "0")][..], "stable"),
        (&[("x-canary", "0, 1")][..], "canary"),
        (&[("user-agent", "beta/3.2")][..], "beta"),
        (
            &[("user-agent", "beta/3.2"), ("x-no-beta", "")][..],
            "stable",
        ),
        (&[("user-agent", "stable beta/3.2")][..], "stable"),
        // Conditions are tried in config order: canary is listed first.
        (
            &[("user-agent", "beta/3.2"), ("x-canary", "1")][..],
            "canary",
        ),
    ] {
        let reply = gw
            .send(Method::GET, "/v1/users/1", headers, Bytes::new())
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{headers:?}: {}",
            reply.text()
        );
        assert_eq!(
            reply
                .headers
                .get("x-served-by")
                .and_then(|v| v.to_str().ok()),
            Some(want),
            "{headers:?}"
        );
    }
    // The canary routes really called the other upstream.
    assert_eq!(canary.calls(switchyard_demo::Service::Users), 4);
    gw.stop().await;
}

#[tokio::test]
async fn without_an_unconditional_route_a_request_meeting_no_condition_is_a_404() {
    let demo = common::spawn_demo().await;
    let yaml = common::one_route_config(
        None,
        "demo.users.v1.UserService",
        &format!("\"{}\"", demo.url(switchyard_demo::Service::Users)),
        "",
        r#", match_headers: [ { name: x-tenant, exact: acme } ]"#,
    );
    let gw = TestGateway::start_yaml(demo, &yaml).await;
    let ok = gw
        .send(
            Method::GET,
            "/v1/users/1",
            &[("x-tenant", "acme")],
            Bytes::new(),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let missing = gw.get("/v1/users/1").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let (code, message) = missing.error();
    assert_eq!(code, 5);
    assert!(message.contains("matches the request headers"), "{message}");
    gw.stop().await;
}

#[tokio::test]
async fn two_routes_with_the_same_conditions_on_one_path_are_refused_at_load() {
    let yaml = format!(
        r#"
protos: {{ sources: ["{proto}"] }}
upstreams:
  a: {{ endpoints: ["http://127.0.0.1:1"] }}
routes:
  - {{ service: demo.users.v1.UserService, upstream: a, match_headers: [ {{ name: x-a, exact: "1" }}, {{ name: x-b, present: true }} ] }}
  - {{ name: again, service: demo.users.v1.UserService, upstream: a, match_headers: [ {{ name: x-b, present: true }}, {{ name: X-A, exact: "1" }} ] }}
"#,
        proto = common::repo_root().join("proto").display(),
    );
    let text = common::config_error(&yaml).await;
    assert!(text.contains("HTTP binding conflict"), "{text}");
}

#[tokio::test]
async fn a_condition_without_a_rule_is_a_located_config_error() {
    let yaml = format!(
        r#"
protos: {{ sources: ["{proto}"] }}
upstreams:
  a: {{ endpoints: ["http://127.0.0.1:1"] }}
routes:
  - service: demo.users.v1.UserService
    upstream: a
    match_headers:
      - name: x-a
"#,
        proto = common::repo_root().join("proto").display(),
    );
    let text = common::config_error(&yaml).await;
    assert!(text.contains("test.yaml:9:"), "{text}");
    assert!(
        text.contains("set one of `exact`, `prefix` or `present`"),
        "{text}"
    );
}

#[tokio::test]
async fn two_routes_with_one_name_are_refused_at_load() {
    // Unnamed routes are named after their service: two on one service clash
    // (metrics and shared rate-limit budgets are keyed by route name).
    let yaml = format!(
        r#"
protos: {{ sources: ["{proto}"] }}
upstreams:
  a: {{ endpoints: ["http://127.0.0.1:1"] }}
routes:
  - {{ service: demo.users.v1.UserService, upstream: a, hosts: [a.example.com] }}
  - {{ service: demo.users.v1.UserService, upstream: a, hosts: [b.example.com] }}
"#,
        proto = common::repo_root().join("proto").display(),
    );
    let text = common::config_error(&yaml).await;
    assert!(text.contains("test.yaml:7:"), "{text}");
    assert!(
        text.contains("route name `demo.users.v1.UserService` is already used by routes[0]"),
        "{text}"
    );
}
