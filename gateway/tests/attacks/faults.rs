//! Upstream faults: an upstream that answers garbage (bytes that are not
//! the reply message, a frame cut short, HTML instead of gRPC) or resets
//! the stream after its headers. Each call ends in a 5xx with the JSON error
//! shape well within the route's deadline, and the gateway goes on serving.

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
}

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
                while let Some(Ok((_request, mut respond))) = conn.accept().await {
                    let content_type = match fault {
                        Fault::Html => "text/html",
                        _ => "application/grpc",
                    };
                    let head = http::Response::builder()
                        .header("content-type", content_type)
                        .body(())
                        .unwrap();
                    let Ok(mut body) = respond.send_response(head, false) else {
                        continue;
                    };
                    let data: &[u8] = match fault {
                        // Field 1 as a varint where `id` is a string: not a User.
                        Fault::NotTheMessage => b"\x00\x00\x00\x00\x03\x08\xff\x01",
                        Fault::CutShort => b"\x00\x00\x00\x00\x64\x0a\x081234567",
                        Fault::Html => b"<html><body>502 Bad Gateway</body></html>",
                        Fault::ResetAfterHeaders => {
                            body.send_reset(h2::Reason::INTERNAL_ERROR);
                            continue;
                        }
                    };
                    let _ = body.send_data(Bytes::from_static(data), false);
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", "0".parse().unwrap());
                    let _ = body.send_trailers(trailers);
                }
            });
        }
    });
    addr
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
