//! Declarative edge logic through the real gateway: edge rules (redirects,
//! fixed answers, rewrites) and routes split between two real demo
//! upstreams (weights, sticky keys, header and cookie overrides), with the
//! variant on the metrics, the access log and the events.

mod common;

use bytes::Bytes;
use common::TestGateway;
use http::{Method, StatusCode};
use switchyard_demo::Service;

fn proto() -> String {
    common::repo_root().join("proto").display().to_string()
}

/// The demo gateway with `rules` as its `edge_rules:` (YAML list items).
async fn with_rules(rules: &str) -> TestGateway {
    TestGateway::demo_with("", &format!("edge_rules:\n{rules}")).await
}

const RULES: &str = r#"
  - name: old-users
    match: { path: "/api/v0/users/{id}", methods: [GET, HEAD] }
    redirect: { to: "/v1/users/{id}", status: 308 }
  - name: docs-moved
    match: { path: "/docs/{rest=**}" }
    redirect: { to: "https://docs.example.com/{host}/{rest}?from=gw", keep_query: false }
  - name: maintenance
    match: { path: "/v1/inventory/{rest=**}", headers: [{ name: x-maintenance, present: true }] }
    respond:
      status: 503
      headers: { retry-after: "120", content-type: application/json }
      body: '{"error":"down for maintenance"}'
  - name: v2-users
    match: { path: "/api/v2/users/{id}" }
    rewrite: { path: "/v1/users/{id}" }
  - name: teapot
    match: { path: "/brew", hosts: ["coffee.example.com"] }
    respond: { status: 418, body: "short and stout" }
"#;

#[tokio::test]
async fn a_redirect_fills_its_target_from_the_path_and_keeps_the_query() {
    let gw = with_rules(RULES).await;
    let reply = gw.get("/api/v0/users/a%20b?view=full").await;
    assert_eq!(reply.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(reply.headers["location"], "/v1/users/a%20b?view=full");
    // Another method than the rule's goes on to routing (404 here).
    let post = gw
        .send(Method::POST, "/api/v0/users/1", &[], Bytes::new())
        .await;
    assert_eq!(post.status, StatusCode::NOT_FOUND);
    // A value with a slash stays one segment.
    let reply = gw.get("/api/v0/users/a%2Fb").await;
    assert_eq!(reply.headers["location"], "/v1/users/a%2Fb");
    assert_eq!(gw.upstream_calls(), 0);
    assert_eq!(
        gw.metric("switchyard_edge_rule_requests_total{action=\"redirect\",rule=\"old-users\"}")
            .await,
        Some(2.0)
    );
}

#[tokio::test]
async fn a_multi_segment_capture_keeps_its_slashes_and_a_dropped_query_is_dropped() {
    let gw = with_rules(RULES).await;
    let reply = gw
        .send(
            Method::GET,
            "/docs/guide/intro.html?utm=x",
            &[("host", "Gw.Example.com:8080")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        reply.headers["location"],
        "https://docs.example.com/gw.example.com/guide/intro.html?from=gw"
    );
}

#[tokio::test]
async fn a_fixed_answer_needs_its_header_condition_and_calls_no_upstream() {
    let gw = with_rules(RULES).await;
    let down = gw
        .send(
            Method::GET,
            "/v1/inventory/A-1",
            &[("x-maintenance", "1")],
            Bytes::new(),
        )
        .await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.headers["retry-after"], "120");
    assert_eq!(down.headers["content-type"], "application/json");
    assert_eq!(down.json()["error"], "down for maintenance");
    assert_eq!(gw.upstream_calls(), 0);
    // Without the header the route serves it.
    let up = gw.get("/v1/inventory/A-1").await;
    assert_ne!(up.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(gw.upstream_calls(), 1);
    // A rule for one host only.
    let elsewhere = gw.get("/brew").await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);
    let teapot = gw
        .send(
            Method::GET,
            "/brew",
            &[("host", "coffee.example.com")],
            Bytes::new(),
        )
        .await;
    assert_eq!(teapot.status.as_u16(), 418);
    assert_eq!(teapot.text(), "short and stout");
    assert_eq!(teapot.headers["content-type"], "text/plain; charset=utf-8");
}

#[tokio::test]
async fn a_rewrite_routes_the_new_path_to_the_upstream() {
    let gw = with_rules(RULES).await;
    let direct = gw.get("/v1/users/1").await;
    let rewritten = gw.get("/api/v2/users/1").await;
    assert_eq!(rewritten.status, StatusCode::OK, "{}", rewritten.text());
    assert_eq!(rewritten.json(), direct.json());
    assert_eq!(gw.demo.calls(Service::Users), 2);
    // A value that would be a dot segment is normalised like any path: it
    // cannot climb out of the rewritten prefix.
    let dots = gw.get("/api/v2/users/%2E%2E").await;
    assert_ne!(dots.status, StatusCode::OK, "{}", dots.text());
    assert_eq!(gw.demo.calls(Service::Users), 2);
}

#[tokio::test]
async fn bad_edge_rules_are_refused_at_their_key() {
    let base = format!(
        "protos: {{ sources: [\"{}\"] }}\nupstreams: {{ users: {{ endpoints: [\"http://127.0.0.1:1\"] }} }}\nroutes: [{{ service: demo.users.v1.UserService, upstream: users }}]\nedge_rules:\n",
        proto()
    );
    let base = |rule: &str| format!("{base}{rule}\n");
    common::assert_refused(base, "edge_rules[0]", &[
        (
            "  - { match: { path: \"/a/{id}\" }, redirect: { to: \"/b/{name}\" } }",
            "",
            "`{name}` is not a variable of the match path (its variables: [id])",
        ),
        (
            "  - { match: { path: \"/a\" }, redirect: { to: \"/b\", status: 200 } }",
            "",
            "200 is not a redirect status",
        ),
        (
            "  - { match: { path: \"/a\" }, redirect: { to: \"b\" } }",
            "",
            "a target is a path",
        ),
        (
            "  - { match: { path: \"/a\" }, respond: { status: 204 }, rewrite: { path: \"/b\" } }",
            "",
            "give only one of",
        ),
        ("  - { match: { path: \"/a\" } }", "", "the rule does nothing"),
        (
            "  - { match: { path: \"a/{\" }, respond: { status: 204 } }",
            "",
            "invalid path template",
        ),
        (
            "  - { match: { path: \"/a\" }, rewrite: { host: \"*.example.com\" } }",
            "",
            "is not a host name",
        ),
    ])
    .await;
}

/// Users split between two demo instances: `primary` (the gateway's own
/// demo) and `canary`.
async fn split_gateway(split: &str, top_extra: &str) -> (TestGateway, switchyard_demo::DemoServer) {
    let primary = common::spawn_demo().await;
    let canary = common::spawn_demo().await;
    let yaml = format!(
        r#"
listeners: [{{ address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
protos: {{ sources: ["{proto}"] }}
upstreams:
  users: {{ endpoints: ["{primary}"] }}
  users-canary: {{ endpoints: ["{canary}"] }}
routes:
  - name: users
    service: demo.users.v1.UserService
    upstream: users
    split: {split}
{top_extra}
"#,
        proto = proto(),
        primary = primary.url(Service::Users),
        canary = canary.url(Service::Users),
    );
    (TestGateway::start_yaml(primary, &yaml).await, canary)
}

#[tokio::test]
async fn weights_share_requests_between_the_variants_and_label_the_metrics() {
    let (gw, canary) = split_gateway(
        "{ variants: [{ name: canary, upstream: users-canary, weight: 30 }] }",
        "",
    )
    .await;
    for _ in 0..300 {
        assert_eq!(gw.get("/v1/users/1").await.status, StatusCode::OK);
    }
    let on_canary = canary.calls(Service::Users);
    let on_primary = gw.demo.calls(Service::Users);
    assert_eq!(on_canary + on_primary, 300);
    // 30% of 300 = 90, σ ≈ 7.9: six σ either side.
    assert!((43..138).contains(&on_canary), "{on_canary} on the canary");
    let metric = |variant: &str| {
        format!("switchyard_split_requests_total{{route=\"users\",variant=\"{variant}\"}}")
    };
    assert_eq!(gw.metric(&metric("canary")).await, Some(on_canary as f64));
    assert_eq!(gw.metric(&metric("primary")).await, Some(on_primary as f64));
    // The upstream metrics name the upstream that served.
    assert_eq!(
        gw.metric(
            "switchyard_upstream_requests_total{grpc_status=\"OK\",upstream=\"users-canary\"}"
        )
        .await,
        Some(on_canary as f64)
    );
}

#[tokio::test]
async fn a_sticky_key_keeps_each_client_on_one_side_and_overrides_win() {
    let (gw, canary) = split_gateway(
        r#"{ sticky: { header: x-user }, primary: stable, variants: [
             { name: canary, upstream: users-canary, weight: 50,
               when: { cookies: [{ name: canary, exact: "1" }] } },
             { name: opt-in, upstream: users-canary, weight: 0,
               when: { headers: [{ name: x-canary, exact: "1" }] } } ] }"#,
        "",
    )
    .await;
    let mut sides = std::collections::HashSet::new();
    for user in 0..20 {
        let id = format!("user-{user}");
        let mut side = None;
        for _ in 0..5 {
            let before = canary.calls(Service::Users);
            let reply = gw
                .send(Method::GET, "/v1/users/1", &[("x-user", &id)], Bytes::new())
                .await;
            assert_eq!(reply.status, StatusCode::OK);
            let here = canary.calls(Service::Users) > before;
            assert!(side.is_none_or(|s| s == here), "{id} changed sides");
            side = Some(here);
        }
        sides.insert(side);
    }
    assert_eq!(sides.len(), 2, "20 users at 50% all landed on one side");
    // Overrides: a header and a cookie, whatever the user's bucket.
    for headers in [
        &[("x-canary", "1")][..],
        &[("cookie", "theme=dark; canary=1")][..],
    ] {
        for user in 0..10 {
            let id = format!("user-{user}");
            let before = canary.calls(Service::Users);
            let mut all = headers.to_vec();
            all.push(("x-user", &id));
            gw.send(Method::GET, "/v1/users/1", &all, Bytes::new())
                .await;
            assert_eq!(canary.calls(Service::Users), before + 1, "{headers:?}");
        }
    }
    assert_eq!(
        gw.metric("switchyard_split_requests_total{route=\"users\",variant=\"opt-in\"}")
            .await,
        Some(10.0)
    );
}

#[tokio::test]
async fn the_access_log_names_the_variant_and_its_upstream() {
    let dir = common::scratch_dir("split-log");
    let log = dir.join("access.log");
    let (gw, _canary) = split_gateway(
        "{ variants: [{ name: canary, upstream: users-canary, when: { headers: [{ name: x-canary, present: true }] } }] }",
        &format!("access_log: {{ output: \"{}\" }}", log.display()),
    )
    .await;
    gw.send(
        Method::GET,
        "/v1/users/1",
        &[("x-canary", "")],
        Bytes::new(),
    )
    .await;
    gw.get("/v1/users/1").await;
    gw.stop().await;
    let text = std::fs::read_to_string(&log).expect("the access log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["variant"], "canary");
    assert_eq!(lines[0]["upstream"], "users-canary");
    assert_eq!(lines[1]["variant"], "primary");
    assert_eq!(lines[1]["upstream"], "users");
}

#[tokio::test]
async fn bad_splits_are_refused_at_their_key() {
    let base = |split: &str| {
        format!(
            "protos: {{ sources: [\"{}\"] }}\nupstreams: {{ users: {{ endpoints: [\"http://127.0.0.1:1\"] }}, b: {{ endpoints: [\"http://127.0.0.1:2\"] }} }}\nroutes:\n  - service: demo.users.v1.UserService\n    upstream: users\n    split: {split}\n",
            proto()
        )
    };
    common::assert_refused(base, "routes[0].split.", &[
        ("{ variants: [] }", "variants", "at least one variant"),
        (
            "{ variants: [{ name: b, upstream: nope, weight: 5 }] }",
            "variants[0].upstream",
            "unknown upstream `nope`",
        ),
        (
            "{ variants: [{ name: a, upstream: b, weight: 60 }, { name: c, upstream: b, weight: 50 }] }",
            "variants[1].weight",
            "more than 100",
        ),
        (
            "{ variants: [{ name: primary, upstream: b, weight: 5 }] }",
            "variants[0].name",
            "used twice",
        ),
        (
            "{ variants: [{ name: b, upstream: b }] }",
            "variants[0]",
            "never be chosen",
        ),
        (
            "{ variants: [{ name: b, upstream: b, weight: 0.001 }] }",
            "variants[0].weight",
            "two decimals",
        ),
        (
            "{ sticky: { consumer: true, client_ip: true }, variants: [{ name: b, upstream: b, weight: 5 }] }",
            "sticky",
            "several keys",
        ),
        (
            "{ variants: [{ name: \"b c\", upstream: b, weight: 5 }] }",
            "variants[0].name",
            "invalid variant name",
        ),
    ])
    .await;
}

#[tokio::test]
async fn events_of_a_split_route_carry_the_variant() {
    let id = format!("{:x}", fastrand::u64(..));
    let (stream, subject) = (format!("SPLIT{id}"), format!("split{id}"));
    let dir = common::scratch_dir("split-events");
    let primary = common::spawn_demo().await;
    let canary = common::spawn_demo().await;
    let yaml = format!(
        r#"
listeners: [{{ address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
protos: {{ sources: ["{proto}"] }}
upstreams:
  orders: {{ endpoints: ["{primary}"] }}
  orders-canary: {{ endpoints: ["{canary}"] }}
events:
  outbox: {{ path: "{outbox}", flush_interval: 2ms }}
  sinks:
    bus: {{ nats: {{ url: "nats://127.0.0.1:4222", stream: {{ name: {stream}, subjects: ["{subject}.>"] }} }} }}
routes:
  - name: orders
    service: demo.orders.v1.OrderService
    upstream: orders
    split:
      primary: stable
      variants: [{{ name: canary, upstream: orders-canary, when: {{ headers: [{{ name: x-canary, exact: "1" }}] }} }}]
    events:
      - {{ method: CreateOrder, type: order.created, sink: bus, destination: "{subject}.created" }}
"#,
        proto = proto(),
        primary = primary.url(Service::Orders),
        canary = canary.url(Service::Orders),
        outbox = dir.join("outbox.redb").display(),
    );
    let gw = TestGateway::start_yaml(primary, &yaml).await;
    let body = r#"{"userId":"1","items":[{"sku":"A-1","qty":1}]}"#;
    for canary_header in ["1", "0"] {
        let reply = gw
            .send(
                Method::POST,
                "/v1/orders",
                &[
                    ("content-type", "application/json"),
                    ("x-canary", canary_header),
                ],
                Bytes::from(body),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    assert_eq!(canary.calls(Service::Orders), 1);
    let events = common::nats::consume(
        "nats://127.0.0.1:4222",
        &stream,
        2,
        std::time::Duration::from_secs(10),
    )
    .await;
    let variants: Vec<&str> = events
        .iter()
        .map(|(_, e)| e["variant"].as_str().unwrap_or("(none)"))
        .collect();
    assert_eq!(variants, ["canary", "stable"]);
}
