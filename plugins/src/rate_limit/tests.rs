use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::stage::{ClientAddr, Consumer, empty_body};

// --- helpers ---

fn config(rate: &str) -> RateLimitConfig {
    RateLimitConfig {
        rate: rate.to_owned(),
        burst: None,
        key: default_key(),
        trusted_proxies: Vec::new(),
        forwarded_header: ForwardedHeader::XForwardedFor,
        name: default_name(),
        max_keys: default_max_keys(),
        backend: BackendConfig::Local,
    }
}

/// A handler answering 200 with the request's key-relevant bits echoed.
fn echo_handler() -> HttpService {
    HttpService::new(tower::service_fn(|_req: Request| async move {
        Ok::<_, Infallible>(Response::new(empty_body()))
    }))
}

async fn service(config: RateLimitConfig) -> HttpService {
    RateLimit::new(config).await.unwrap().wrap(echo_handler())
}

fn request_from(peer: &str) -> http::request::Builder {
    let addr: SocketAddr = peer.parse().unwrap();
    let mut builder = http::Request::builder().uri("/v1/things");
    builder.extensions_mut().unwrap().insert(ClientAddr(addr));
    builder
}

fn get(peer: &str) -> Request {
    request_from(peer).body(empty_body()).unwrap()
}

/// Calls `svc` with its concrete boxed future (`oneshot`'s generic future
/// trips the compiler's `Send` inference inside `tokio::spawn`).
async fn call(mut svc: HttpService, request: Request) -> StatusCode {
    use tower::Service;
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    svc.call(request).await.unwrap().status()
}

async fn status(svc: &HttpService, request: Request) -> StatusCode {
    svc.clone().oneshot(request).await.unwrap().status()
}

fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

async fn plugin_error(config: RateLimitConfig) -> String {
    match RateLimit::new(config).await {
        Ok(_) => panic!("config accepted"),
        Err(e) => e.to_string(),
    }
}

fn key_of(builder: &KeyBuilder, request: &Request) -> Key {
    builder.key(request)
}

fn builder(parts: &[KeyPart], trusted: &[&str], header: ForwardedHeader) -> KeyBuilder {
    let trusted = trusted.iter().map(|c| Cidr::parse(c).unwrap()).collect();
    KeyBuilder::new(parts, ClientIpResolver::new(trusted, header)).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            http::HeaderName::try_from(*name).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn fake_limiter(
    rate: &str,
    burst: u32,
    max_keys: usize,
) -> (LocalLimiter<FakeRelativeClock>, FakeRelativeClock) {
    let rate = Rate::parse(rate).unwrap();
    let clock = FakeRelativeClock::default();
    let quota = local::quota(rate.count, rate.period, NonZeroU32::new(burst).unwrap());
    (
        LocalLimiter::with_clock(quota, max_keys, clock.clone()),
        clock,
    )
}

fn allowed(decision: Decision) -> bool {
    matches!(decision, Decision::Allowed { .. })
}

// --- the plugin end to end ---

#[tokio::test]
async fn lets_exactly_the_burst_through_then_answers_429_with_the_headers() {
    let svc = service(RateLimitConfig {
        burst: Some(3),
        ..config("6/min") // one request every 10 s
    })
    .await;

    for remaining in [2, 1, 0] {
        let res = svc.clone().oneshot(get("192.0.2.1:5000")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(header(&res, "ratelimit-policy"), "\"default\";q=6;w=60");
        let used = 3 - remaining;
        assert_eq!(
            header(&res, "ratelimit"),
            format!("\"default\";r={remaining};t={}", used * 10)
        );
    }

    let res = svc.clone().oneshot(get("192.0.2.1:5000")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&res, "retry-after"), "10");
    assert_eq!(header(&res, "ratelimit"), "\"default\";r=0;t=10");
    assert_eq!(header(&res, "ratelimit-policy"), "\"default\";q=6;w=60");
    assert_eq!(header(&res, "content-type"), "application/json");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "code": 8,
            "message": "rate limit exceeded",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "10s"}],
        })
    );
}

#[tokio::test]
async fn the_default_burst_is_the_rates_count() {
    let svc = service(config("5/h")).await;
    for _ in 0..5 {
        assert_eq!(status(&svc, get("192.0.2.1:1")).await, StatusCode::OK);
    }
    assert_eq!(
        status(&svc, get("192.0.2.1:1")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn is_exact_under_concurrency() {
    let svc = service(RateLimitConfig {
        burst: Some(50),
        ..config("50/h")
    })
    .await;
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(call(svc, get("192.0.2.7:4000")))
        })
        .collect();
    let mut ok = 0;
    let mut limited = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, limited), (50, 150));
}

#[test]
fn is_exact_across_threads() {
    let (limiter, _clock) = fake_limiter("1/h", 1000, 100);
    let limiter = std::sync::Arc::new(limiter);
    let key = Key::from_static(b"shared");
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let limiter = limiter.clone();
            let key = key.clone();
            std::thread::spawn(move || (0..500).filter(|_| allowed(limiter.check(&key))).count())
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(total, 1000);
}

#[tokio::test]
async fn keys_are_isolated() {
    let svc = service(RateLimitConfig {
        burst: Some(1),
        ..config("1/h")
    })
    .await;
    assert_eq!(status(&svc, get("192.0.2.1:1")).await, StatusCode::OK);
    assert_eq!(
        status(&svc, get("192.0.2.1:2")).await,
        StatusCode::TOO_MANY_REQUESTS,
        "same IP, other port"
    );
    assert_eq!(status(&svc, get("192.0.2.2:1")).await, StatusCode::OK);
    assert_eq!(status(&svc, get("[2001:db8::1]:1")).await, StatusCode::OK);
}

#[tokio::test]
async fn counts_per_consumer_and_falls_back_to_the_client_ip() {
    let svc = service(RateLimitConfig {
        burst: Some(1),
        key: vec![KeyPart::Consumer],
        ..config("1/h")
    })
    .await;
    let as_consumer = |name: &str, peer: &str| {
        let mut req = get(peer);
        req.extensions_mut().insert(Consumer(name.to_owned()));
        req
    };
    assert_eq!(
        status(&svc, as_consumer("alice", "192.0.2.1:1")).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&svc, as_consumer("alice", "192.0.2.2:1")).await,
        StatusCode::TOO_MANY_REQUESTS,
        "alice from another IP is still alice"
    );
    assert_eq!(
        status(&svc, as_consumer("bob", "192.0.2.1:1")).await,
        StatusCode::OK
    );
    // No consumer: counted by IP, apart from any consumer.
    assert_eq!(status(&svc, get("192.0.2.1:1")).await, StatusCode::OK);
    assert_eq!(
        status(&svc, get("192.0.2.1:1")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A consumer named like an IP is not that IP.
    assert_eq!(
        status(&svc, as_consumer("192.0.2.9", "192.0.2.9:1")).await,
        StatusCode::OK
    );
    assert_eq!(status(&svc, get("192.0.2.9:1")).await, StatusCode::OK);
}

#[tokio::test]
async fn counts_per_header_value() {
    let svc = service(RateLimitConfig {
        burst: Some(1),
        key: vec![KeyPart::Header("X-Tenant".into())],
        ..config("1/h")
    })
    .await;
    let tenant = |t: &str, peer: &str| {
        request_from(peer)
            .header("x-tenant", t)
            .body(empty_body())
            .unwrap()
    };
    assert_eq!(
        status(&svc, tenant("acme", "192.0.2.1:1")).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&svc, tenant("acme", "192.0.2.2:1")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        status(&svc, tenant("globex", "192.0.2.1:1")).await,
        StatusCode::OK
    );
    // Without the header: by client IP.
    assert_eq!(status(&svc, get("192.0.2.3:1")).await, StatusCode::OK);
    assert_eq!(
        status(&svc, get("192.0.2.3:1")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn combined_keys_need_every_part_to_match() {
    let svc = service(RateLimitConfig {
        burst: Some(1),
        key: vec![KeyPart::ClientIp, KeyPart::Header("x-tenant".into())],
        ..config("1/h")
    })
    .await;
    let req = |t: &str, peer: &str| {
        request_from(peer)
            .header("x-tenant", t)
            .body(empty_body())
            .unwrap()
    };
    assert_eq!(status(&svc, req("a", "192.0.2.1:1")).await, StatusCode::OK);
    assert_eq!(status(&svc, req("a", "192.0.2.2:1")).await, StatusCode::OK);
    assert_eq!(status(&svc, req("b", "192.0.2.1:1")).await, StatusCode::OK);
    assert_eq!(
        status(&svc, req("a", "192.0.2.1:1")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn an_empty_key_is_one_bucket_for_the_route() {
    let svc = service(RateLimitConfig {
        burst: Some(2),
        key: Vec::new(),
        ..config("1/h")
    })
    .await;
    assert_eq!(status(&svc, get("192.0.2.1:1")).await, StatusCode::OK);
    assert_eq!(status(&svc, get("198.51.100.1:1")).await, StatusCode::OK);
    assert_eq!(
        status(&svc, get("203.0.113.1:1")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let svc = service(RateLimitConfig {
        burst: Some(1),
        trusted_proxies: vec!["10.0.0.0/8".into()],
        ..config("1/h")
    })
    .await;
    let spoofed = |xff: &str| {
        request_from("203.0.113.5:1")
            .header("x-forwarded-for", xff)
            .body(empty_body())
            .unwrap()
    };
    assert_eq!(status(&svc, spoofed("1.1.1.1")).await, StatusCode::OK);
    assert_eq!(
        status(&svc, spoofed("2.2.2.2")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        status(&svc, spoofed("10.0.0.1, 3.3.3.3")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() {
    let svc = service(RateLimitConfig {
        burst: Some(1),
        trusted_proxies: vec!["10.0.0.0/8".into()],
        ..config("1/h")
    })
    .await;
    let via_proxy = |xff: &str| {
        request_from("10.0.0.9:1")
            .header("x-forwarded-for", xff)
            .body(empty_body())
            .unwrap()
    };
    assert_eq!(
        status(&svc, via_proxy("1.1.1.1, 10.0.0.5")).await,
        StatusCode::OK
    );
    // The same client through the other proxy, with a spoofed left part.
    assert_eq!(
        status(&svc, via_proxy("6.6.6.6, 1.1.1.1")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(status(&svc, via_proxy("1.1.1.2")).await, StatusCode::OK);
}

// --- client IP resolution ---

#[test]
fn client_ip_resolution() {
    let xff = ClientIpResolver::new(
        vec![
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("2001:db8:ffff::/48").unwrap(),
        ],
        ForwardedHeader::XForwardedFor,
    );
    // (peer, headers, client)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        // Untrusted peer: the peer, whatever the headers.
        (
            "203.0.113.5",
            &[("x-forwarded-for", "1.1.1.1")],
            "203.0.113.5",
        ),
        // Trusted peer, right-most untrusted hop.
        (
            "10.0.0.9",
            &[("x-forwarded-for", "1.1.1.1, 10.0.0.5")],
            "1.1.1.1",
        ),
        (
            "10.0.0.9",
            &[("x-forwarded-for", "9.9.9.9, 1.1.1.1, 10.0.0.5")],
            "1.1.1.1",
        ),
        // Several header lines are one list.
        (
            "10.0.0.9",
            &[
                ("x-forwarded-for", "1.1.1.1"),
                ("x-forwarded-for", "10.0.0.5"),
            ],
            "1.1.1.1",
        ),
        (
            "10.0.0.9",
            &[
                ("x-forwarded-for", "9.9.9.9"),
                ("x-forwarded-for", "1.1.1.1, 10.1.1.1"),
            ],
            "1.1.1.1",
        ),
        // Ports, brackets, spaces, empty members.
        (
            "10.0.0.9",
            &[("x-forwarded-for", "1.1.1.1:5555 ,  ,")],
            "1.1.1.1",
        ),
        (
            "10.0.0.9",
            &[("x-forwarded-for", "[2001:db8::1]:80")],
            "2001:db8::1",
        ),
        (
            "10.0.0.9",
            &[("x-forwarded-for", "2001:db8::1")],
            "2001:db8::1",
        ),
        // Every hop trusted: the left-most.
        (
            "10.0.0.9",
            &[("x-forwarded-for", "10.1.2.3, 10.0.0.5")],
            "10.1.2.3",
        ),
        // No header: the peer.
        ("10.0.0.9", &[], "10.0.0.9"),
        // A hop that is not an address: the last trusted address seen.
        (
            "10.0.0.9",
            &[("x-forwarded-for", "1.1.1.1, unknown, 10.0.0.5")],
            "10.0.0.5",
        ),
        ("10.0.0.9", &[("x-forwarded-for", "garbage")], "10.0.0.9"),
        // IPv4-mapped peers and hops are IPv4.
        (
            "::ffff:10.0.0.9",
            &[("x-forwarded-for", "::ffff:1.1.1.1")],
            "1.1.1.1",
        ),
        ("::ffff:203.0.113.5", &[], "203.0.113.5"),
        // IPv6 trusted proxy.
        (
            "2001:db8:ffff::1",
            &[("x-forwarded-for", "2001:db8::7")],
            "2001:db8::7",
        ),
        // The Forwarded header is not the configured one: ignored.
        ("10.0.0.9", &[("forwarded", "for=1.1.1.1")], "10.0.0.9"),
    ];
    for (peer, hdrs, expected) in cases {
        assert_eq!(
            xff.resolve(ip(peer), &headers(hdrs)),
            ip(expected),
            "peer {peer}, headers {hdrs:?}"
        );
    }
}

#[test]
fn client_ip_from_the_forwarded_header() {
    let fwd = ClientIpResolver::new(
        vec![Cidr::parse("10.0.0.0/8").unwrap()],
        ForwardedHeader::Forwarded,
    );
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("forwarded", r#"for="[2001:db8::1]:4711""#)],
            "2001:db8::1",
        ),
        (
            &[("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")],
            "192.0.2.60",
        ),
        (
            &[("forwarded", r#"For="192.0.2.43:47011", for=10.0.0.5"#)],
            "192.0.2.43",
        ),
        (
            &[
                ("forwarded", "for=9.9.9.9, for=1.1.1.1"),
                ("forwarded", "for=10.0.0.5;proto=https"),
            ],
            "1.1.1.1",
        ),
        // Quoted values may hold separators.
        (
            &[("forwarded", r#"for=1.1.1.1;host="a,b;c", for=10.0.0.5"#)],
            "1.1.1.1",
        ),
        // Obfuscated or unknown: the last trusted address seen.
        (&[("forwarded", "for=_hidden, for=10.0.0.5")], "10.0.0.5"),
        (&[("forwarded", "for=unknown")], "10.0.0.9"),
        // Elements without for= are skipped.
        (&[("forwarded", "for=1.1.1.1, proto=https")], "1.1.1.1"),
        // X-Forwarded-For is not the configured header: ignored.
        (&[("x-forwarded-for", "1.1.1.1")], "10.0.0.9"),
    ];
    for (hdrs, expected) in cases {
        assert_eq!(
            fwd.resolve(ip("10.0.0.9"), &headers(hdrs)),
            ip(expected),
            "headers {hdrs:?}"
        );
    }
}

#[test]
fn forwarded_for_values_are_unquoted() {
    assert_eq!(
        key::forwarded_for_values(r#"for="[2001:db8::1]:4711";proto=https, by=x, for=1.2.3.4"#),
        vec!["[2001:db8::1]:4711", "", "1.2.3.4"]
    );
    assert_eq!(
        key::parse_node("[2001:db8::1]:4711"),
        Some(ip("2001:db8::1"))
    );
    assert_eq!(key::parse_node("\"1.2.3.4:80\""), Some(ip("1.2.3.4")));
    assert_eq!(key::parse_node("_hidden"), None);
    assert_eq!(key::parse_node("fe80::1%eth0"), None);
}

#[test]
fn cidrs() {
    let net = Cidr::parse("10.0.0.0/8").unwrap();
    assert!(net.contains(ip("10.255.1.2")));
    assert!(net.contains(ip("::ffff:10.1.1.1")));
    assert!(!net.contains(ip("11.0.0.1")));
    assert!(
        !net.contains(ip("::a00:1")),
        "IPv4-compatible is not IPv4-mapped"
    );

    let v6 = Cidr::parse("2001:db8::/32").unwrap();
    assert!(v6.contains(ip("2001:db8:1::1")));
    assert!(!v6.contains(ip("2001:db9::1")));
    assert!(!v6.contains(ip("10.0.0.1")));

    let host = Cidr::parse("192.0.2.1").unwrap();
    assert!(host.contains(ip("192.0.2.1")));
    assert!(!host.contains(ip("192.0.2.2")));
    assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));

    let all = Cidr::parse("0.0.0.0/0").unwrap();
    assert!(all.contains(ip("255.255.255.255")));
    assert!(!all.contains(ip("::1")));
    assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
    assert!(
        Cidr::parse("192.0.2.0/31")
            .unwrap()
            .contains(ip("192.0.2.1"))
    );
    assert_eq!(Cidr::parse(" 10.0.0.0/8 ").unwrap(), net);

    for bad in [
        "10.0.0.0/33",
        "2001:db8::/129",
        "10.0.0.1/8",
        "10.0.0.0/",
        "10.0.0.0/+8",
        "10.0.0.0/-1",
        "10.0.0/8",
        "example.com/8",
        "",
        "2001:db8::1/32",
    ] {
        assert!(Cidr::parse(bad).is_err(), "{bad:?} accepted");
    }
    assert!(
        Cidr::parse("10.0.0.1/8")
            .unwrap_err()
            .contains("10.0.0.0/8"),
        "suggests the network"
    );
}

#[test]
fn keys_are_unambiguous_and_bounded() {
    let b = builder(
        &[KeyPart::Header("a".into()), KeyPart::Header("b".into())],
        &[],
        ForwardedHeader::XForwardedFor,
    );
    let req = |a: &str, b_: &str| {
        http::Request::builder()
            .header("a", a)
            .header("b", b_)
            .body(empty_body())
            .unwrap()
    };
    assert_ne!(key_of(&b, &req("x", "yz")), key_of(&b, &req("xy", "z")));
    assert_eq!(key_of(&b, &req("x", "yz")), key_of(&b, &req("x", "yz")));

    let long = "v".repeat(10_000);
    let k = key_of(&b, &req(&long, "z"));
    assert_eq!(k.as_bytes().len(), 33, "long keys are digested");
    assert_ne!(k, key_of(&b, &req(&long, "y")));

    // No peer recorded: one shared "unknown" client.
    let ipb = builder(&[KeyPart::ClientIp], &[], ForwardedHeader::XForwardedFor);
    let no_peer = http::Request::builder().body(empty_body()).unwrap();
    assert_eq!(ipb.client_ip(&no_peer), None);
    assert_eq!(
        key_of(&ipb, &no_peer),
        key_of(&ipb, &http::Request::builder().body(empty_body()).unwrap())
    );
}

// --- the local limiter on a fake clock ---

#[test]
fn replenishes_at_the_rate() {
    let (limiter, clock) = fake_limiter("2/s", 2, 10);
    let key = Key::from_static(b"k");
    assert_eq!(
        limiter.check(&key),
        Decision::Allowed {
            remaining: 1,
            reset: Duration::from_millis(500)
        }
    );
    assert_eq!(
        limiter.check(&key),
        Decision::Allowed {
            remaining: 0,
            reset: Duration::from_secs(1)
        }
    );
    assert_eq!(
        limiter.check(&key),
        Decision::Limited {
            retry_after: Duration::from_millis(500)
        }
    );
    clock.advance(Duration::from_millis(200));
    assert_eq!(
        limiter.check(&key),
        Decision::Limited {
            retry_after: Duration::from_millis(300)
        }
    );
    clock.advance(Duration::from_millis(300));
    assert!(allowed(limiter.check(&key)));
    assert!(!allowed(limiter.check(&key)));
    clock.advance(Duration::from_secs(5));
    assert_eq!(
        limiter.check(&key),
        Decision::Allowed {
            remaining: 1,
            reset: Duration::from_millis(500)
        }
    );
}

#[test]
fn idle_keys_are_swept_periodically() {
    let (limiter, clock) = fake_limiter("10/s", 10, 1000);
    for i in 0..100u32 {
        assert!(allowed(limiter.check(&Key::from_static(&i.to_le_bytes()))));
    }
    assert_eq!(limiter.tracked_keys(), 100);
    // Before the sweep is due, nothing goes (even though all are idle).
    clock.advance(Duration::from_secs(5));
    assert!(allowed(limiter.check(&Key::from_static(b"busy"))));
    assert_eq!(limiter.tracked_keys(), 101);
    // Past the deadline: the next request sweeps every idle key.
    clock.advance(local::SWEEP_EVERY);
    for _ in 0..5 {
        assert!(allowed(limiter.check(&Key::from_static(b"busy"))));
    }
    assert_eq!(limiter.tracked_keys(), 1, "only the key in use is kept");
}

#[test]
fn a_full_table_drops_idle_keys_first() {
    let (limiter, clock) = fake_limiter("1/s", 1, 8);
    for i in 0..8u32 {
        assert!(allowed(limiter.check(&Key::from_static(&i.to_le_bytes()))));
    }
    assert_eq!(limiter.tracked_keys(), 8);
    clock.advance(Duration::from_secs(3)); // all idle, no periodic sweep yet
    assert!(allowed(limiter.check(&Key::from_static(b"new"))));
    assert_eq!(limiter.tracked_keys(), 1);
}

#[test]
fn a_full_table_evicts_the_keys_with_the_most_quota_left() {
    // Burst 4, nothing replenishes during the test (fake clock).
    let (limiter, _clock) = fake_limiter("1/h", 4, 4);
    let exhausted = Key::from_static(b"exhausted");
    for _ in 0..4 {
        assert!(allowed(limiter.check(&exhausted)));
    }
    assert!(!allowed(limiter.check(&exhausted)));
    let half = Key::from_static(b"half");
    for _ in 0..2 {
        assert!(allowed(limiter.check(&half)));
    }
    for name in [b"light1", b"light2"] {
        assert!(allowed(limiter.check(&Key::from_static(name))));
    }
    assert_eq!(limiter.tracked_keys(), 4);

    // A new key: the two keys that used 1/4 of their burst go, enough to
    // reach the low-water mark (3); the others keep their state.
    assert!(allowed(limiter.check(&Key::from_static(b"new"))));
    assert_eq!(limiter.tracked_keys(), 3);
    assert!(!allowed(limiter.check(&exhausted)), "still limited");
    assert_eq!(
        limiter.check(&half),
        Decision::Allowed {
            remaining: 1,
            reset: Duration::from_secs(3 * 3600)
        },
        "keeps its count"
    );
    // Evicted keys start afresh.
    assert_eq!(
        limiter.check(&Key::from_static(b"light1")),
        Decision::Allowed {
            remaining: 3,
            reset: Duration::from_secs(3600)
        }
    );
}

#[test]
fn the_table_never_grows_past_max_keys() {
    let (limiter, clock) = fake_limiter("1/h", 2, 100);
    let hot = Key::from_static(b"hot");
    assert!(allowed(limiter.check(&hot)));
    assert!(allowed(limiter.check(&hot)));
    for i in 0..10_000u32 {
        // A flood of new keys, each used once and kept busy.
        assert!(allowed(limiter.check(&Key::from_static(&i.to_le_bytes()))));
        assert!(
            limiter.tracked_keys() <= 100,
            "{} keys after {i}",
            limiter.tracked_keys()
        );
        if i % 1000 == 0 {
            clock.advance(Duration::from_millis(1));
        }
    }
    // The exhausted key outlived the flood: it is still limited.
    assert!(!allowed(limiter.check(&hot)));
}

#[test]
fn a_full_table_of_exhausted_keys_is_cleared() {
    let (limiter, _clock) = fake_limiter("1/h", 1, 4);
    for i in 0..4u32 {
        assert!(allowed(limiter.check(&Key::from_static(&i.to_le_bytes()))));
    }
    // Every key has used its whole burst: the last resort clears them all.
    assert!(allowed(limiter.check(&Key::from_static(b"new"))));
    assert_eq!(limiter.tracked_keys(), 1);
}

#[tokio::test]
async fn max_keys_bounds_the_plugin() {
    let svc = service(RateLimitConfig {
        max_keys: 10,
        ..config("1/h")
    })
    .await;
    for i in 0..50u8 {
        assert_eq!(
            status(&svc, get(&format!("192.0.2.{i}:1"))).await,
            StatusCode::OK
        );
    }
}

// --- configuration ---

#[test]
fn rates_parse() {
    let ok = [
        ("100/s", 100, Period::Second),
        ("100/sec", 100, Period::Second),
        (" 100 / second ", 100, Period::Second),
        ("6000/min", 6000, Period::Minute),
        ("1/m", 1, Period::Minute),
        ("1/minute", 1, Period::Minute),
        ("10/h", 10, Period::Hour),
        ("10/hr", 10, Period::Hour),
        ("10/hour", 10, Period::Hour),
        ("1000000000/s", 1_000_000_000, Period::Second),
    ];
    for (text, count, period) in ok {
        assert_eq!(
            Rate::parse(text),
            Ok(Rate {
                count: NonZeroU32::new(count).unwrap(),
                period
            }),
            "{text}"
        );
    }
    for bad in [
        "",
        "100",
        "100/",
        "/s",
        "0/s",
        "-1/s",
        "+1/s",
        "1.5/s",
        "100/d",
        "100/S",
        "x/s",
        "100/s/s",
        "4294967296/s",
        "1000000001/s",
    ] {
        assert!(Rate::parse(bad).is_err(), "{bad:?} accepted");
    }
}

#[tokio::test]
async fn invalid_configs_are_refused() {
    let cases: Vec<(RateLimitConfig, &str)> = vec![
        (config("fast"), "invalid rate"),
        (config("0/s"), "at least 1"),
        (config("10/fortnight"), "unknown unit"),
        (
            RateLimitConfig {
                burst: Some(0),
                ..config("10/s")
            },
            "burst must be at least 1",
        ),
        (
            RateLimitConfig {
                burst: Some(100_000),
                ..config("1/h")
            },
            "more than a year",
        ),
        (
            RateLimitConfig {
                max_keys: 0,
                ..config("10/s")
            },
            "max_keys",
        ),
        (
            RateLimitConfig {
                trusted_proxies: vec!["10.0.0.0/33".into()],
                ..config("10/s")
            },
            "trusted_proxies: invalid CIDR",
        ),
        (
            RateLimitConfig {
                trusted_proxies: vec!["proxy.internal".into()],
                ..config("10/s")
            },
            "trusted_proxies: invalid CIDR",
        ),
        (
            RateLimitConfig {
                key: vec![KeyPart::Header("bad header".into())],
                ..config("10/s")
            },
            "invalid header name",
        ),
        (
            RateLimitConfig {
                name: String::new(),
                ..config("10/s")
            },
            "invalid name",
        ),
        (
            RateLimitConfig {
                name: "a\"b".into(),
                ..config("10/s")
            },
            "invalid name",
        ),
        (
            RateLimitConfig {
                name: "x".repeat(65),
                ..config("10/s")
            },
            "invalid name",
        ),
    ];
    for (config, expected) in cases {
        let debug = format!("{config:?}");
        let err = plugin_error(config).await;
        assert!(err.starts_with("plugin `rate_limit`: "), "{err}");
        assert!(err.contains(expected), "{debug}: {err}");
    }
}

#[test]
fn config_deserializes_from_the_documented_shape() {
    let config: RateLimitConfig = serde_json::from_value(serde_json::json!({
        "name": "per-client",
        "rate": "100/s",
        "burst": 20,
        "key": ["client_ip", "consumer", {"header": "x-tenant"}],
        "trusted_proxies": ["10.0.0.0/8", "2001:db8::/32"],
        "forwarded_header": "forwarded",
        "max_keys": 5000,
        "backend": "local",
    }))
    .unwrap();
    assert_eq!(
        config.key,
        vec![
            KeyPart::ClientIp,
            KeyPart::Consumer,
            KeyPart::Header("x-tenant".into())
        ]
    );
    assert_eq!(config.forwarded_header, ForwardedHeader::Forwarded);
    assert_eq!(config.burst, Some(20));

    let minimal: RateLimitConfig =
        serde_json::from_value(serde_json::json!({"rate": "5/min"})).unwrap();
    assert_eq!(minimal.key, vec![KeyPart::ClientIp]);
    assert_eq!(minimal.name, "default");
    assert_eq!(minimal.max_keys, 100_000);
    assert_eq!(minimal.backend, BackendConfig::Local);

    for bad in [
        serde_json::json!({"rate": "5/min", "burts": 3}),
        serde_json::json!({"rate": "5/min", "backend": "redis"}),
        serde_json::json!({"rate": "5/min", "key": ["route"]}),
        serde_json::json!({}),
    ] {
        assert!(
            serde_json::from_value::<RateLimitConfig>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn the_policy_name_appears_in_the_headers() {
    let svc = service(RateLimitConfig {
        name: "per-tenant".into(),
        ..config("100/s")
    })
    .await;
    let res = svc.oneshot(get("192.0.2.1:1")).await.unwrap();
    assert_eq!(header(&res, "ratelimit-policy"), "\"per-tenant\";q=100;w=1");
    assert_eq!(header(&res, "ratelimit"), "\"per-tenant\";r=99;t=1");
}

#[test]
fn every_config_field_is_documented_in_the_schema() {
    let schema = serde_json::to_value(schemars::schema_for!(RateLimitConfig)).unwrap();
    let properties = schema["properties"].as_object().unwrap();
    assert_eq!(properties.len(), 8);
    for (name, property) in properties {
        let description = property["description"].as_str().unwrap_or_default();
        assert!(!description.is_empty(), "{name} has no description");
    }
    assert_eq!(schema["required"], serde_json::json!(["rate"]));
}
