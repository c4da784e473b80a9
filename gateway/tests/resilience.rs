//! Upstream resilience: transport failures are retried (any method when the
//! request cannot have been sent, GET/HEAD otherwise) within a retry budget;
//! an UNAVAILABLE the upstream itself sent is not; and a saturated upstream
//! sheds calls with 503 instead of queueing them.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::TestGateway;
use http::StatusCode;
use switchyard_demo::Service;

/// How a fake upstream treats what it accepts.
#[derive(Clone, Copy)]
enum Fake {
    /// Accepts the TCP connection and closes it at once.
    DropOnAccept,
    /// Speaks HTTP/2, receives a request, then closes the connection
    /// without answering: the request may have been processed.
    DropAfterRequest,
    /// Answers every call with a gRPC UNAVAILABLE status of its own.
    Unavailable,
}

/// A fake upstream on an ephemeral port, and the requests it received.
async fn fake(kind: Fake) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let seen = seen.clone();
            match kind {
                Fake::DropOnAccept => drop(socket),
                Fake::DropAfterRequest | Fake::Unavailable => {
                    tokio::spawn(async move {
                        let Ok(mut conn) = h2::server::handshake(socket).await else {
                            return;
                        };
                        while let Some(Ok((_request, mut respond))) = conn.accept().await {
                            seen.fetch_add(1, Ordering::SeqCst);
                            if let Fake::DropAfterRequest = kind {
                                return; // drops the connection unanswered
                            }
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
            }
        }
    });
    (addr, requests)
}

/// One users route on upstream `up` at `endpoints`, with `upstream_extra`.
async fn gateway(endpoints: &[String], upstream_extra: &str, route_extra: &str) -> TestGateway {
    let list: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    let yaml = common::one_route_config(
        None,
        "demo.users.v1.UserService",
        &list.join(", "),
        &format!(", connect_timeout: 300ms, timeout: 2s {upstream_extra}"),
        route_extra,
    );
    TestGateway::start_yaml(common::spawn_demo().await, &yaml).await
}

/// A sample of upstream `up`'s metric `name` (0 when absent).
async fn metric(gw: &TestGateway, name: &str) -> u64 {
    let text = gw.admin_get("/metrics").await.text();
    let prefix = format!("switchyard_{name}{{upstream=\"up\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn gets_are_retried_on_another_endpoint_when_one_drops_connections() {
    let (dropper, _) = fake(Fake::DropOnAccept).await;
    let demo = common::spawn_demo().await;
    let live = demo.url(Service::Users);
    let gw = gateway(&[format!("http://{dropper}"), live.to_string()], "", "").await;
    for _ in 0..20 {
        let reply = gw.get("/v1/users/1").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    // Half the calls go to the dropper first (p2c between two idle endpoints).
    let retries = metric(&gw, "upstream_retries_total").await;
    assert!(retries > 0, "calls were retried");
    assert!(retries <= 20, "at most one retry per call: {retries}");
    gw.stop().await;
}

#[tokio::test]
async fn a_post_that_may_have_reached_the_upstream_is_not_retried_but_a_get_is() {
    let (dropper, requests) = fake(Fake::DropAfterRequest).await;
    let gw = gateway(&[format!("http://{dropper}")], "", "").await;
    let reply = gw
        .post_json(
            "/v1/users",
            r#"{"name": "Ada", "email": "ada@example.com"}"#,
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert_eq!(reply.error().0, 14);
    assert_eq!(requests.load(Ordering::SeqCst), 1, "sent once");
    assert_eq!(metric(&gw, "upstream_retries_total").await, 0);

    // The same failure on a GET is retried (and fails again here).
    let reply = gw.get("/v1/users/1").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(requests.load(Ordering::SeqCst), 3, "sent twice");
    assert_eq!(metric(&gw, "upstream_retries_total").await, 1);
    gw.stop().await;
}

#[tokio::test]
async fn an_unavailable_status_sent_by_the_upstream_is_not_retried() {
    let (upstream, requests) = fake(Fake::Unavailable).await;
    let gw = gateway(&[format!("http://{upstream}")], "", "").await;
    let reply = gw.get("/v1/users/1").await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    let (code, message) = reply.error();
    assert_eq!(code, 14);
    assert!(message.contains("overloaded"), "{message}");
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    assert_eq!(metric(&gw, "upstream_retries_total").await, 0);
    gw.stop().await;
}

#[tokio::test]
async fn retries_stop_at_the_retry_budget() {
    let (dropper, _) = fake(Fake::DropOnAccept).await;
    // Reserve: 1 retry a second over the 10 s window = 10; plus 0.1 per call.
    let gw = gateway(
        &[format!("http://{dropper}")],
        ", retry: { attempts: 3, budget_ratio: 0.1, min_per_second: 1 }",
        "",
    )
    .await;
    let calls = 40;
    for _ in 0..calls {
        let reply = gw.get("/v1/users/1").await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let retries = metric(&gw, "upstream_retries_total").await;
    // Without the budget: 2 retries per call, 80.
    assert!(
        (10..=10 + calls / 10).contains(&retries),
        "retries within the budget: {retries}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_saturated_upstream_sheds_calls_at_once() {
    let silent = common::silent_upstream();
    let gw = Arc::new(
        gateway(
            &[format!("http://{silent}")],
            ", max_concurrent: 2",
            ", timeout: 400ms",
        )
        .await,
    );
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let gw = gw.clone();
        calls.spawn(async move {
            let started = Instant::now();
            let reply = gw.get("/v1/users/1").await;
            (reply, started.elapsed())
        });
    }
    let (mut shed, mut timed_out) = (0, 0);
    while let Some(call) = calls.join_next().await {
        let (reply, elapsed) = call.unwrap();
        match reply.status {
            StatusCode::SERVICE_UNAVAILABLE => {
                let (code, message) = reply.error();
                assert_eq!(code, 14);
                assert!(message.contains("upstream `up` is saturated"), "{message}");
                assert!(elapsed < Duration::from_millis(300), "shed at once");
                shed += 1;
            }
            StatusCode::GATEWAY_TIMEOUT => {
                assert!(elapsed >= Duration::from_millis(350), "{elapsed:?}");
                timed_out += 1;
            }
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    assert_eq!((shed, timed_out), (3, 2));
    assert_eq!(metric(&gw, "upstream_shed_total").await, 3);
    assert_eq!(
        metric(&gw, "upstream_in_flight").await,
        0,
        "permits released"
    );
    // Capacity is back.
    let started = Instant::now();
    assert_eq!(
        gw.get("/v1/users/1").await.status,
        StatusCode::GATEWAY_TIMEOUT
    );
    assert!(started.elapsed() >= Duration::from_millis(350));
}

#[tokio::test]
async fn invalid_retry_settings_are_config_errors() {
    let yaml = common::one_route_config(
        None,
        "demo.users.v1.UserService",
        "\"http://127.0.0.1:1\"",
        ", retry: { attempts: 0 }",
        "",
    );
    let path = common::repo_root().join("test.yaml");
    let loaded = switchyard::config::parse(&path, yaml).unwrap();
    let err = switchyard::app::start(loaded).await.err().expect("refused");
    assert!(err.to_string().contains("retry"), "{err}");
}
