//! The admin API's operational endpoints: `/readyz` waits for critical
//! upstreams, `/admin/upstreams` shows endpoints with their health checks,
//! circuits and ejections.

mod common;

use std::time::Duration;

use common::TestGateway;
use common::nats::free_port;
use http::StatusCode;
use switchyard_demo::Service;

/// A route `users` on the demo and a route `ghost` on an upstream whose
/// only endpoint refuses connections, with `ghost_extra` on that upstream.
async fn gateway(ghost_extra: &str) -> TestGateway {
    let demo = common::spawn_demo().await;
    let yaml = format!(
        r#"
listeners: [{{ address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
protos: {{ sources: ["{proto}"] }}
reload: {{ watch_interval: 0s }}
upstreams:
  users:
    endpoints: ["{users}"]
    critical: true
    health_check: {{ interval: 100ms, timeout: 500ms, healthy_threshold: 1, unhealthy_threshold: 1 }}
  ghost:
    endpoints: ["http://127.0.0.1:{closed}"]
    outlier: {{ consecutive_failures: 2, base_ejection: 30s }}
    {ghost_extra}
routes:
  - {{ name: users, service: demo.users.v1.UserService, upstream: users }}
  - {{ name: ghost, service: demo.orders.v1.OrderService, upstream: ghost }}
"#,
        proto = common::repo_root().join("proto").display(),
        users = demo.url(Service::Users),
        closed = free_port(),
    );
    TestGateway::start_yaml(demo, &yaml).await
}

async fn eventually(gw: &TestGateway, path: &str, want: StatusCode) -> common::Reply {
    for _ in 0..100 {
        let reply = gw.admin_get(path).await;
        if reply.status == want {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} did not answer {want} within 5 s");
}

#[tokio::test]
async fn readyz_is_ready_while_critical_upstreams_serve_and_says_which_one_does_not() {
    let gw = gateway("").await;
    // `ghost` is down but not critical: ready.
    eventually(&gw, "/readyz", StatusCode::OK).await;
    gw.stop().await;

    let gw = gateway(
        "critical: true\n    health_check: { interval: 100ms, timeout: 200ms, unhealthy_threshold: 1 }",
    )
    .await;
    let reply = eventually(&gw, "/readyz", StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(
        reply.text(),
        "not ready\ncritical upstream `ghost` has no endpoint in service\n"
    );
    // The liveness probe does not care.
    assert_eq!(gw.admin_get("/healthz").await.status, StatusCode::OK);
    gw.stop().await;
}

#[tokio::test]
async fn admin_upstreams_shows_health_and_an_ejected_endpoint() {
    let gw = gateway("").await;
    // Two failed calls eject ghost's endpoint (consecutive_failures: 2).
    for _ in 0..2 {
        let reply = gw.get("/v1/orders/1").await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.text()
        );
    }
    let body = gw.admin_get("/admin/upstreams").await.json();
    let upstreams = body["upstreams"].as_array().unwrap();
    let by_name = |name: &str| {
        upstreams
            .iter()
            .find(|u| u["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {body}"))
    };
    let ghost = by_name("ghost");
    assert_eq!(ghost["serving"], false, "{ghost}");
    assert_eq!(ghost["critical"], false);
    let endpoint = &ghost["endpoints"][0];
    assert_eq!(endpoint["circuit_open"], true, "{endpoint}");
    assert_eq!(endpoint["ejections"], 1, "{endpoint}");
    assert!(
        endpoint["ejected_for_ms"].as_u64().unwrap() > 20_000,
        "{endpoint}"
    );
    let users = by_name("users");
    assert_eq!(users["critical"], true);
    assert_eq!(users["serving"], true, "{users}");
    assert_eq!(users["endpoints"][0]["healthy"], true);
    assert_eq!(users["endpoints"][0]["circuit_open"], false);
    gw.stop().await;
}

#[tokio::test]
async fn client_connections_are_counted_while_open_and_in_all() {
    let gw = gateway("").await;
    assert_eq!(gw.get("/v1/users/1").await.status, StatusCode::OK);
    let total = gw
        .metric("switchyard_connections_total{transport=\"tcp\"}")
        .await;
    assert!(total.is_some_and(|n| n >= 1.0), "{total:?}");
    // The test client keeps its connection: it is open now.
    let open = gw
        .metric("switchyard_connections_open{transport=\"tcp\"}")
        .await;
    assert!(open.is_some_and(|n| n >= 1.0), "{open:?}");
    gw.stop().await;
}
