//! The shared limiter: GCRA in a Lua script on Redis, so every gateway
//! instance pointing at the same Redis counts against one budget.
//!
//! ```yaml
//! rate_limit:
//!   rate: 100/s
//!   backend:
//!     redis:
//!       url: redis://127.0.0.1:6379   # rediss:// for TLS is not built in
//!       key_prefix: "switchyard:rl:"  # the default
//!       timeout: 50ms                 # per decision, the default
//!       on_error: fail_open           # or fail_closed
//! ```
//!
//! # One round trip per decision
//!
//! Each request is one `EVALSHA` of [`GCRA_SCRIPT`] (the script is loaded on
//! first use, or again after a Redis restart, by the redis crate's `Script`,
//! which falls back to `EVAL` on `NOSCRIPT`). The script reads the key's
//! theoretical arrival time (TAT), decides, and stores the new TAT with an
//! expiry at the moment the key would be fresh again (`PX`), so idle keys
//! disappear from Redis by themselves. Redis runs scripts one at a time:
//! decisions are exact however many instances and requests race.
//!
//! The clock is Redis's (`TIME` inside the script), never the gateway's, so
//! instances with skewed clocks agree. Time is counted in whole
//! microseconds (Lua numbers are doubles: exact integers up to 2^53 µs,
//! far beyond any date we will see); the emission interval is
//! `period / N` rounded down to a microsecond, so this backend accepts rates
//! up to `1000000/s`.
//!
//! # Keys
//!
//! `key_prefix` + the route's name + `:` + the policy `name` + `:` + the
//! request's key bytes ([`Key::as_bytes`], binary); the gateway adds the
//! route when it builds the plugin (route names are unique in a config), so
//! two routes keep separate budgets, as local limits do. Every gateway
//! instance must use the same prefix, route name, policy name, rate and burst
//! for a limit to be shared.
//!
//! # When Redis is unreachable
//!
//! A decision that fails (connection refused or lost, no answer within
//! `timeout`, a script error) is counted in [`redis_errors`] and then:
//!
//! - `on_error: fail_open` (the default) decides with a **local** limiter of
//!   the same quota, in this process's memory: an outage degrades the limit
//!   to a per-instance one, never to no limit at all. Each such decision is
//!   counted in [`redis_fallbacks`].
//! - `on_error: fail_closed` answers **503** `UNAVAILABLE` ("rate limiter
//!   unavailable").
//!
//! After a failure, Redis is not asked again for [`RETRY_AFTER_ERROR`]:
//! decisions in that window go straight to the fallback (or 503), so an
//! outage costs requests at most one `timeout` each second rather than one
//! per request. The connection is a [`ConnectionManager`], which reconnects
//! by itself; the gateway starts (and reloads) even while Redis is down.

#[cfg(test)]
mod tests;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::redis::aio::ConnectionManager;
use ::redis::{Client, Script};
use schemars::JsonSchema;
use serde::Deserialize;

use super::Rate;
use super::key::Key;
use super::local::{self, Decision, LocalLimiter};

/// How long Redis is left alone after a failed decision.
pub const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// The default per-decision timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

/// GCRA on one key. `KEYS[1]`: the key; `ARGV[1]`: the emission interval in
/// µs (integer ≥ 1); `ARGV[2]`: the burst. Returns `{allowed (0/1),
/// remaining, retry-after µs, reset µs}`.
pub const GCRA_SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
  tat = now
end
local new_tat = tat + interval
local limit = now + interval * burst
if new_tat > limit then
  return {0, 0, new_tat - limit, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((limit - new_tat) / interval), 0, new_tat - now}
";

static ERRORS: AtomicU64 = AtomicU64::new(0);
static FALLBACKS: AtomicU64 = AtomicU64::new(0);

/// Redis decisions that failed (unreachable, timed out, script error, or
/// skipped while Redis is considered down), across every limiter in the
/// process since it started. Monotonic: export it as a counter.
pub fn redis_errors() -> u64 {
    ERRORS.load(Ordering::Relaxed)
}

/// Decisions taken by the local fallback limiter of a `fail_open` Redis
/// backend, across every limiter in the process since it started.
/// Monotonic: export it as a counter.
pub fn redis_fallbacks() -> u64 {
    FALLBACKS.load(Ordering::Relaxed)
}

/// `backend: { redis: {...} }`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// The Redis server: `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Prepended to every key this limit stores (then the policy `name`, then
    /// the client's key). Default: `switchyard:rl:`.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// How long one decision may take (connecting included) before Redis
    /// counts as unreachable for it: a duration such as `50ms`. Default: 50ms.
    #[serde(default)]
    pub timeout: Option<String>,
    /// When Redis is unreachable: `fail_open` (the default) decides with a
    /// local, per-instance limiter of the same quota; `fail_closed` answers
    /// 503.
    #[serde(default)]
    pub on_error: OnError,
}

/// What a Redis-backed limit does when Redis cannot decide.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Decide with a local limiter of the same quota (per-instance limits).
    #[default]
    FailOpen,
    /// Answer 503.
    FailClosed,
}

fn default_prefix() -> String {
    "switchyard:rl:".to_owned()
}

/// A keyed GCRA limiter whose state lives in Redis.
pub struct RedisLimiter {
    conn: ConnectionManager,
    script: Script,
    /// `key_prefix` + name + `:`.
    prefix: Vec<u8>,
    interval_us: u64,
    burst: u32,
    timeout: Duration,
    /// The local limiter used when Redis fails (`fail_open`).
    fallback: Option<LocalLimiter>,
    /// Origin of `retry_at`.
    start: Instant,
    /// Redis is not asked before this many ms since `start`.
    retry_at: AtomicU64,
    /// This limiter's own counts (the statics sum every limiter's).
    errors: AtomicU64,
    fallbacks: AtomicU64,
}

// === impl RedisLimiter ===

impl RedisLimiter {
    /// A limiter for `rate` with `burst`, named `name` (part of the keys);
    /// the fallback tracks up to `max_keys` keys. Does not connect: the
    /// connection is made on first use.
    pub fn new(
        config: &RedisConfig,
        name: &str,
        rate: Rate,
        burst: NonZeroU32,
        max_keys: usize,
    ) -> Result<RedisLimiter, String> {
        let interval_us = rate.period.duration().as_micros() / u128::from(rate.count.get());
        let interval_us = u64::try_from(interval_us)
            .ok()
            .filter(|&us| us >= 1)
            .ok_or_else(|| {
                "the redis backend counts in microseconds: the rate may be at most 1000000/s"
                    .to_owned()
            })?;
        let timeout = match &config.timeout {
            None => DEFAULT_TIMEOUT,
            Some(text) => humantime::parse_duration(text).map_err(|e| {
                format!("redis `timeout`: invalid duration {text:?} ({e}); expected e.g. \"50ms\"")
            })?,
        };
        if timeout.is_zero() {
            return Err("redis `timeout` must be more than zero".to_owned());
        }
        let client = Client::open(config.url.as_str())
            .map_err(|e| format!("redis `url` {:?}: {e}", config.url))?;
        let conn =
            crate::redis_conn::lazy_manager(client, timeout).map_err(|e| format!("redis: {e}"))?;
        let fallback = (config.on_error == OnError::FailOpen)
            .then(|| LocalLimiter::new(local::quota(rate.count, rate.period, burst), max_keys));
        let mut prefix = Vec::with_capacity(config.key_prefix.len() + name.len() + 1);
        prefix.extend_from_slice(config.key_prefix.as_bytes());
        prefix.extend_from_slice(name.as_bytes());
        prefix.push(b':');
        Ok(RedisLimiter {
            conn,
            script: Script::new(GCRA_SCRIPT),
            prefix,
            interval_us,
            burst: burst.get(),
            timeout,
            fallback,
            start: Instant::now(),
            retry_at: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        })
    }

    /// Counts one request against `key`. `None`: Redis could not decide and
    /// the limit fails closed (answer 503).
    pub async fn check(&self, key: &Key) -> Option<Decision> {
        let now_ms = self.elapsed_ms();
        if now_ms >= self.retry_at.load(Ordering::Relaxed) {
            match tokio::time::timeout(self.timeout, self.remote(key)).await {
                Ok(Ok(decision)) => return Some(decision),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "rate_limit: redis decision failed");
                }
                Err(_) => {
                    tracing::warn!(timeout = ?self.timeout, "rate_limit: redis decision timed out");
                }
            }
            let retry_at = self.elapsed_ms() + millis(RETRY_AFTER_ERROR);
            self.retry_at.fetch_max(retry_at, Ordering::Relaxed);
        }
        ERRORS.fetch_add(1, Ordering::Relaxed);
        self.errors.fetch_add(1, Ordering::Relaxed);
        let fallback = self.fallback.as_ref()?;
        FALLBACKS.fetch_add(1, Ordering::Relaxed);
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        Some(fallback.check(key))
    }

    /// Failed decisions of this limiter (see [`redis_errors`]).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Decisions of this limiter taken by its local fallback (see
    /// [`redis_fallbacks`]).
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// One EVALSHA.
    async fn remote(&self, key: &Key) -> ::redis::RedisResult<Decision> {
        let mut name = Vec::with_capacity(self.prefix.len() + key.as_bytes().len());
        name.extend_from_slice(&self.prefix);
        name.extend_from_slice(key.as_bytes());
        let mut conn = self.conn.clone();
        let (allowed, remaining, retry_us, reset_us): (i64, i64, i64, i64) = self
            .script
            .key(name)
            .arg(self.interval_us)
            .arg(self.burst)
            .invoke_async(&mut conn)
            .await?;
        let micros = |us: i64| Duration::from_micros(u64::try_from(us).unwrap_or(0));
        Ok(if allowed == 1 {
            Decision::Allowed {
                remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
                reset: micros(reset_us),
            }
        } else {
            Decision::Limited {
                retry_after: micros(retry_us),
            }
        })
    }

    fn elapsed_ms(&self) -> u64 {
        millis(self.start.elapsed())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
