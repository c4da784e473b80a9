//! The plugin in front of a scripted handler that counts its calls: the
//! request flow against both stores (`local` in memory; `redis` against the
//! real Redis on 127.0.0.1:6379, which scripts/test.sh starts, each test
//! under its own key prefix), config validation, and the record encoding.

mod config;
mod flows;
mod local;
mod record;
mod redis;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::registry::BuildContext;
use crate::stage::{BoxError, Consumer, Request, Response, box_body, full_body};

pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A key prefix no other test (or earlier run) uses.
pub fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "switchyard-test:idem:{}:{nanos}:{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Panics with what to do when the test Redis is not running.
pub async fn require_redis() {
    let reachable = async {
        let client = ::redis::Client::open(REDIS_URL).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let pong: String = ::redis::cmd("PING").query_async(&mut conn).await.ok()?;
        Some(pong)
    };
    let pong = tokio::time::timeout(Duration::from_secs(2), reachable).await;
    assert!(
        matches!(pong, Ok(Some(ref p)) if p == "PONG"),
        "Redis is not reachable at {REDIS_URL}: run scripts/test.sh (it starts one), or \
         `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no`"
    );
}

/// A config from JSON (as the YAML would read), with `store` merged in.
pub fn config(store: serde_json::Value, extra: serde_json::Value) -> IdempotencyConfig {
    let mut json = serde_json::json!({ "store": store });
    if let serde_json::Value::Object(extra) = extra {
        json.as_object_mut().unwrap().extend(extra);
    }
    serde_json::from_value(json).unwrap()
}

pub fn local_store() -> serde_json::Value {
    serde_json::json!({"local": {}})
}

/// A Redis store under a fresh prefix (returned for inspecting keys).
pub fn redis_store() -> (serde_json::Value, String) {
    let prefix = unique_prefix();
    (
        serde_json::json!({"redis": {"url": REDIS_URL, "key_prefix": prefix}}),
        prefix,
    )
}

/// The scripted upstream: answers `x-status` (default 201) with
/// `{"call": n, "body": "<request body>"}` and `grpc-metadata-trace: n`,
/// after `x-delay-ms`; `x-size: N` answers N bytes instead; `x-stream`
/// answers a body of unknown length.
#[derive(Clone, Default)]
pub struct Upstream {
    pub calls: Arc<AtomicUsize>,
}

impl Upstream {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn service(&self) -> HttpService {
        let calls = self.calls.clone();
        HttpService::new(tower::service_fn(move |req: Request| {
            let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok::<_, Infallible>(answer(call, req).await) }
        }))
    }
}

async fn answer(call: usize, req: Request) -> Response {
    let headers = req.headers().clone();
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    let status = header("x-status").map_or(201, |s| s.parse().unwrap());
    let delay = header("x-delay-ms").map_or(0, |s| s.parse().unwrap());
    let size: Option<usize> = header("x-size").map(|s| s.parse().unwrap());
    let stream = header("x-stream").is_some();
    tokio::time::sleep(Duration::from_millis(delay)).await;
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::json!({"call": call, "body": String::from_utf8_lossy(&body)});
    let bytes = match size {
        Some(n) => Bytes::from(vec![b'x'; n]),
        None => Bytes::from(json.to_string()),
    };
    let body = if stream {
        box_body(Unsized(Some(bytes)))
    } else {
        full_body(bytes)
    };
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("grpc-metadata-trace", call.to_string())
        .header("x-internal", "not stored")
        .body(body)
        .unwrap()
}

/// A body of unknown length (a stream), one frame.
struct Unsized(Option<Bytes>);

impl http_body::Body for Unsized {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.get_mut().0.take().map(|b| Ok(Frame::data(b))))
    }
}

/// The plugin for route `orders` over a fresh [`Upstream`].
pub async fn plugin(config: IdempotencyConfig) -> (HttpService, Upstream) {
    let upstream = Upstream::default();
    let ctx = BuildContext {
        route: "orders".into(),
        ..Default::default()
    };
    let plugin = Idempotency::build(config, &ctx).await.unwrap();
    (plugin.wrap(upstream.service()), upstream)
}

/// A request builder with the common parts.
pub struct Send<'a> {
    pub method: Method,
    pub path: &'a str,
    pub key: Option<&'a str>,
    pub body: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub consumer: Option<&'a str>,
}

/// `POST /v1/orders` with `key` and `body`.
pub fn post<'a>(key: Option<&'a str>, body: &'a str) -> Send<'a> {
    Send {
        method: Method::POST,
        path: "/v1/orders",
        key,
        body,
        headers: Vec::new(),
        consumer: None,
    }
}

impl<'a> Send<'a> {
    pub fn header(mut self, name: &'a str, value: impl ToString) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    pub fn request(&self) -> Request {
        let mut builder = http::Request::builder()
            .method(self.method.clone())
            .uri(self.path);
        if let Some(key) = self.key {
            builder = builder.header("idempotency-key", key);
        }
        for (name, value) in &self.headers {
            builder = builder.header(*name, value);
        }
        let mut request = builder.body(full_body(self.body.to_owned())).unwrap();
        if let Some(consumer) = self.consumer {
            request
                .extensions_mut()
                .insert(Consumer(consumer.to_owned()));
        }
        request
    }

    pub async fn to(&self, svc: &HttpService) -> Reply {
        Reply::of(svc.clone().oneshot(self.request()).await.unwrap()).await
    }
}

/// A response, read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub async fn of(response: Response) -> Reply {
        let (parts, body) = response.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn replayed(&self) -> bool {
        self.headers
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true")
    }

    /// The error body's (code, message, ErrorInfo reason).
    pub fn error(&self) -> (i64, String, String) {
        let json = self.json();
        (
            json["code"].as_i64().unwrap(),
            json["message"].as_str().unwrap().to_owned(),
            json["details"][0]["reason"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        )
    }
}
