//! Server-streaming methods over REST: `GET /v1/users/{id}/orders:watch`
//! (the demo's WatchOrders) read as it streams, as SSE and as NDJSON;
//! failures before and during the stream, heartbeats, the stream limit, and
//! a client going away cancelling the upstream call.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::TestGateway;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use switchyard_demo::Service;

/// A response read as it arrives.
struct Streaming {
    status: u16,
    content_type: String,
    body: Incoming,
    buffered: String,
}

impl Streaming {
    async fn open(gw: &TestGateway, path: &str, accept: Option<&str>) -> Streaming {
        let mut req = Request::get(format!("http://{}{path}", gw.addr));
        if let Some(accept) = accept {
            req = req.header("accept", accept);
        }
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let res = client
            .request(req.body(Empty::new()).unwrap())
            .await
            .expect("the gateway answers");
        Streaming {
            status: res.status().as_u16(),
            content_type: res
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
            body: res.into_body(),
            buffered: String::new(),
        }
    }

    /// The text up to and including the next `separator`, waiting at most 5 s.
    async fn until(&mut self, separator: &str) -> Option<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(at) = self.buffered.find(separator) {
                let rest = self.buffered.split_off(at + separator.len());
                return Some(std::mem::replace(&mut self.buffered, rest));
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .expect("more arrives within 5 s");
            match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffered.push_str(std::str::from_utf8(&data).unwrap());
                    }
                }
                _ => return None,
            }
        }
    }

    /// The next SSE event (comments included), without its blank line.
    async fn event(&mut self) -> Option<String> {
        self.until("\n\n")
            .await
            .map(|e| e.trim_end_matches('\n').to_owned())
    }
}

/// The JSON of an SSE event's `data:` lines.
fn data(event: &str) -> Value {
    let json: String = event
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect::<Vec<_>>()
        .join("\n");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {event}"))
}

#[tokio::test]
async fn sse_sends_each_message_as_an_event_as_it_happens() {
    let gw = TestGateway::demo().await;
    let mut sse = Streaming::open(&gw, "/v1/users/1/orders:watch", Some("text/event-stream")).await;
    assert_eq!(sse.status, 200);
    assert_eq!(sse.content_type, "text/event-stream");
    let first = sse.event().await.expect("the snapshot's first order");
    assert!(first.starts_with("id: 1\n"), "{first}");
    assert_eq!(data(&first)["userId"], "1");

    // A new order for user 1 is pushed while the stream is open.
    let created = gw
        .post_json(
            "/v1/orders",
            r#"{"userId":"1","items":[{"sku":"B-2","qty":1}]}"#,
        )
        .await
        .json();
    let id = created["id"].as_str().expect("an order id").to_owned();
    let mut seen = false;
    for _ in 0..50 {
        let event = sse.event().await.expect("more events");
        if data(&event)["id"] == id.as_str() {
            seen = true;
            break;
        }
    }
    assert!(seen, "the created order was streamed");
    drop(sse);
    gw.stop().await;
}

#[tokio::test]
async fn ndjson_is_the_default_one_message_per_line() {
    let gw = TestGateway::demo().await;
    let mut lines = Streaming::open(&gw, "/v1/users/2/orders:watch", None).await;
    assert_eq!(lines.status, 200);
    assert_eq!(lines.content_type, "application/x-ndjson");
    let line = lines.until("\n").await.expect("a line");
    let order: Value = serde_json::from_str(line.trim_end()).expect("one JSON per line");
    assert_eq!(order["userId"], "2");
    drop(lines);
    gw.stop().await;
}

#[tokio::test]
async fn a_failure_before_the_stream_is_a_real_http_error() {
    let mut gw = TestGateway::demo().await;
    gw.demo.stop(Service::Orders).await;
    let reply = gw.get("/v1/users/1/orders:watch").await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.error().0, 14);
    gw.stop().await;
}

#[tokio::test]
async fn a_failure_during_the_stream_is_an_error_event_then_the_end() {
    let mut gw = TestGateway::demo().await;
    let mut sse = Streaming::open(&gw, "/v1/users/1/orders:watch", Some("text/event-stream")).await;
    sse.event().await.expect("a first event");
    // The orders service goes away: its watches end with UNAVAILABLE.
    gw.demo.stop(Service::Orders).await;
    let mut error = None;
    while let Some(event) = sse.event().await {
        if event.starts_with("event: error") {
            error = Some(event);
            break;
        }
    }
    let error = error.expect("an error event");
    assert_eq!(data(&error)["code"], 14, "{error}");
    assert!(
        sse.event().await.is_none(),
        "the stream ends after the error"
    );
    gw.stop().await;
}

#[tokio::test]
async fn idle_sse_streams_get_heartbeats() {
    let gw = TestGateway::demo_with("", "limits: { stream_heartbeat: 100ms }").await;
    // User 999 has no orders: nothing but heartbeats.
    let mut sse =
        Streaming::open(&gw, "/v1/users/999/orders:watch", Some("text/event-stream")).await;
    assert_eq!(sse.status, 200);
    assert_eq!(sse.event().await.as_deref(), Some(": heartbeat"));
    assert_eq!(sse.event().await.as_deref(), Some(": heartbeat"));
    drop(sse);
    gw.stop().await;
}

#[tokio::test]
async fn streams_beyond_the_limit_are_refused_and_a_closed_one_frees_its_slot() {
    let gw = TestGateway::demo_with("", "limits: { max_streams: 1 }").await;
    let open = r#"switchyard_streams_open{protocol="ndjson"}"#;
    let first = Streaming::open(&gw, "/v1/users/1/orders:watch", None).await;
    assert_eq!(first.status, 200);
    assert_eq!(gw.metric(open).await, Some(1.0));
    let second = gw.get("/v1/users/2/orders:watch").await;
    assert_eq!(second.status, 503, "{}", second.text());
    assert!(second.text().contains("max_streams"), "{}", second.text());

    // The client goes away: the upstream watch ends and the slot is free.
    drop(first);
    let mut waited = Duration::ZERO;
    while gw.demo.open_watches() > 0 || gw.metric(open).await != Some(0.0) {
        assert!(waited < Duration::from_secs(5), "the stream is still open");
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    let third = Streaming::open(&gw, "/v1/users/3/orders:watch", None).await;
    assert_eq!(third.status, 200);
    drop(third);
    gw.stop().await;
}
