//! Subscriptions do not buffer: a client that stops reading holds the
//! upstream's server stream back through HTTP/2 flow control, and leaving
//! cancels the upstream stream (RST_STREAM). The upstream is a raw HTTP/2
//! server that sends `WatchThings` messages as fast as its window allows
//! and counts them.

mod common;

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::TestGateway;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Size of the `id` of each streamed `Thing`.
const ID_BYTES: usize = 16 * 1024;

#[derive(Default)]
struct Counts {
    /// Messages handed to HTTP/2 (within the flow-control window).
    sent: AtomicUsize,
    /// Streams that ended because the peer reset them.
    reset: AtomicUsize,
}

/// One gRPC frame holding a `Thing` with a large `id`.
fn thing_frame() -> Bytes {
    let mut message = BytesMut::new();
    message.put_u8(0x0a); // field 1, length-delimited
    let mut len = ID_BYTES;
    while len >= 0x80 {
        message.put_u8((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    message.put_u8(len as u8);
    message.put_bytes(b'x', ID_BYTES);
    let mut frame = BytesMut::new();
    frame.put_u8(0);
    frame.put_u32(message.len() as u32);
    frame.extend_from_slice(&message);
    frame.freeze()
}

/// Serves every stream with an endless flow of [`thing_frame`]s, sent only
/// as the window allows.
async fn flooding_upstream() -> (SocketAddr, Arc<Counts>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Arc::new(Counts::default());
    let shared = counts.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let counts = shared.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((_request, mut respond))) = conn.accept().await {
                    let counts = counts.clone();
                    tokio::spawn(async move {
                        let head = http::Response::builder()
                            .header("content-type", "application/grpc")
                            .body(())
                            .unwrap();
                        let Ok(mut send) = respond.send_response(head, false) else {
                            return;
                        };
                        let frame = thing_frame();
                        let mut offset = 0;
                        loop {
                            send.reserve_capacity(frame.len() - offset);
                            match poll_fn(|cx| send.poll_capacity(cx)).await {
                                Some(Ok(n)) if n > 0 => {
                                    let n = n.min(frame.len() - offset);
                                    if send
                                        .send_data(frame.slice(offset..offset + n), false)
                                        .is_err()
                                    {
                                        counts.reset.fetch_add(1, Ordering::SeqCst);
                                        return;
                                    }
                                    offset += n;
                                    if offset == frame.len() {
                                        offset = 0;
                                        counts.sent.fetch_add(1, Ordering::SeqCst);
                                    }
                                }
                                Some(Ok(_)) => {}
                                Some(Err(_)) | None => {
                                    counts.reset.fetch_add(1, Ordering::SeqCst);
                                    return;
                                }
                            }
                        }
                    });
                }
            });
        }
    });
    (addr, counts)
}

#[tokio::test]
async fn a_client_that_stops_reading_holds_the_upstream_stream_back_and_leaving_cancels_it() {
    let (addr, counts) = flooding_upstream().await;
    let yaml = format!(
        r#"
listeners: [{{ address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
protos: {{ sources: ["{proto}"] }}
upstreams: {{ up: {{ endpoints: ["http://{addr}"] }} }}
routes: [{{ service: switchyard.test.graphql.MappingService, upstream: up }}]
graphql: {{}}
"#,
        proto = common::repo_root()
            .join("gateway/tests/protos/graphql/graphql_mapping.proto")
            .display()
    );
    let gw = TestGateway::start_yaml(common::spawn_demo().await, &yaml).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let query = r#"{"query": "subscription { watchThings(id: \"x\") { id } }"}"#;
    let req = http::Request::post(format!("http://{}/graphql", gw.addr))
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .body(Full::new(Bytes::from_static(query.as_bytes())))
        .unwrap();
    let res = client.request(req).await.expect("gateway answers");
    assert_eq!(res.status(), http::StatusCode::OK);
    let mut body = res.into_body();
    // Read a little: the stream flows.
    let mut read = 0;
    while read < 4 * ID_BYTES {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("events flow")
            .expect("open")
            .expect("frame");
        read += frame.data_ref().map_or(0, Bytes::len);
    }
    // Stop reading: once the buffers on the way are full, the upstream
    // can send nothing more.
    let mut last = counts.sent.load(Ordering::SeqCst);
    let mut stable_for = 0;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = counts.sent.load(Ordering::SeqCst);
        if now == last {
            stable_for += 1;
            if stable_for == 10 {
                break;
            }
        } else {
            stable_for = 0;
            last = now;
        }
    }
    assert_eq!(
        stable_for, 10,
        "the upstream kept sending ({last} messages) to a client that reads nothing"
    );
    eprintln!("in flight when the upstream stalled: {last} messages");
    // What is in flight is bounded by windows and socket buffers (a few
    // MiB), not by how long the upstream has been sending.
    assert!(
        last * ID_BYTES < 64 << 20,
        "{last} messages of {ID_BYTES} bytes in flight"
    );
    assert_eq!(counts.reset.load(Ordering::SeqCst), 0);
    // Leaving cancels the upstream stream.
    drop(body);
    for _ in 0..100 {
        if counts.reset.load(Ordering::SeqCst) == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the upstream stream was not reset after the client left");
}
