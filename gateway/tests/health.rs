//! Endpoint selection: round robin, passive outlier ejection of an endpoint
//! that keeps failing, and active gRPC health checks taking an endpoint out
//! of rotation and back, with the per-endpoint metrics.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::TestGateway;
use http::StatusCode;
use switchyard_demo::{DemoServer, Service};

/// A second set of demo services, so one upstream can have two live endpoints.
async fn second_demo() -> DemoServer {
    common::spawn_demo().await
}

/// One users route on upstream `up` at `endpoints`, with `upstream_extra`.
async fn gateway(demo: DemoServer, endpoints: &[String], upstream_extra: &str) -> TestGateway {
    let list: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    let yaml = common::one_route_config(
        None,
        "demo.users.v1.UserService",
        &list.join(", "),
        &format!(", connect_timeout: 300ms, timeout: 2s {upstream_extra}"),
        "",
    );
    TestGateway::start_yaml(demo, &yaml).await
}

/// A sample of metric `name` for upstream `up` and `endpoint`, if present.
async fn endpoint_metric(gw: &TestGateway, name: &str, endpoint: &str) -> Option<i64> {
    let text = gw.admin_get("/metrics").await.text();
    let prefix = format!("switchyard_{name}{{endpoint=\"{endpoint}\",upstream=\"up\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
}

/// A fake upstream answering every call with its own gRPC UNAVAILABLE, and
/// the calls it received.
async fn unavailable_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(socket).await else {
                    return;
                };
                while let Some(Ok((_request, mut respond))) = conn.accept().await {
                    seen.fetch_add(1, Ordering::SeqCst);
                    let response = http::Response::builder()
                        .header("content-type", "application/grpc")
                        .header("grpc-status", "14")
                        .header("grpc-message", "overloaded")
                        .body(())
                        .unwrap();
                    let _ = respond.send_response(response, true);
                }
            });
        }
    });
    (addr, requests)
}

#[tokio::test]
async fn round_robin_alternates_between_endpoints() {
    let a = common::spawn_demo().await;
    let b = second_demo().await;
    let endpoints = [a.url(Service::Users), b.url(Service::Users)];
    let gw = gateway(a, &endpoints, ", balance: round_robin").await;
    for _ in 0..10 {
        let reply = gw.get("/v1/users/1").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    assert_eq!(gw.demo.calls(Service::Users), 5);
    assert_eq!(b.calls(Service::Users), 5);
    gw.stop().await;
}

#[tokio::test]
async fn an_endpoint_that_keeps_failing_is_ejected_and_calls_go_to_the_live_one() {
    let (failing, requests) = unavailable_upstream().await;
    let demo = common::spawn_demo().await;
    let failing_url = format!("http://{failing}");
    let endpoints = [failing_url.clone(), demo.url(Service::Users)];
    let gw = gateway(
        demo,
        &endpoints,
        ", balance: round_robin, retry: { attempts: 1 }, \
         outlier: { consecutive_failures: 3, base_ejection: 30s, max_ejection: 60s }",
    )
    .await;
    let mut unavailable = 0;
    for _ in 0..6 {
        if gw.get("/v1/users/1").await.status == StatusCode::SERVICE_UNAVAILABLE {
            unavailable += 1;
        }
    }
    // Round robin: calls 1, 3 and 5 went to the failing endpoint.
    assert_eq!(unavailable, 3);
    assert_eq!(requests.load(Ordering::SeqCst), 3);
    for _ in 0..20 {
        let reply = gw.get("/v1/users/1").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    assert_eq!(requests.load(Ordering::SeqCst), 3, "ejected: no more calls");
    assert_eq!(gw.demo.calls(Service::Users), 23);
    let ejections = endpoint_metric(&gw, "upstream_ejections_total", &failing_url).await;
    assert_eq!(ejections, Some(1));
    let healthy = endpoint_metric(&gw, "upstream_endpoint_healthy", &failing_url).await;
    assert_eq!(healthy, Some(0));
    gw.stop().await;
}

#[tokio::test]
async fn when_every_endpoint_is_ejected_calls_still_go_out() {
    let (failing, requests) = unavailable_upstream().await;
    let gw = gateway(
        common::spawn_demo().await,
        &[format!("http://{failing}")],
        ", retry: { attempts: 1 }, outlier: { consecutive_failures: 2, base_ejection: 30s }",
    )
    .await;
    for _ in 0..5 {
        assert_eq!(
            gw.get("/v1/users/1").await.status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    assert_eq!(requests.load(Ordering::SeqCst), 5, "never refused unsent");
    gw.stop().await;
}

#[tokio::test]
async fn an_endpoint_failing_health_checks_leaves_rotation_and_comes_back() {
    let a = common::spawn_demo().await;
    let b = second_demo().await;
    let b_url = b.url(Service::Users);
    let endpoints = [a.url(Service::Users), b_url.clone()];
    let gw = gateway(
        a,
        &endpoints,
        ", balance: round_robin, health_check: { interval: 100ms, timeout: 500ms, \
         service: demo.users.v1.UserService, unhealthy_threshold: 2, healthy_threshold: 1 }",
    )
    .await;
    let gauge = || endpoint_metric(&gw, "upstream_endpoint_healthy", &b_url);
    assert_eq!(gauge().await, Some(1));

    b.set_serving(Service::Users, false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gauge().await, Some(0));
    let before = b.calls(Service::Users);
    for _ in 0..10 {
        assert_eq!(gw.get("/v1/users/1").await.status, StatusCode::OK);
    }
    assert_eq!(b.calls(Service::Users), before, "b is out of rotation");

    b.set_serving(Service::Users, true);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(gauge().await, Some(1));
    for _ in 0..10 {
        assert_eq!(gw.get("/v1/users/1").await.status, StatusCode::OK);
    }
    assert_eq!(b.calls(Service::Users), before + 5, "b is back in rotation");
    gw.stop().await;
}

#[tokio::test]
async fn health_checks_stop_when_the_gateway_stops() {
    let a = common::spawn_demo().await;
    // A plain TCP listener that counts the health-check connections it gets.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let endpoints = [a.url(Service::Users), format!("http://{addr}")];
    let gw = gateway(
        a,
        &endpoints,
        ", health_check: { interval: 50ms, timeout: 50ms }",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(accepted.load(Ordering::SeqCst) > 0, "checks ran");
    gw.stop().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after_stop = accepted.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        after_stop,
        "no checks after stop"
    );
}
