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

mod client_ip;
mod config;
mod consumers;
mod headers;
mod keys;
mod limits;

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
        consumers: Default::default(),
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
