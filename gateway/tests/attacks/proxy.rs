//! Through `proxies:` (docs/proxying.md): smuggling, hop-by-hop tricks and
//! encoded paths must not reach the HTTP service behind a proxy. The service
//! here is a real HTTP/1.1 server that records every request it parses.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::QUIET;
use crate::common::TestGateway;
use crate::raw::exchange;

/// What the service received: method, path and query, headers, body.
#[derive(Clone, Debug)]
struct Seen {
    target: String,
    headers: http::HeaderMap,
    body: Bytes,
}

/// An HTTP/1.1 service answering `ok` to everything, recording it.
async fn service() -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let record = record.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        record.lock().expect("lock").push(Seen {
                            target: format!("{} {}", parts.method, parts.uri),
                            headers: parts.headers,
                            body,
                        });
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from("ok"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// The demo gateway with the service behind `proxies` (YAML list items).
async fn gateway(service: SocketAddr, proxies: &str) -> TestGateway {
    let top = format!(
        "http_upstreams:\n  svc: {{ endpoints: [\"http://{service}\"] }}\nproxies:\n{proxies}"
    );
    TestGateway::demo_with("", &top).await
}

fn seen(log: &Mutex<Vec<Seen>>) -> Vec<Seen> {
    log.lock().expect("lock").clone()
}

#[tokio::test]
async fn a_request_smuggled_in_a_body_never_reaches_the_service() {
    let (addr, log) = service().await;
    let gw = gateway(addr, "  - { name: site, prefix: /, upstream: svc }\n").await;
    let smuggled = "GET /admin/delete-everything HTTP/1.1\r\nHost: a\r\n\r\n";
    let chunk = "hello";
    for framing in [
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    ] {
        let attack = format!(
            "POST /form HTTP/1.1\r\nHost: a\r\n{framing}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n{smuggled}",
            chunk.len()
        );
        let got = exchange(gw.addr, attack.as_bytes(), QUIET).await;
        assert_eq!(got.only().status, 200, "{framing:?}");
        assert!(got.closed, "{framing:?}: the connection stays open");
    }
    let seen = seen(&log);
    let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(targets, ["POST /form", "POST /form"], "{seen:?}");
    for request in &seen {
        assert_eq!(&request.body[..], b"hello", "the chunked body, decoded");
        assert!(
            request
                .headers
                .get("transfer-encoding")
                .is_none_or(|v| v == "chunked")
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn naming_the_forwarding_headers_in_connection_does_not_strip_them() {
    let (addr, log) = service().await;
    let gw = gateway(addr, "  - { name: site, prefix: /, upstream: svc }\n").await;
    let attack = "GET /page HTTP/1.1\r\nHost: a\r\nConnection: x-forwarded-for, x-forwarded-proto\r\n\
                  X-Forwarded-For: 10.0.0.1\r\n\r\n";
    let got = exchange(gw.addr, attack.as_bytes(), QUIET).await;
    assert_eq!(got.only().status, 200);
    let seen = seen(&log);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen[0].headers["x-forwarded-proto"], "http");
    assert!(
        seen[0]
            .headers
            .get("connection")
            .is_none_or(|v| v == "keep-alive")
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_authenticated_prefix_cannot_be_reached_through_an_encoded_path() {
    let (addr, log) = service().await;
    let gw = gateway(
        addr,
        r#"  - { name: public, prefix: /, upstream: svc }
  - name: admin
    prefix: /admin
    upstream: svc
    plugins:
      - auth:
          methods:
            - api_key:
                keys:
                  - consumer: ops
                    sha256: a52782e3a2d4dd2f95f640b9abfb3b2a6b8e722c65f55be830f6e5f619f7f873
"#,
    )
    .await;
    for path in [
        "/admin/users",
        "/public/../admin/users",
        "/public/%2e%2e/admin/users",
        "/public/%2E%2E/admin/users",
        "//admin/users",
        "/./admin/users",
        "/ADMIN/../admin/users",
    ] {
        let attack = format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
        let got = exchange(gw.addr, attack.as_bytes(), QUIET).await;
        assert_eq!(got.only().status, 401, "{path}: {}", got.only().text());
    }
    // Spellings a service may split where the gateway does not (a Java
    // service reads `/admin;x=1/users` as `/admin/users`): refused before
    // the public proxy could forward them (reject_ambiguous_paths).
    for path in [
        "/admin;x=1/users",
        "/admin%3Bx=1/users",
        "/public%2F..%2Fadmin/users",
        "/public%2f..%2fadmin/users",
        "/public%5C..%5Cadmin/users",
        "/public\\..\\admin/users",
    ] {
        let attack = format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
        let got = exchange(gw.addr, attack.as_bytes(), QUIET).await;
        assert_eq!(got.only().status, 400, "{path}: {}", got.only().text());
        assert!(
            got.only().message().contains("reject_ambiguous_paths"),
            "{path}"
        );
    }
    let reached: Vec<String> = seen(&log).into_iter().map(|s| s.target).collect();
    assert!(
        reached
            .iter()
            .all(|t| !t.to_ascii_lowercase().contains("admin")),
        "an admin path reached the service unauthenticated: {reached:?}"
    );
    gw.stop().await;
}
