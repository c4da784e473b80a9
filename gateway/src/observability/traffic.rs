//! The metrics of declarative edge logic (docs/edge-logic.md) and of the
//! response cache (docs/caching.md).

use prometheus::core::Collector;
use prometheus::{IntCounterVec, IntGauge, Opts};

/// Edge rules, splits, mirrors and the response cache.
#[derive(Clone, Debug)]
pub struct TrafficMetrics {
    /// Requests of split routes by route and the variant that served them.
    pub split_requests: IntCounterVec,
    /// Requests an edge rule answered or rewrote, by rule and action.
    pub edge_rules: IntCounterVec,
    /// Mirrored copies by route and outcome.
    pub mirror_requests: IntCounterVec,
    /// The response cache's lookups, evictions and size.
    pub cache: crate::cache::CacheMetrics,
    /// Proxied requests that failed upstream, by proxy and kind.
    pub proxy_errors: IntCounterVec,
}

/// A labelled counter family (its definition is static, so it cannot fail).
pub(super) fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition")
}

impl TrafficMetrics {
    pub fn new() -> TrafficMetrics {
        TrafficMetrics {
            split_requests: counter(
                "split_requests_total",
                "Requests of routes with a `split`, by route and the variant chosen.",
                &["route", "variant"],
            ),
            edge_rules: counter(
                "edge_rule_requests_total",
                "Requests an edge rule applied to, by rule and action (redirect, respond, rewrite).",
                &["rule", "action"],
            ),
            mirror_requests: counter(
                "mirror_requests_total",
                "Copies of calls sent to routes' shadow upstreams (`mirror`), by route and outcome: ok, error (the upstream metrics tell which), skipped (max_concurrent copies in flight).",
                &["route", "outcome"],
            ),
            proxy_errors: counter(
                "proxy_upstream_errors_total",
                "Requests of `proxies` that failed upstream, by proxy and kind: connect (refused or timed out: 502), timeout (no response head within the timeout: 504), broken (the connection failed mid-exchange: 502), saturated (max_concurrent: 503).",
                &["proxy", "kind"],
            ),
            cache: crate::cache::CacheMetrics {
                requests: counter(
                    "cache_requests_total",
                    "Cached routes' GETs and GraphQL query fields by route and cache status: hit, stale (served while refreshed), miss, refresh (client no-cache), bypass (client no-store).",
                    &["route", "status"],
                ),
                evictions: counter(
                    "cache_evictions_total",
                    "Cache entries removed, by cause: size (room for others), expired, purged.",
                    &["cause"],
                ),
                bytes: IntGauge::new("cache_bytes", "Bytes the response cache holds.")
                    .expect("static metric definition"),
                shared: counter(
                    "cache_shared_total",
                    "The response cache's Redis tier (`cache.redis`), by outcome: hit, miss, stored, error (an operation failed or passed its timeout).",
                    &["outcome"],
                ),
            },
        }
    }

    /// Every family, to register.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.split_requests.clone()),
            Box::new(self.edge_rules.clone()),
            Box::new(self.mirror_requests.clone()),
            Box::new(self.cache.requests.clone()),
            Box::new(self.cache.evictions.clone()),
            Box::new(self.cache.bytes.clone()),
            Box::new(self.cache.shared.clone()),
            Box::new(self.proxy_errors.clone()),
        ]
    }
}

impl Default for TrafficMetrics {
    fn default() -> Self {
        TrafficMetrics::new()
    }
}
