//! One quota of a `rate_limit` plugin — the route's, or a consumer's own
//! (`consumers:`): its limiter, its `RateLimit-Policy` header, its answers.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, header};

use super::local::{self, LocalLimiter};
use super::redis::RedisLimiter;
use super::{BackendConfig, MAX_WINDOW, RATELIMIT, RATELIMIT_POLICY, Rate, RateLimitConfig};
use crate::error::{Code, ErrorResponse};
use crate::metrics::RateLimitCounters;
use crate::stage::Response;

/// A quota and where it is counted.
pub(super) struct Policy {
    pub(super) limiter: Limiter,
    /// `"<name>"`, the policy's identifier as an sf-string.
    name: String,
    /// The `RateLimit-Policy` value: `"<name>";q=<N>;w=<secs>`.
    header: HeaderValue,
    pub(super) counters: RateLimitCounters,
}

/// The state backend.
pub(super) enum Limiter {
    Local(LocalLimiter),
    Redis(Arc<RedisLimiter>),
}

// === impl Policy ===

impl Policy {
    /// `rate`/`burst` on `config`'s backend; `backend_name` names the
    /// counters in a shared backend (the policy name, or `name@consumer`).
    pub(super) fn new(
        config: &RateLimitConfig,
        rate_text: &str,
        burst: Option<u32>,
        backend_name: &str,
        counters: RateLimitCounters,
    ) -> Result<Policy, String> {
        let rate = Rate::parse(rate_text)?;
        let burst = match burst {
            None => rate.count,
            Some(b) => NonZeroU32::new(b).ok_or("burst must be at least 1")?,
        };
        let refill = rate.period.duration() / rate.count.get() * burst.get();
        if refill > MAX_WINDOW {
            return Err(format!(
                "burst {burst} is too large for rate {rate_text:?}: refilling it would take more than a year"
            ));
        }
        let limiter = match &config.backend {
            BackendConfig::Local => Limiter::Local(LocalLimiter::new(
                local::quota(rate.count, rate.period, burst),
                config.max_keys,
            )),
            BackendConfig::Redis(redis) => Limiter::Redis(Arc::new(RedisLimiter::new(
                redis,
                backend_name,
                rate,
                burst,
                config.max_keys,
            )?)),
        };
        let name = format!("\"{}\"", config.name);
        let header = format!(
            "{name};q={};w={}",
            rate.count,
            rate.period.duration().as_secs()
        );
        let header = HeaderValue::try_from(header).map_err(|e| e.to_string())?;
        Ok(Policy {
            limiter,
            name,
            header,
            counters,
        })
    }

    /// `"<name>";r=<remaining>;t=<secs>`.
    fn ratelimit(&self, remaining: u32, secs: u64) -> Option<HeaderValue> {
        HeaderValue::try_from(format!("{};r={remaining};t={secs}", self.name)).ok()
    }

    /// The headers of an allowed response.
    pub(super) fn allowed_headers(
        &self,
        remaining: u32,
        reset: Duration,
    ) -> Option<[(HeaderName, HeaderValue); 2]> {
        self.ratelimit(remaining, ceil_secs(reset))
            .map(|value| [(RATELIMIT_POLICY, self.header.clone()), (RATELIMIT, value)])
    }

    /// The 503 of a `fail_closed` limit whose backend could not decide.
    pub(super) fn unavailable(&self) -> Response {
        ErrorResponse::new(Code::Unavailable, "rate limiter unavailable")
            .with_header(RATELIMIT_POLICY, self.header.clone())
            .into_response()
    }

    /// The 429 for a request that may retry after `wait`.
    pub(super) fn refusal(&self, wait: Duration) -> Response {
        let secs = ceil_secs(wait).max(1);
        let mut error = ErrorResponse::new(Code::ResourceExhausted, "rate limit exceeded")
            .with_details(vec![serde_json::json!({
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": format!("{secs}s"),
            })])
            .with_header(header::RETRY_AFTER, HeaderValue::from(secs))
            .with_header(RATELIMIT_POLICY, self.header.clone());
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
