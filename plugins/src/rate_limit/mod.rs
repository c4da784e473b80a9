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
//!       backend: local            # or { redis: { url: redis://127.0.0.1:6379 } }
//!       consumers:                # quotas of their own for some consumers
//!         partner-a: { rate: 1000/s, burst: 200 }
//! ```
//!
//! A consumer listed in `consumers` (as named by the route's `auth`) is
//! counted against its own quota, in its own state (local, or its own Redis
//! keys `name@consumer`), keyed as usual, and its `RateLimit-Policy` shows
//! its quota; every other request gets `rate`/`burst`.
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
//! See [`key`]: `client_ip` (the default), `consumer` (set by the route's
//! `auth` plugin, which always runs first; requests without one are counted
//! by client IP), `header: name` or `claim: name` (a JWT claim; absent:
//! client IP), or a list combining several. An empty
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
//! least-used keys evicted under pressure.
//!
//! `backend: { redis: { url: ..., key_prefix: ..., timeout: 50ms, on_error:
//! fail_open } }` shares the limit between every gateway instance using the
//! same Redis ([`redis`]): one atomic script call per decision, on Redis's
//! clock. When Redis cannot decide, `fail_open` (the default) falls back to a
//! local limiter of the same quota (counted by [`redis::redis_fallbacks`]);
//! `fail_closed` answers **503**. Same key, quota and headers as `local`.

pub mod key;
pub mod local;
mod policy;
pub mod redis;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::Deserialize;
use tower::Service;

use crate::metrics::{PluginMetrics, RateLimitCounters};
use crate::registry::{Plugin, PluginError};
use crate::stage::{BoxFuture, Consumer, HttpService, Request, Response};
use policy::{Limiter, Policy};

pub use key::{Cidr, ClientIpResolver, ForwardedHeader, Key, KeyBuilder, KeyPart};
pub use local::{Decision, LocalLimiter, Period};
pub use redis::{OnError, RedisConfig, RedisLimiter, redis_errors, redis_fallbacks};

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
    /// (the auth plugin's consumer; client IP when there is none),
    /// `{header: name}` and `{claim: name}` (a JWT claim; client IP when
    /// absent), combined. `[]` is one bucket for the whole route. Default:
    /// `[client_ip]`.
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
    /// Where the counters live: `local` (this process's memory, the default)
    /// or `{redis: {url, key_prefix, timeout, on_error}}` (shared by every
    /// gateway instance using that Redis).
    #[serde(default)]
    pub backend: BackendConfig,
    /// Quotas of their own for some consumers (as named by the route's `auth`
    /// plugin), by consumer name: `{partner-a: {rate: 1000/s, burst: 200}}`.
    /// Their requests are keyed as usual (`key`) but counted against their
    /// own quota, in their own counters, and their `RateLimit-Policy` header
    /// shows it; everyone else gets `rate`/`burst`.
    #[serde(default)]
    pub consumers: BTreeMap<String, ConsumerQuota>,
}

/// A consumer's own quota (`consumers:`).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumerQuota {
    /// The sustained rate, as the limit's `rate`.
    pub rate: String,
    /// The bucket size, as the limit's `burst`; default: the N of `rate`.
    #[serde(default)]
    pub burst: Option<u32>,
}

/// Where a limit's state lives.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackendConfig {
    /// In this process's memory: each gateway instance counts on its own.
    #[default]
    Local,
    /// In Redis: every gateway instance using it shares the limit.
    Redis(RedisConfig),
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
    /// The route's quota.
    default: Arc<Policy>,
    /// Consumers with a quota of their own.
    consumers: HashMap<String, Arc<Policy>>,
}

/// The service wrapping the rest of the route.
#[derive(Clone)]
pub struct RateLimitService {
    inner: HttpService,
    shared: Arc<Shared>,
}

/// The response future: the refusal, or the inner response plus headers.
pub enum RateLimitFuture {
    /// Answered here: the 429 (or the 503 of a `fail_closed` backend that
    /// could not decide).
    Limited(Ready<Result<Response, Infallible>>),
    /// Let through: the inner call and the headers to add to its response.
    Allowed {
        inner: <HttpService as Service<Request>>::Future,
        headers: Option<[(HeaderName, HeaderValue); 2]>,
    },
    /// Waiting for a shared backend's decision.
    Checking(Checking),
}

/// A request waiting for a shared backend's decision.
pub struct Checking {
    check: BoxFuture<Option<Decision>>,
    /// The inner service, already ready, and the request for it.
    call: Option<(HttpService, Request)>,
    policy: Arc<Policy>,
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

    /// A Redis-backed limit's keys include the route, so two routes with the
    /// same policy name keep separate budgets (as local limits do).
    async fn build(
        mut config: RateLimitConfig,
        ctx: &crate::registry::BuildContext,
    ) -> Result<Self, PluginError> {
        if let BackendConfig::Redis(redis) = &mut config.backend
            && !ctx.route.is_empty()
        {
            redis.key_prefix = format!("{}{}:", redis.key_prefix, ctx.route);
        }
        let counters = ctx.metrics.rate_limit(&ctx.route, &config.name);
        Self::create(config, counters)
    }

    async fn new(config: RateLimitConfig) -> Result<Self, PluginError> {
        let counters = PluginMetrics::default().rate_limit("", &config.name);
        Self::create(config, counters)
    }

    fn wrap(&self, inner: HttpService) -> HttpService {
        HttpService::new(RateLimitService {
            inner,
            shared: self.shared.clone(),
        })
    }
}

impl RateLimit {
    /// Checks `config` and builds the limiter, counting into `counters`.
    fn create(config: RateLimitConfig, counters: RateLimitCounters) -> Result<Self, PluginError> {
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
        let quota = |rate: &str, burst: Option<u32>, backend_name: &str| {
            Policy::new(&config, rate, burst, backend_name, counters.clone()).map(Arc::new)
        };
        let default = quota(&config.rate, config.burst, name).map_err(Self::error)?;
        let mut consumers = HashMap::with_capacity(config.consumers.len());
        for (consumer, own) in &config.consumers {
            // Its own state: a consumer's counters never mix with the route's.
            let policy = quota(&own.rate, own.burst, &format!("{name}@{consumer}"))
                .map_err(|e| Self::error(format!("consumers.{consumer}: {e}")))?;
            consumers.insert(consumer.clone(), policy);
        }
        Ok(RateLimit {
            shared: Arc::new(Shared {
                keys,
                default,
                consumers,
            }),
        })
    }
}

// === impl Shared ===

impl Shared {
    /// The quota `request` is counted against: its consumer's own, if any.
    fn policy_for(&self, request: &Request) -> &Arc<Policy> {
        if self.consumers.is_empty() {
            return &self.default;
        }
        request
            .extensions()
            .get::<Consumer>()
            .and_then(|Consumer(name)| self.consumers.get(name))
            .unwrap_or(&self.default)
    }
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
        let key = self.shared.keys.key(&request);
        let policy = self.shared.policy_for(&request);
        match &policy.limiter {
            Limiter::Local(local) => {
                let decision = local.check(&key);
                RateLimitFuture::decided(policy, Some(decision), &mut self.inner, request)
            }
            Limiter::Redis(redis) => {
                let redis = redis.clone();
                // The ready service goes with the request; a clone stays for
                // the next call (which polls it ready first).
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                RateLimitFuture::Checking(Checking {
                    check: Box::pin(async move { redis.check(&key).await }),
                    call: Some((inner, request)),
                    policy: policy.clone(),
                })
            }
        }
    }
}

// === impl RateLimitFuture ===

impl RateLimitFuture {
    /// The future for a decision (`None`: the backend could not decide and
    /// the limit fails closed); `inner` must be ready.
    fn decided(
        policy: &Policy,
        decision: Option<Decision>,
        inner: &mut HttpService,
        request: Request,
    ) -> RateLimitFuture {
        match decision {
            None => {
                policy.counters.unavailable.inc();
                RateLimitFuture::Limited(ready(Ok(policy.unavailable())))
            }
            Some(Decision::Limited { retry_after }) => {
                policy.counters.limited.inc();
                RateLimitFuture::Limited(ready(Ok(policy.refusal(retry_after))))
            }
            Some(Decision::Allowed { remaining, reset }) => {
                policy.counters.allowed.inc();
                RateLimitFuture::Allowed {
                    inner: inner.call(request),
                    headers: policy.allowed_headers(remaining, reset),
                }
            }
        }
    }
}

impl Future for RateLimitFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every variant holds `Unpin` futures (a ready value, boxed futures).
        let this = self.get_mut();
        if let RateLimitFuture::Checking(checking) = this {
            let decision = std::task::ready!(checking.check.as_mut().poll(cx));
            let (mut inner, request) = checking.call.take().expect("polled after completion");
            let policy = checking.policy.clone();
            *this = RateLimitFuture::decided(&policy, decision, &mut inner, request);
        }
        match this {
            RateLimitFuture::Checking(_) => unreachable!("decided above"),
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
