//! Plugin `rate_limit`: limits how fast each client (an IP, a consumer, a
//! header value, or a combination) may call a route, and answers 429 itself.
//!
//! ```yaml
//! plugins:
//!   - rate_limit:
//!       name: per-client          # the policy's name in RateLimit headers
//!       rate: 100/s               # sustained rate: N/s, N/min or N/h
//!       burst: 20                 # requests allowed at once (default: N)
//!       key: [consumer]           # or [client_ip], [{header: x-tenant}], [client_ip, {header: x-tenant}]
//!       trusted_proxies: [10.0.0.0/8, "2001:db8::/32"]
//!       forwarded_header: x_forwarded_for   # or `forwarded` (RFC 7239)
//!       max_keys: 100000
//! ```
//!
//! # Algorithm
//!
//! GCRA (governor), equivalent to a token bucket of `burst` tokens refilled
//! at `rate`: up to `burst` requests at once, then one every `period / N`.
//! Exact under concurrency: each key's state is one atomic word updated by
//! compare-and-swap. Refused requests consume nothing.
//!
//! # Keys
//!
//! See [`key`]: `client_ip` (the default), `consumer` (set by an auth plugin
//! listed before this one; requests without one are counted by client IP),
//! `header: name` (absent: client IP), or a list combining several. An empty
//! list is one bucket for the whole route. Client IPs come from the socket,
//! or from `X-Forwarded-For` / `Forwarded` only when the peer is a trusted
//! proxy (right-most untrusted hop); a header sent by anyone else is ignored.
//!
//! There is no `route` key part: a plugin instance — and its state — belongs
//! to one route (the gateway builds the top-level `plugins:` once per route
//! too), so every limit is already per route. Counters start afresh when the
//! configuration is reloaded (a new instance is built).
//!
//! # Responses
//!
//! Headers per draft-ietf-httpapi-ratelimit-headers (-11):
//!
//! - on every response, `RateLimit-Policy: "<name>";q=<N>;w=<period secs>`
//!   (the configured rate; `w` is a whole number of seconds, so the policy
//!   advertises the rate rather than the burst, which may refill in less
//!   than a second);
//! - on allowed responses, `RateLimit: "<name>";r=<remaining>;t=<secs>`:
//!   requests that would be let through right now, and seconds until the
//!   whole burst is available again (rounded up);
//! - on refusals, **429** `{"code":8,"message":"rate limit exceeded",
//!   "details":[google.rpc.RetryInfo]}` with `Retry-After: <secs>` and
//!   `RateLimit: "<name>";r=0;t=<secs>`, both the wait until a request can
//!   succeed, rounded up (at least 1).
//!
//! The headers are appended, so several limits on a route each report their
//! own policy (give them distinct `name`s).
//!
//! # Backends
//!
//! `backend: local` (the default) keeps state in process memory
//! ([`local`]): sharded, at most about `max_keys` keys, idle keys swept,
//! least-used keys evicted under pressure. A shared backend (`redis`) slots
//! in as another [`BackendConfig`] variant and another arm of the internal
//! `Limiter::check`: the key ([`key::Key::as_bytes`]), the quota and the
//! [`local::Decision`] it returns stay the same.

pub mod key;
pub mod local;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderName, HeaderValue, header};
use schemars::JsonSchema;
use serde::Deserialize;
use tower::Service;

use crate::error::{Code, ErrorResponse};
use crate::registry::{Plugin, PluginError};
use crate::stage::{HttpService, Request, Response};

pub use key::{Cidr, ClientIpResolver, ForwardedHeader, Key, KeyBuilder, KeyPart};
pub use local::{Decision, LocalLimiter, Period};

/// The `RateLimit` response header (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// The `RateLimit-Policy` response header (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// The longest refill time of a burst (`burst × period / N`) accepted.
const MAX_WINDOW: Duration = Duration::from_secs(365 * 24 * 3600);

/// Configuration of the `rate_limit` plugin.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// The sustained rate: `N/s`, `N/min` or `N/h` (also `sec`, `second`,
    /// `m`, `minute`, `hr`, `hour`), N ≥ 1. `100/s` lets one request through
    /// every 10 ms on average.
    pub rate: String,
    /// Requests allowed at once before the rate applies (the bucket size),
    /// ≥ 1. Default: the N of `rate` (`100/s` allows 100 at once, then 100
    /// per second).
    #[serde(default)]
    pub burst: Option<u32>,
    /// What requests are counted against: a list of `client_ip`, `consumer`
    /// (the auth plugin's consumer; client IP when there is none) and
    /// `{header: name}` (client IP when absent), combined. `[]` is one
    /// bucket for the whole route. Default: `[client_ip]`.
    #[serde(default = "default_key")]
    pub key: Vec<KeyPart>,
    /// Proxies (CIDRs or addresses, IPv4 or IPv6) whose forwarding header is
    /// believed: when the socket peer is one of them, the client IP is the
    /// right-most hop of `forwarded_header` that is not. Default: none (the
    /// client IP is always the socket peer).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The header the trusted proxies append the client address to:
    /// `x_forwarded_for` (the default) or `forwarded` (RFC 7239). Only this
    /// one is read.
    #[serde(default)]
    pub forwarded_header: ForwardedHeader,
    /// The policy's name in the `RateLimit` and `RateLimit-Policy` headers:
    /// 1 to 64 printable ASCII characters, no `"` or `\`. Default: `default`.
    #[serde(default = "default_name")]
    pub name: String,
    /// The most keys tracked at once (≥ 1). Idle keys are dropped; when the
    /// table is full, the keys with the most quota left are evicted to make
    /// room (new clients are never refused for lack of room). Default: 100000.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
    /// Where the counters live: `local` (this process's memory, the default).
    #[serde(default)]
    pub backend: BackendConfig,
}

/// Where a limit's state lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackendConfig {
    /// In this process's memory: each gateway instance counts on its own.
    #[default]
    Local,
}

/// A parsed `rate`: `count` requests per `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub period: Period,
}

/// The built plugin.
pub struct RateLimit {
    shared: Arc<Shared>,
}

/// What every clone of the service shares.
struct Shared {
    keys: KeyBuilder,
    limiter: Limiter,
    /// `"<name>"`, the policy's identifier as an sf-string.
    name: String,
    policy: HeaderValue,
}

/// The state backend.
enum Limiter {
    Local(LocalLimiter),
}

/// The service wrapping the rest of the route.
#[derive(Clone)]
pub struct RateLimitService {
    inner: HttpService,
    shared: Arc<Shared>,
}

/// The response future: the refusal, or the inner response plus headers.
pub enum RateLimitFuture {
    /// Refused: the 429 response.
    Limited(Ready<Result<Response, Infallible>>),
    /// Let through: the inner call and the headers to add to its response.
    Allowed {
        inner: <HttpService as Service<Request>>::Future,
        headers: Option<[(HeaderName, HeaderValue); 2]>,
    },
}

fn default_key() -> Vec<KeyPart> {
    vec![KeyPart::ClientIp]
}

fn default_name() -> String {
    "default".to_owned()
}

fn default_max_keys() -> usize {
    100_000
}

// === impl Rate ===

impl Rate {
    /// Parses `N/s`, `N/min`, `N/h` (and the unit's longer spellings).
    pub fn parse(text: &str) -> Result<Rate, String> {
        let (count, unit) = text
            .split_once('/')
            .ok_or_else(|| format!("invalid rate {text:?}: expected `N/s`, `N/min` or `N/h`"))?;
        let count = count.trim();
        let count: u32 = count
            .parse()
            .ok()
            .filter(|_| count.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| format!("invalid rate {text:?}: {count:?} is not a whole number"))?;
        let count = NonZeroU32::new(count)
            .ok_or_else(|| format!("invalid rate {text:?}: the count must be at least 1"))?;
        let period = match unit.trim() {
            "s" | "sec" | "second" => Period::Second,
            "m" | "min" | "minute" => Period::Minute,
            "h" | "hr" | "hour" => Period::Hour,
            other => {
                return Err(format!(
                    "invalid rate {text:?}: unknown unit {other:?} (use s, min or h)"
                ));
            }
        };
        if u128::from(count.get()) > period.duration().as_nanos() {
            return Err(format!(
                "invalid rate {text:?}: more than one request per nanosecond"
            ));
        }
        Ok(Rate { count, period })
    }
}

// === impl RateLimit ===

impl RateLimit {
    fn error(message: impl Into<String>) -> PluginError {
        PluginError {
            plugin: Self::NAME,
            message: message.into(),
        }
    }
}

impl Plugin for RateLimit {
    const NAME: &'static str = "rate_limit";
    type Config = RateLimitConfig;

    async fn new(config: RateLimitConfig) -> Result<Self, PluginError> {
        let rate = Rate::parse(&config.rate).map_err(Self::error)?;
        let burst = match config.burst {
            None => rate.count,
            Some(b) => NonZeroU32::new(b).ok_or_else(|| Self::error("burst must be at least 1"))?,
        };
        let refill = rate.period.duration() / rate.count.get() * burst.get();
        if refill > MAX_WINDOW {
            return Err(Self::error(format!(
                "burst {burst} is too large for rate {:?}: refilling it would take more than a year",
                config.rate
            )));
        }
        if config.max_keys == 0 {
            return Err(Self::error("max_keys must be at least 1"));
        }
        let name = &config.name;
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\')
        {
            return Err(Self::error(format!(
                "invalid name {name:?}: 1 to 64 printable ASCII characters, no `\"` or `\\`"
            )));
        }
        let trusted = config
            .trusted_proxies
            .iter()
            .map(|cidr| Cidr::parse(cidr))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Self::error(format!("trusted_proxies: {e}")))?;
        let resolver = ClientIpResolver::new(trusted, config.forwarded_header);
        let keys = KeyBuilder::new(&config.key, resolver).map_err(Self::error)?;
        let limiter = match config.backend {
            BackendConfig::Local => Limiter::Local(LocalLimiter::new(
                local::quota(rate.count, rate.period, burst),
                config.max_keys,
            )),
        };
        let name = format!("\"{name}\"");
        let policy = format!(
            "{name};q={};w={}",
            rate.count,
            rate.period.duration().as_secs()
        );
        let policy = HeaderValue::try_from(policy).map_err(|e| Self::error(e.to_string()))?;
        Ok(RateLimit {
            shared: Arc::new(Shared {
                keys,
                limiter,
                name,
                policy,
            }),
        })
    }

    fn wrap(&self, inner: HttpService) -> HttpService {
        HttpService::new(RateLimitService {
            inner,
            shared: self.shared.clone(),
        })
    }
}

// === impl Limiter ===

impl Limiter {
    /// Counts one request against `key`. (A shared backend makes this
    /// async; the local one never waits.)
    fn check(&self, key: &Key) -> Decision {
        match self {
            Limiter::Local(local) => local.check(key),
        }
    }
}

// === impl Shared ===

impl Shared {
    /// `"<name>";r=<remaining>;t=<secs>`.
    fn ratelimit(&self, remaining: u32, secs: u64) -> Option<HeaderValue> {
        HeaderValue::try_from(format!("{};r={remaining};t={secs}", self.name)).ok()
    }

    /// The 429 for a request that may retry after `wait`.
    fn refusal(&self, wait: Duration) -> Response {
        let secs = ceil_secs(wait).max(1);
        let mut error = ErrorResponse::new(Code::ResourceExhausted, "rate limit exceeded")
            .with_details(vec![serde_json::json!({
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": format!("{secs}s"),
            })])
            .with_header(header::RETRY_AFTER, HeaderValue::from(secs))
            .with_header(RATELIMIT_POLICY, self.policy.clone());
        if let Some(value) = self.ratelimit(0, secs) {
            error = error.with_header(RATELIMIT, value);
        }
        error.into_response()
    }
}

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

// === impl RateLimitService ===

impl Service<Request> for RateLimitService {
    type Response = Response;
    type Error = Infallible;
    type Future = RateLimitFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> RateLimitFuture {
        let shared = &self.shared;
        let key = shared.keys.key(&request);
        match shared.limiter.check(&key) {
            Decision::Limited { retry_after } => {
                RateLimitFuture::Limited(ready(Ok(shared.refusal(retry_after))))
            }
            Decision::Allowed { remaining, reset } => {
                let headers = shared.ratelimit(remaining, ceil_secs(reset)).map(|value| {
                    [
                        (RATELIMIT_POLICY, shared.policy.clone()),
                        (RATELIMIT, value),
                    ]
                });
                RateLimitFuture::Allowed {
                    inner: self.inner.call(request),
                    headers,
                }
            }
        }
    }
}

// === impl RateLimitFuture ===

impl Future for RateLimitFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Both variants hold `Unpin` futures (a ready value, a boxed future).
        match self.get_mut() {
            RateLimitFuture::Limited(ready) => Pin::new(ready).poll(cx),
            RateLimitFuture::Allowed { inner, headers } => {
                let Ok(mut response) = std::task::ready!(Pin::new(inner).poll(cx));
                for (name, value) in headers.take().into_iter().flatten() {
                    response.headers_mut().append(name, value);
                }
                Poll::Ready(Ok(response))
            }
        }
    }
}
