//! Upstream faults: an upstream that answers garbage (bytes that are not
//! the reply message, a frame cut short, HTML instead of gRPC) or resets
//! the stream after its headers. Each call ends in a 5xx with the JSON error
//! shape well within the route's deadline, and the gateway goes on serving.
//! A server stream that breaks after its first message (reset, or garbage)
//! ends its SSE response with an `event: error` carrying the status.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::common::{self, TestGateway};

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// A well-framed gRPC message whose bytes are not a `User`.
    NotTheMessage,
    /// A length prefix of 100 bytes, then 10 and the end of the stream.
    CutShort,
    /// 200 with `text/html`: not a gRPC server at all.
    Html,
    /// gRPC headers, then RST_STREAM.
    ResetAfterHeaders,
    /// One good `Order`, then RST_STREAM (for a server stream).
    ResetMidStream,
    /// One good `Order`, then bytes that are not one (for a server stream).
    GarbageMidStream,
}

/// `Order{id: "1"}`, one gRPC frame.
const ONE_ORDER: &[u8] = b"\x00\x00\x00\x00\x03\x0a\x011";

/// An HTTP/2 upstream on an ephemeral port that answers every call with `fault`.
async fn faulty(fault: Fault) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(socket).await else {
                    return;
                };
                // Each call on a task of its own: the connection is driven
                // by `accept`, and must go on flushing while a call waits.
                while let Some(Ok((_request, respond))) = conn.accept().await {
                    tokio::spawn(answer(fault, respond));
                }
            });
        }
    });
    addr
}

/// Answers one call with `fault`.
async fn answer(fault: Fault, mut respond: h2::server::SendResponse<Bytes>) {
    let content_type = match fault {
        Fault::Html => "text/html",
        _ => "application/grpc",
    };
    let head = http::Response::builder()
        .header("content-type", content_type)
        .body(())
        .unwrap();
    let Ok(mut body) = respond.send_response(head, false) else {
        return;
    };
    let data: &[u8] = match fault {
        // Field 1 as a varint where `id` is a string: not a User.
        Fault::NotTheMessage => b"\x00\x00\x00\x00\x03\x08\xff\x01",
        Fault::CutShort => b"\x00\x00\x00\x00\x64\x0a\x081234567",
        Fault::Html => b"<html><body>502 Bad Gateway</body></html>",
        Fault::ResetAfterHeaders => {
            body.send_reset(h2::Reason::INTERNAL_ERROR);
            return;
        }
        Fault::ResetMidStream | Fault::GarbageMidStream => {
            let _ = body.send_data(Bytes::from_static(ONE_ORDER), false);
            // The first message reaches the client before the fault.
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Fault::ResetMidStream = fault {
                body.send_reset(h2::Reason::INTERNAL_ERROR);
                return;
            }
            b"\x00\x00\x00\x00\x03\x08\xff\x01"
        }
    };
    let _ = body.send_data(Bytes::from_static(data), false);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let _ = body.send_trailers(trailers);
}

#[tokio::test]
async fn garbage_or_a_reset_from_the_upstream_is_a_5xx_within_the_deadline() {
    for fault in [
        Fault::NotTheMessage,
        Fault::CutShort,
        Fault::Html,
        Fault::ResetAfterHeaders,
    ] {
        let addr = faulty(fault).await;
        let yaml = common::one_route_config(
            None,
            "demo.users.v1.UserService",
            &format!("\"http://{addr}\""),
            "",
            ", timeout: 2s",
        );
        let gw = TestGateway::start_yaml(common::spawn_demo().await, &yaml).await;
        for _ in 0..3 {
            let started = Instant::now();
            let reply = gw.get("/v1/users/1").await;
            println!("{fault:?}: {} {}", reply.status, reply.text());
            assert!(
                reply.status.is_server_error(),
                "{fault:?}: {}",
                reply.text()
            );
            reply.error();
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{fault:?}: took {:?}",
                started.elapsed()
            );
        }
        gw.stop().await;
    }
}

#[tokio::test]
async fn a_server_stream_that_breaks_midway_ends_its_sse_with_an_error_event() {
    for (fault, code) in [(Fault::ResetMidStream, 14), (Fault::GarbageMidStream, 13)] {
        let addr = faulty(fault).await;
        let yaml = common::one_route_config(
            None,
            "demo.orders.v1.OrderService",
            &format!("\"http://{addr}\""),
            "",
            "",
        );
        let gw = TestGateway::start_yaml(common::spawn_demo().await, &yaml).await;
        let request = b"GET /v1/users/1/orders:watch HTTP/1.1\r\nHost: a\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n";
        let started = Instant::now();
        let got = crate::raw::exchange(gw.addr, request, Duration::from_secs(5)).await;
        assert!(got.closed, "{fault:?}: the stream did not end");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{fault:?}: took {:?}",
            started.elapsed()
        );
        let reply = got.only();
        assert_eq!(reply.status, 200, "{fault:?}: {}", reply.text());
        let text = reply.text();
        let events: Vec<&str> = text
            .split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .collect();
        assert!(events[0].contains(r#""id":"1""#), "{fault:?}: {text}");
        let last = events.last().unwrap();
        assert!(last.starts_with("event: error"), "{fault:?}: {text}");
        assert!(
            last.contains(&format!(r#""code":{code}"#)),
            "{fault:?}: {text}"
        );
        gw.stop().await;
    }
}
