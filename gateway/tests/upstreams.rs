//! Upstream connection handling: a cold burst shares one connection, a dead
//! endpoint is skipped for a live one, and a peer that does not speak gRPC
//! gives a clean 503 rather than a hang.

mod common;

use std::net::SocketAddr;

use common::TestGateway;
use http::StatusCode;
use switchyard_demo::Service;
use tokio::io::AsyncWriteExt;

fn yaml(endpoints: &str) -> String {
    common::one_route_config(
        None,
        "demo.users.v1.UserService",
        endpoints,
        ", connect_timeout: 500ms, timeout: 2s",
        "",
    )
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
    let demo = common::spawn_demo().await;
    let live = demo.url(Service::Users);
    let gw = TestGateway::start_yaml(demo, &yaml(&format!("\"http://{dead}\", \"{live}\""))).await;
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
        common::spawn_demo().await,
        &yaml(&format!("\"http://{junk_addr}\"")),
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
    let gw = TestGateway::start_yaml(
        common::spawn_demo().await,
        &yaml(&format!("\"http://{dead}\"")),
    )
    .await;
    let reply = gw.get("/v1/users/1").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let (_, message) = reply.error();
    assert!(message.contains("upstream `up`"), "{message}");
    gw.stop().await;
}

/// A TCP proxy whose existing connections can be frozen: bytes stop flowing
/// but the sockets stay open, as when a host vanishes without closing.
struct FreezableProxy {
    addr: SocketAddr,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    frozen_below: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FreezableProxy {
    async fn start(target: SocketAddr) -> FreezableProxy {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let frozen_below = Arc::new(AtomicUsize::new(0));
        let (acc, frozen) = (accepted.clone(), frozen_below.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let id = acc.fetch_add(1, Ordering::SeqCst);
                let server = tokio::net::TcpStream::connect(target).await.unwrap();
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                for (mut from, mut to) in [(cr, sw), (sr, cw)].map(|(r, w)| {
                    (
                        Box::new(r) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                        w,
                    )
                }) {
                    let frozen = frozen.clone();
                    tokio::spawn(async move {
                        use tokio::io::AsyncReadExt;
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match from.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if id < frozen.load(Ordering::SeqCst) {
                                // Frozen: swallow everything, keep the socket open.
                                continue;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        FreezableProxy {
            addr,
            accepted,
            frozen_below,
        }
    }

    /// Freezes every connection accepted so far.
    fn freeze_existing(&self) {
        use std::sync::atomic::Ordering;
        self.frozen_below
            .store(self.accepted.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_connection_that_goes_silent_is_replaced_after_a_missed_keepalive_ping() {
    let demo = common::spawn_demo().await;
    let proxy = FreezableProxy::start(demo.addr(Service::Users)).await;
    let yaml = common::one_route_config(
        None,
        "demo.users.v1.UserService",
        &format!("\"http://{}\"", proxy.addr),
        ", timeout: 1s, keepalive_interval: 200ms, keepalive_timeout: 200ms",
        "",
    );
    let gw = TestGateway::start_yaml(demo, &yaml).await;
    assert_eq!(gw.get("/v1/users/1").await.status, StatusCode::OK);
    proxy.freeze_existing();
    // Within interval + timeout the dead connection is found and replaced.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let reply = gw.get("/v1/users/1").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        proxy.accepted.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "a second connection was opened"
    );
    gw.stop().await;
}

#[tokio::test]
async fn connections_spread_over_several_workers_are_all_served() {
    use tokio::io::AsyncReadExt;
    let gw = TestGateway::demo_with("", "workers: 3").await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..12 {
        let addr = gw.addr;
        calls.spawn(async move {
            // A fresh connection each: the listener hands them round robin to the workers.
            let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!(
                "GET /v1/users/{} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
                i % 5 + 1
            );
            conn.write_all(request.as_bytes()).await.unwrap();
            let mut reply = String::new();
            conn.read_to_string(&mut reply).await.unwrap();
            reply
        });
    }
    while let Some(reply) = calls.join_next().await {
        let reply = reply.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }
    gw.stop().await;
}
