//! Upstream connection handling: a cold burst shares one connection, a dead
//! endpoint is skipped for a live one, and a peer that does not speak gRPC
//! gives a clean 503 rather than a hang.

mod common;

use std::net::SocketAddr;

use common::TestGateway;
use http::StatusCode;
use switchyard_demo::Service;
use tokio::io::AsyncWriteExt;

fn yaml(proto: &str, endpoints: &str) -> String {
    format!(
        r#"
listeners: [{{ address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
protos: {{ sources: ["{proto}"] }}
upstreams:
  users: {{ endpoints: [{endpoints}], connect_timeout: 500ms, timeout: 2s }}
routes:
  - {{ service: demo.users.v1.UserService, upstream: users }}
"#
    )
}

async fn demo() -> switchyard_demo::DemoServer {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    switchyard_demo::spawn(any, any, any).await.unwrap()
}

fn proto() -> String {
    common::repo_root().join("proto").display().to_string()
}

#[tokio::test]
async fn a_cold_burst_of_concurrent_requests_all_succeed() {
    let gw = TestGateway::demo().await;
    let gw = std::sync::Arc::new(gw);
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..200 {
        let gw = gw.clone();
        calls.spawn(async move { gw.get(&format!("/v1/users/{}", i % 20 + 1)).await.status });
    }
    let mut ok = 0;
    while let Some(status) = calls.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
        ok += 1;
    }
    assert_eq!(ok, 200);
}

#[tokio::test]
async fn a_dead_endpoint_is_skipped_for_a_live_one() {
    // A port that was bound and released: connections are refused.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let demo = demo().await;
    let live = demo.url(Service::Users);
    let gw = TestGateway::start_yaml(
        demo,
        &yaml(&proto(), &format!("\"http://{dead}\", \"{live}\"")),
    )
    .await;
    for _ in 0..20 {
        let reply = gw.get("/v1/users/1").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    gw.stop().await;
}

#[tokio::test]
async fn an_upstream_that_does_not_speak_http2_is_503() {
    let junk = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let junk_addr = junk.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = junk.accept().await {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
                .await;
        }
    });
    let gw = TestGateway::start_yaml(
        demo().await,
        &yaml(&proto(), &format!("\"http://{junk_addr}\"")),
    )
    .await;
    let started = std::time::Instant::now();
    let reply = gw.get("/v1/users/1").await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert_eq!(reply.error().0, 14);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "failed fast, not at the deadline"
    );
    gw.stop().await;
}

#[tokio::test]
async fn all_endpoints_down_is_503_naming_the_upstream() {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let gw =
        TestGateway::start_yaml(demo().await, &yaml(&proto(), &format!("\"http://{dead}\""))).await;
    let reply = gw.get("/v1/users/1").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let (_, message) = reply.error();
    assert!(message.contains("upstream `users`"), "{message}");
    gw.stop().await;
}
