//! Limits on what a client may send and how slowly: too many or too large
//! headers (431), a body over the route's limit (413 before any upstream
//! call), and clients that send their head or body too slowly (closed, or
//! 408, at the configured timeout while everyone else is served).

use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::QUIET;
use crate::common::TestGateway;
use crate::raw::{exchange, read_all};

#[tokio::test]
async fn too_many_headers_or_too_large_a_head_is_431() {
    let gw =
        TestGateway::demo_with("", "limits: { max_headers: 30, max_header_bytes: 16KiB }").await;
    let many: String = (0..40).map(|i| format!("x-h{i}: v\r\n")).collect();
    let big = format!("x-big: {}\r\n", "a".repeat(20 * 1024));
    for headers in [many, big] {
        let attack = format!("GET /v1/users/1 HTTP/1.1\r\nHost: a\r\n{headers}\r\n");
        let got = exchange(gw.addr, attack.as_bytes(), QUIET).await;
        assert_eq!(got.statuses(), [431]);
        assert!(got.closed);
    }
    assert_eq!(gw.upstream_calls(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_body_over_the_route_limit_is_413_before_it_is_sent_or_while_it_streams() {
    let gw = TestGateway::demo_with(", max_request_body: 1KiB", "").await;
    // Declared too large: refused on the head alone, without waiting for
    // a byte of the 10 MB.
    let head = "POST /v1/orders HTTP/1.1\r\nHost: a\r\ncontent-type: application/json\r\nContent-Length: 10000000\r\n\r\n";
    let got = exchange(gw.addr, head.as_bytes(), QUIET).await;
    let reply = got.only();
    assert_eq!(reply.status, 413);
    assert!(reply.message().contains("1024 bytes"), "{}", reply.text());
    // Chunked, with no length up front: refused once 1 KiB has passed.
    let chunk = format!("400\r\n{}\r\n", "a".repeat(1024));
    let attack = format!(
        "POST /v1/orders HTTP/1.1\r\nHost: a\r\ncontent-type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}{chunk}0\r\n\r\n"
    );
    let got = exchange(gw.addr, attack.as_bytes(), QUIET).await;
    assert_eq!(got.statuses(), [413]);
    assert_eq!(gw.upstream_calls(), 0);
    gw.stop().await;
}

/// Sends `prefix` and then one byte of `rest` every `every` on its own
/// connection, until the gateway answers or closes; returns what came back
/// and when.
async fn trickle(
    addr: std::net::SocketAddr,
    prefix: &str,
    rest: &str,
    every: Duration,
) -> (crate::raw::Exchange, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(prefix.as_bytes()).await.unwrap();
    for byte in rest.bytes() {
        tokio::time::sleep(every).await;
        if stream.write_all(&[byte]).await.is_err() {
            break;
        }
        // Any answer (or a close) ends the trickle.
        let mut probe = [0u8; 1];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::ZERO, stream.peek(&mut probe)).await {
            let _ = n;
            break;
        }
    }
    let got = read_all(&mut stream, Duration::from_secs(5)).await;
    (got, started.elapsed())
}

#[tokio::test]
async fn slowloris_heads_are_closed_at_the_header_timeout_while_others_are_served() {
    let gw = TestGateway::demo_with("", "limits: { header_read_timeout: 600ms }").await;
    let head = "GET /v1/users/1 HTTP/1.1\r\nHost: a\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let attackers: Vec<_> = (0..20)
        .map(|_| tokio::spawn(trickle(gw.addr, "G", &head[1..], Duration::from_millis(50))))
        .collect();
    // While they trickle, a normal client is served at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        assert_eq!(gw.get("/v1/users/1").await.status, StatusCode::OK);
    }
    for attacker in attackers {
        let (got, took) = attacker.await.unwrap();
        assert!(got.closed, "a slowloris connection is still open: {got:?}");
        assert!(
            got.statuses().iter().all(|s| *s == 408),
            "answered {:?}",
            got.statuses()
        );
        assert!(
            took < Duration::from_secs(4),
            "closed after {took:?}, not at the 600 ms timeout"
        );
    }
    assert_eq!(gw.upstream_calls(), 5, "only the normal client's calls");
    gw.stop().await;
}

#[tokio::test]
async fn a_slow_body_is_408_at_the_body_timeout_while_others_are_served() {
    let gw = TestGateway::demo_with("", "limits: { body_read_timeout: 600ms }").await;
    let body = r#"{"userId":"1","items":[{"sku":"A-1","qty":1}]}"#;
    let head = format!(
        "POST /v1/orders HTTP/1.1\r\nHost: a\r\ncontent-type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let addr = gw.addr;
    let attackers: Vec<_> = (0..20)
        .map(|_| {
            let (head, body) = (head.clone(), body.to_owned());
            tokio::spawn(
                async move { trickle(addr, &head, &body, Duration::from_millis(100)).await },
            )
        })
        .collect();
    // While they trickle, a normal client is served at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        assert_eq!(
            gw.post_json("/v1/orders", body).await.status,
            StatusCode::OK
        );
    }
    for attacker in attackers {
        let (got, took) = attacker.await.unwrap();
        let reply = got.only();
        assert_eq!(reply.status, 408, "{}", reply.text());
        assert_eq!(
            reply.message(),
            "the request body was not received within 600ms (limits.body_read_timeout)"
        );
        assert!(
            took < Duration::from_secs(4),
            "answered after {took:?}, not at the 600 ms timeout"
        );
    }
    assert_eq!(gw.upstream_calls(), 5, "only the normal client's calls");
    gw.stop().await;
}
