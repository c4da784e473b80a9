//! Against the real Redis on 127.0.0.1:6379 (scripts/test.sh starts one),
//! each test under its own key prefix.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use http_body_util::BodyExt;
use tower::{Service, ServiceExt};

use super::*;
use crate::rate_limit::{BackendConfig, KeyPart, Period, RateLimit, RateLimitConfig};
use crate::registry::Plugin;
use crate::stage::{ClientAddr, HttpService, Request, Response, empty_body};

const URL: &str = "redis://127.0.0.1:6379";
/// Nothing listens there.
const CLOSED: &str = "redis://127.0.0.1:1";

/// A key prefix no other test (or earlier run) uses.
fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "switchyard-test:{}:{nanos}:{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Panics with what to do when the test Redis is not running (a fail-open
/// limiter would otherwise pass some tests without Redis).
async fn require_redis() {
    let reachable = async {
        let client = ::redis::Client::open(URL).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let pong: String = ::redis::cmd("PING").query_async(&mut conn).await.ok()?;
        Some(pong)
    };
    let pong = tokio::time::timeout(Duration::from_secs(2), reachable).await;
    assert!(
        matches!(pong, Ok(Some(ref p)) if p == "PONG"),
        "Redis is not reachable at {URL}: run scripts/test.sh (it starts one), or \
         `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no`"
    );
}

fn redis_config(url: &str, on_error: OnError) -> RedisConfig {
    RedisConfig {
        url: url.to_owned(),
        key_prefix: unique_prefix(),
        timeout: None,
        on_error,
    }
}

fn config(rate: &str, redis: RedisConfig) -> RateLimitConfig {
    serde_json::from_value::<RateLimitConfig>(serde_json::json!({ "rate": rate, "key": [] }))
        .map(|c| RateLimitConfig {
            backend: BackendConfig::Redis(redis),
            ..c
        })
        .unwrap()
}

async fn service(config: RateLimitConfig) -> HttpService {
    let handler = HttpService::new(tower::service_fn(|_req: Request| async move {
        Ok::<_, Infallible>(Response::new(empty_body()))
    }));
    RateLimit::new(config).await.unwrap().wrap(handler)
}

fn get(peer: &str) -> Request {
    let addr: SocketAddr = peer.parse().unwrap();
    let mut request = http::Request::builder()
        .uri("/v1/things")
        .body(empty_body())
        .unwrap();
    request.extensions_mut().insert(ClientAddr(addr));
    request
}

async fn respond(svc: &HttpService, request: Request) -> Response {
    svc.clone().oneshot(request).await.unwrap()
}

fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// Calls `svc` with its concrete boxed future (spawnable).
async fn call(mut svc: HttpService, request: Request) -> StatusCode {
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    svc.call(request).await.unwrap().status()
}

fn rate(count: u32, period: Period) -> Rate {
    Rate {
        count: NonZeroU32::new(count).unwrap(),
        period,
    }
}

// --- tests ---

#[tokio::test]
async fn lets_exactly_the_burst_through_with_the_local_backends_headers() {
    require_redis().await;
    let svc = service(config("5/min", redis_config(URL, OnError::FailOpen))).await;
    for remaining in (0..5).rev() {
        let res = respond(&svc, get("192.0.2.1:1")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(header(&res, "ratelimit-policy"), "\"default\";q=5;w=60");
        let used = 5 - remaining;
        assert_eq!(
            header(&res, "ratelimit"),
            format!("\"default\";r={remaining};t={}", 12 * used)
        );
    }
    let res = respond(&svc, get("192.0.2.1:1")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = header(&res, "retry-after").parse().unwrap();
    assert!((11..=12).contains(&retry), "retry-after {retry}");
    assert_eq!(
        header(&res, "ratelimit"),
        format!("\"default\";r=0;t={retry}")
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["code"], 8);
}

#[tokio::test]
async fn keys_are_counted_apart() {
    require_redis().await;
    let svc = service(RateLimitConfig {
        key: vec![KeyPart::ClientIp],
        ..config("1/min", redis_config(URL, OnError::FailOpen))
    })
    .await;
    for peer in ["192.0.2.1:1", "192.0.2.2:1", "[2001:db8::1]:1"] {
        assert_eq!(respond(&svc, get(peer)).await.status(), StatusCode::OK);
        assert_eq!(
            respond(&svc, get(peer)).await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn is_exact_under_concurrency() {
    require_redis().await;
    let svc = service(RateLimitConfig {
        burst: Some(50),
        ..config("50/min", redis_config(URL, OnError::FailOpen))
    })
    .await;
    let calls: Vec<_> = (0..200)
        .map(|_| tokio::spawn(call(svc.clone(), get("192.0.2.1:1"))))
        .collect();
    let mut ok = 0;
    for c in calls {
        match c.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 50);
}

#[tokio::test]
async fn two_instances_share_one_budget() {
    require_redis().await;
    let shared = redis_config(URL, OnError::FailOpen);
    let a = service(config("5/min", shared.clone())).await;
    let b = service(config("5/min", shared)).await;
    let mut ok = 0;
    for i in 0..12 {
        let svc = if i % 2 == 0 { &a } else { &b };
        if respond(svc, get("192.0.2.1:1")).await.status() == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 5);
}

#[tokio::test]
async fn policy_names_keep_limits_apart_under_one_prefix() {
    require_redis().await;
    let shared = redis_config(URL, OnError::FailOpen);
    let a = service(RateLimitConfig {
        name: "a".into(),
        ..config("1/min", shared.clone())
    })
    .await;
    let b = service(RateLimitConfig {
        name: "b".into(),
        ..config("1/min", shared)
    })
    .await;
    assert_eq!(
        respond(&a, get("192.0.2.1:1")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        respond(&b, get("192.0.2.1:1")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn state_expires_once_the_burst_is_whole_again() {
    require_redis().await;
    let redis = redis_config(URL, OnError::FailOpen);
    let prefix = redis.key_prefix.clone();
    let limiter = RedisLimiter::new(
        &redis,
        "default",
        rate(10, Period::Second),
        NonZeroU32::new(2).unwrap(),
        10,
    )
    .unwrap();
    let key = Key::from_static(b"k");
    assert!(matches!(
        limiter.check(&key).await,
        Some(Decision::Allowed { remaining: 1, .. })
    ));
    let client = ::redis::Client::open(URL).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut name = format!("{prefix}default:").into_bytes();
    name.extend_from_slice(key.as_bytes());
    let ttl: i64 = ::redis::cmd("PTTL")
        .arg(&name)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((1..=100).contains(&ttl), "pttl {ttl}");
    assert_eq!(limiter.errors(), 0);
}

#[tokio::test]
async fn the_script_is_loaded_again_after_redis_forgets_it() {
    require_redis().await;
    let limiter = RedisLimiter::new(
        &redis_config(URL, OnError::FailClosed),
        "default",
        rate(3, Period::Minute),
        NonZeroU32::new(3).unwrap(),
        10,
    )
    .unwrap();
    let key = Key::from_static(b"k");
    assert!(matches!(
        limiter.check(&key).await,
        Some(Decision::Allowed { remaining: 2, .. })
    ));
    let client = ::redis::Client::open(URL).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let () = ::redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(matches!(
        limiter.check(&key).await,
        Some(Decision::Allowed { remaining: 1, .. })
    ));
    assert_eq!(limiter.errors(), 0);
}

#[tokio::test]
async fn unreachable_redis_fails_open_to_a_local_limit_of_the_same_quota() {
    let before = redis_fallbacks();
    let svc = service(config("3/min", redis_config(CLOSED, OnError::FailOpen))).await;
    for _ in 0..3 {
        let res = respond(&svc, get("192.0.2.1:1")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers().contains_key("ratelimit"));
    }
    assert_eq!(
        respond(&svc, get("192.0.2.1:1")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Other tests may fall back at the same time: at least ours counted.
    assert!(redis_fallbacks() - before >= 4);
}

#[tokio::test]
async fn the_fallback_counter_counts_each_local_decision() {
    let limiter = RedisLimiter::new(
        &redis_config(CLOSED, OnError::FailOpen),
        "default",
        rate(2, Period::Minute),
        NonZeroU32::new(2).unwrap(),
        10,
    )
    .unwrap();
    let key = Key::from_static(b"k");
    let mut allowed = 0;
    for _ in 0..5 {
        if let Some(Decision::Allowed { .. }) = limiter.check(&key).await {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 2);
    assert_eq!(limiter.fallbacks(), 5);
    assert_eq!(limiter.errors(), 5);
}

#[tokio::test]
async fn unreachable_redis_fails_closed_with_503() {
    let errors = redis_errors();
    let svc = service(config("3/min", redis_config(CLOSED, OnError::FailClosed))).await;
    for _ in 0..2 {
        let res = respond(&svc, get("192.0.2.1:1")).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["code"], 14);
        assert_eq!(json["message"], "rate limiter unavailable");
    }
    assert!(redis_errors() - errors >= 2);
}

#[tokio::test]
async fn a_redis_that_does_not_answer_in_time_counts_as_unreachable() {
    // A listener that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            conns.push(conn);
        }
    });
    let svc = service(config(
        "3/min",
        RedisConfig {
            timeout: Some("300ms".into()),
            ..redis_config(&format!("redis://{addr}"), OnError::FailClosed)
        },
    ))
    .await;
    let started = std::time::Instant::now();
    let res = respond(&svc, get("192.0.2.1:1")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let waited = started.elapsed();
    assert!(
        (Duration::from_millis(250)..Duration::from_secs(2)).contains(&waited),
        "{waited:?}"
    );
    // Then Redis is left alone for a while: no waiting at all.
    let started = std::time::Instant::now();
    let res = respond(&svc, get("192.0.2.1:1")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_millis(100));
    held.abort();
}

#[tokio::test]
async fn invalid_redis_configs_are_refused() {
    let error = |config: RateLimitConfig| async move {
        match RateLimit::new(config).await {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    };
    let bad_url = error(config("5/min", redis_config("http://x", OnError::FailOpen))).await;
    assert!(bad_url.contains("url"), "{bad_url}");
    let bad_timeout = error(config(
        "5/min",
        RedisConfig {
            timeout: Some("soon".into()),
            ..redis_config(URL, OnError::FailOpen)
        },
    ))
    .await;
    assert!(bad_timeout.contains("timeout"), "{bad_timeout}");
    let too_fast = error(config("2000000/s", redis_config(URL, OnError::FailOpen))).await;
    assert!(too_fast.contains("1000000/s"), "{too_fast}");
}

#[test]
fn the_backend_deserializes_from_the_documented_shape() {
    let config: RateLimitConfig = serde_json::from_value(serde_json::json!({
        "rate": "5/min",
        "backend": {"redis": {
            "url": "redis://127.0.0.1:6379",
            "key_prefix": "app:",
            "timeout": "20ms",
            "on_error": "fail_closed",
        }},
    }))
    .unwrap();
    assert_eq!(
        config.backend,
        BackendConfig::Redis(RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "app:".into(),
            timeout: Some("20ms".into()),
            on_error: OnError::FailClosed,
        })
    );
    let minimal: RateLimitConfig = serde_json::from_value(serde_json::json!({
        "rate": "5/min",
        "backend": {"redis": {"url": "redis://127.0.0.1:6379"}},
    }))
    .unwrap();
    let BackendConfig::Redis(redis) = minimal.backend else {
        panic!("not redis");
    };
    assert_eq!(redis.key_prefix, "switchyard:rl:");
    assert_eq!(redis.on_error, OnError::FailOpen);
    for bad in [
        serde_json::json!({"rate": "5/min", "backend": {"redis": {}}}),
        serde_json::json!({"rate": "5/min", "backend": {"redis": {"url": "redis://x", "on_error": "open"}}}),
        serde_json::json!({"rate": "5/min", "backend": {"redis": {"url": "redis://x", "prefix": "a"}}}),
    ] {
        assert!(
            serde_json::from_value::<RateLimitConfig>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_consumers_own_quota_is_shared_through_redis_apart_from_the_routes() {
    require_redis().await;
    let shared = redis_config(URL, OnError::FailOpen);
    let mut consumers = std::collections::BTreeMap::new();
    consumers.insert(
        "gold".to_owned(),
        crate::rate_limit::ConsumerQuota {
            rate: "2/min".into(),
            burst: None,
        },
    );
    let limit = || RateLimitConfig {
        key: vec![KeyPart::ClientIp],
        consumers: consumers.clone(),
        ..config("1/min", shared.clone())
    };
    // Two instances (as two gateways) on one Redis.
    let (a, b) = (service(limit()).await, service(limit()).await);
    let gold = || {
        let mut request = get("192.0.2.1:1");
        request
            .extensions_mut()
            .insert(crate::stage::Consumer("gold".into()));
        request
    };
    assert_eq!(respond(&a, gold()).await.status(), StatusCode::OK);
    assert_eq!(respond(&b, gold()).await.status(), StatusCode::OK);
    assert_eq!(
        respond(&a, gold()).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // The same client IP without the consumer: the route's quota, untouched.
    assert_eq!(
        respond(&b, get("192.0.2.1:1")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        respond(&a, get("192.0.2.1:1")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}
