//! The gateway's Prometheus metrics. One registry per process, shared by
//! every config version, so counters survive reloads.

use std::time::Duration;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use switchyard_plugins::error::Code;
use switchyard_plugins::metrics::PluginMetrics;

use crate::upstream::outlier::EndpointMetrics;
use crate::upstream::retry::UpstreamMetrics;

/// Latency buckets (seconds) from 0.5 ms to 10 s: gateway hops are sub-millisecond,
/// upstream calls span milliseconds to seconds.
/// Event delivery: from milliseconds (a broker that is up) to hours (one
/// that was down).
const DELIVERY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0,
];

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The GraphQL subscription metrics (`graphql::subscriptions`).
#[derive(Clone, Debug)]
pub struct SubscriptionMetrics {
    pub open: IntGaugeVec,
    pub events: IntCounterVec,
    pub refused: IntCounterVec,
}

/// The domain-event metrics (`events`).
#[derive(Clone, Debug)]
pub struct EventMetrics {
    pub events: IntCounterVec,
    pub depth: IntGaugeVec,
    /// Seconds the oldest waiting event of each sink has waited.
    pub oldest_age: GaugeVec,
    /// From append to the sink's acknowledgement, by sink.
    pub delivery: HistogramVec,
    /// Webhook deliveries by sink and HTTP status (`error`: no response).
    pub webhook: IntCounterVec,
}

/// The metrics of gRPC and gRPC-Web clients (`grpc`).
#[derive(Clone, Debug)]
pub struct GrpcMetrics {
    /// Calls by route, protocol and the gRPC status they ended with.
    pub calls: IntCounterVec,
    /// Streaming calls open, by protocol (gRPC, gRPC-Web, SSE, NDJSON).
    pub open_streams: IntGaugeVec,
}

/// The metric families the gateway records.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Every metric's name, `switchyard_` prefix included.
    names: Vec<String>,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    upstream_requests: IntCounterVec,
    upstream_duration: HistogramVec,
    upstream_retries: IntCounterVec,
    upstream_shed: IntCounterVec,
    upstream_in_flight: IntGaugeVec,
    endpoint_healthy: IntGaugeVec,
    endpoint_ejections: IntCounterVec,
    /// Config versions loaded since start (1 after start-up).
    pub config_version: IntGauge,
    /// Reload attempts by result (`ok`, `error`).
    config_reloads: IntCounterVec,
    /// When the running config was loaded (Unix seconds).
    config_loaded_at: prometheus::Gauge,
    /// Access log lines dropped because the writer fell behind.
    pub access_log_dropped: IntCounter,
    /// GraphQL operations and their cost.
    pub graphql: super::graphql::GraphqlMetrics,
    /// Client connections open now and accepted so far, by transport
    /// (`tcp`, `tls`).
    pub connections_open: IntGaugeVec,
    pub connections: IntCounterVec,
    /// TLS handshakes at the edge by outcome (`ok`, `failed`, `timeout`).
    pub tls_handshakes: IntCounterVec,
    /// GraphQL subscriptions open and events sent, by transport.
    pub subscriptions: SubscriptionMetrics,
    /// Domain events by sink and outcome, and the outbox depth per sink.
    pub events: EventMetrics,
    /// Inbound webhook deliveries by endpoint and outcome.
    pub webhooks_received: IntCounterVec,
    /// gRPC and gRPC-Web calls and open streams.
    pub grpc: GrpcMetrics,
    /// Rate-limit decisions Redis could not make, and those a local fallback
    /// took: mirrored from the plugin's process-wide totals at scrape time.
    rate_limit_redis_errors: IntCounter,
    rate_limit_redis_fallbacks: IntCounter,
    /// Serialises the mirroring, so two scrapes cannot add the same delta.
    mirror: std::sync::Mutex<()>,
    /// Auth outcomes and rate-limit decisions, counted by the plugins.
    pub plugins: PluginMetrics,
    tls_reloads: IntCounterVec,
    /// Edge rules, splits, mirrors and the response cache.
    pub traffic: super::traffic::TrafficMetrics,
    /// Admission control: requests shed, the workers' delay and share.
    pub load: super::load::LoadMetrics,
}

// === impl Metrics ===

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("switchyard".into()), None).unwrap_or_default();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status.",
            ),
            &["route", "method", "status"],
        )
        .expect("static metric definition");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from request head to response head, by route and method.",
            )
            .buckets(BUCKETS.to_vec()),
            &["route", "method"],
        )
        .expect("static metric definition");
        let upstream_requests = IntCounterVec::new(
            Opts::new(
                "upstream_requests_total",
                "gRPC calls to upstreams by upstream and gRPC status.",
            ),
            &["upstream", "grpc_status"],
        )
        .expect("static metric definition");
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "upstream_request_duration_seconds",
                "gRPC call latency by upstream.",
            )
            .buckets(BUCKETS.to_vec()),
            &["upstream"],
        )
        .expect("static metric definition");
        let upstream_retries = IntCounterVec::new(
            Opts::new(
                "upstream_retries_total",
                "Upstream call attempts that were retries, by upstream.",
            ),
            &["upstream"],
        )
        .expect("static metric definition");
        let upstream_shed = IntCounterVec::new(
            Opts::new(
                "upstream_shed_total",
                "Upstream calls refused because max_concurrent calls were in flight.",
            ),
            &["upstream"],
        )
        .expect("static metric definition");
        let upstream_in_flight = IntGaugeVec::new(
            Opts::new(
                "upstream_in_flight",
                "Upstream calls in flight, by upstream.",
            ),
            &["upstream"],
        )
        .expect("static metric definition");
        let endpoint_healthy = IntGaugeVec::new(
            Opts::new(
                "upstream_endpoint_healthy",
                "1 while an upstream endpoint takes calls: passing its health checks and not ejected (an ejected endpoint reads 0 until a call to it succeeds).",
            ),
            &["upstream", "endpoint"],
        )
        .expect("static metric definition");
        let endpoint_ejections = IntCounterVec::new(
            Opts::new(
                "upstream_ejections_total",
                "Upstream endpoints ejected after consecutive failed calls.",
            ),
            &["upstream", "endpoint"],
        )
        .expect("static metric definition");
        let config_version = IntGauge::new(
            "config_version",
            "Config versions loaded since the process started.",
        )
        .expect("static metric definition");
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "config_reload_total",
                "Config reload attempts by result (ok, error: the running config kept serving).",
            ),
            &["result"],
        )
        .expect("static metric definition");
        let config_loaded_at = prometheus::Gauge::new(
            "config_last_reload_success_timestamp_seconds",
            "When the running config was loaded, in Unix seconds.",
        )
        .expect("static metric definition");
        config_loaded_at.set(unix_now());
        let connections_open = IntGaugeVec::new(
            Opts::new(
                "connections_open",
                "Client connections open now, by transport (tcp, tls).",
            ),
            &["transport"],
        )
        .expect("static metric definition");
        let connections = IntCounterVec::new(
            Opts::new(
                "connections_total",
                "Client connections accepted (TLS: once the handshake succeeded), by transport.",
            ),
            &["transport"],
        )
        .expect("static metric definition");
        let tls_handshakes = IntCounterVec::new(
            Opts::new(
                "tls_handshakes_total",
                "TLS handshakes at the edge by outcome (ok, failed, timeout).",
            ),
            &["outcome"],
        )
        .expect("static metric definition");
        let access_log_dropped = IntCounter::new(
            "access_log_dropped_total",
            "Access log lines dropped because the writer thread fell behind (access_log.buffer_lines).",
        )
        .expect("static metric definition");
        let subscriptions = SubscriptionMetrics {
            open: IntGaugeVec::new(
                Opts::new(
                    "graphql_subscriptions_open",
                    "GraphQL operations open on a streaming transport (ws, sse).",
                ),
                &["transport"],
            )
            .expect("static metric definition"),
            events: IntCounterVec::new(
                Opts::new(
                    "graphql_subscription_events_total",
                    "GraphQL results sent on a streaming transport (ws, sse).",
                ),
                &["transport"],
            )
            .expect("static metric definition"),
            refused: IntCounterVec::new(
                Opts::new(
                    "graphql_subscriptions_refused_total",
                    "GraphQL streamed operations refused for a subscriptions limit (max_open, max_per_connection).",
                ),
                &["limit"],
            )
            .expect("static metric definition"),
        };
        let webhooks_received = crate::webhooks::received_counter();
        let events = EventMetrics {
            events: IntCounterVec::new(
                Opts::new(
                    "events_total",
                    "Domain events by sink, CloudEvents type (at most 256 distinct, then `other`) and outcome: appended (to the outbox), published (acknowledged by the sink), retried (a failed attempt), dead_lettered, evicted (an older `when_full: drop` event removed to make room), dropped (not stored), rejected (request refused: outbox full).",
                ),
                &["sink", "type", "outcome"],
            )
            .expect("static metric definition"),
            depth: IntGaugeVec::new(
                Opts::new(
                    "outbox_depth",
                    "Events waiting in the outbox, by sink.",
                ),
                &["sink"],
            )
            .expect("static metric definition"),
            oldest_age: GaugeVec::new(
                Opts::new(
                    "outbox_oldest_age_seconds",
                    "How long the oldest event waiting for each sink has waited (0: none waits).",
                ),
                &["sink"],
            )
            .expect("static metric definition"),
            delivery: HistogramVec::new(
                HistogramOpts::new(
                    "event_delivery_seconds",
                    "From an event's append to the outbox to its sink's acknowledgement, by sink.",
                )
                .buckets(DELIVERY_BUCKETS.to_vec()),
                &["sink"],
            )
            .expect("static metric definition"),
            webhook: IntCounterVec::new(
                Opts::new(
                    "webhook_deliveries_total",
                    "Webhook delivery attempts by sink and HTTP status (`error`: no response: refused, timed out, blocked target).",
                ),
                &["sink", "status"],
            )
            .expect("static metric definition"),
        };
        let tls_reloads = IntCounterVec::new(
            Opts::new(
                "tls_reloads_total",
                "TLS listener files that changed, by listener and outcome: reloaded (new connections get them) or failed (they do not load; the previous ones stay).",
            ),
            &["listener", "outcome"],
        )
        .expect("static metric definition");
        let grpc = GrpcMetrics {
            calls: IntCounterVec::new(
                Opts::new(
                    "grpc_calls_total",
                    "Calls of gRPC, gRPC-Web and WebSocket clients by route, protocol (grpc, grpc-web, websocket) and the gRPC status they ended with (refusals of gRPC calls by plugins included).",
                ),
                &["route", "protocol", "code"],
            )
            .expect("static metric definition"),
            open_streams: IntGaugeVec::new(
                Opts::new(
                    "streams_open",
                    "Streaming calls open now, by protocol: grpc and grpc-web (passed through), sse and ndjson (server-streaming methods over REST), websocket.",
                ),
                &["protocol"],
            )
            .expect("static metric definition"),
        };
        let rate_limit_redis_errors = IntCounter::new(
            "rate_limit_redis_errors_total",
            "Rate-limit decisions Redis could not make (unreachable, timed out, script error).",
        )
        .expect("static metric definition");
        let rate_limit_redis_fallbacks = IntCounter::new(
            "rate_limit_redis_fallbacks_total",
            "Rate-limit decisions taken by the local fallback while Redis was unavailable.",
        )
        .expect("static metric definition");
        let traffic = super::traffic::TrafficMetrics::new();
        let load = super::load::LoadMetrics::new();
        let mut names: Vec<String> = Vec::new();
        for collector in traffic
            .collectors()
            .into_iter()
            .chain(load.collectors())
            .chain([
                Box::new(rate_limit_redis_errors.clone()) as Box<dyn prometheus::core::Collector>,
                Box::new(rate_limit_redis_fallbacks.clone()),
                Box::new(http_requests.clone()),
                Box::new(http_duration.clone()),
                Box::new(upstream_requests.clone()),
                Box::new(upstream_duration.clone()),
                Box::new(upstream_retries.clone()),
                Box::new(upstream_shed.clone()),
                Box::new(upstream_in_flight.clone()),
                Box::new(endpoint_healthy.clone()),
                Box::new(endpoint_ejections.clone()),
                Box::new(config_version.clone()),
                Box::new(config_reloads.clone()),
                Box::new(config_loaded_at.clone()),
                Box::new(access_log_dropped.clone()),
                Box::new(connections_open.clone()),
                Box::new(connections.clone()),
                Box::new(tls_handshakes.clone()),
                Box::new(subscriptions.open.clone()),
                Box::new(subscriptions.events.clone()),
                Box::new(subscriptions.refused.clone()),
                Box::new(events.events.clone()),
                Box::new(events.depth.clone()),
                Box::new(events.oldest_age.clone()),
                Box::new(events.delivery.clone()),
                Box::new(events.webhook.clone()),
                Box::new(webhooks_received.clone()),
                Box::new(tls_reloads.clone()),
                Box::new(grpc.calls.clone()),
                Box::new(grpc.open_streams.clone()),
            ])
        {
            names.extend(collector.desc().iter().map(|d| d.fq_name.clone()));
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        let graphql = super::graphql::GraphqlMetrics::new();
        graphql
            .register(&registry)
            .expect("metric names are unique");
        let plugins = PluginMetrics::new();
        plugins
            .register(&registry)
            .expect("metric names are unique");
        names.extend(graphql.names());
        names.extend(plugins.names());
        let names = names
            .into_iter()
            .map(|n| format!("switchyard_{n}"))
            .collect();
        Metrics {
            plugins,
            registry,
            names,
            http_requests,
            http_duration,
            upstream_requests,
            upstream_duration,
            upstream_retries,
            upstream_shed,
            upstream_in_flight,
            endpoint_healthy,
            endpoint_ejections,
            config_version,
            config_reloads,
            config_loaded_at,
            access_log_dropped,
            graphql,
            connections_open,
            connections,
            tls_handshakes,
            subscriptions,
            events,
            webhooks_received,
            grpc,
            rate_limit_redis_errors,
            rate_limit_redis_fallbacks,
            tls_reloads,
            traffic,
            load,
            mirror: std::sync::Mutex::new(()),
        }
    }

    /// Every metric's name (`switchyard_…`), whether or not it has a value
    /// yet (the dashboards' names are checked against it).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Counts a reload attempt; a successful one also sets the load time.
    pub fn config_reloads(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.config_reloads.with_label_values(&[result]).inc();
        if ok {
            self.config_loaded_at.set(unix_now());
        }
    }

    /// `tls_reloads_total`, for the listeners' certificate watchers.
    pub fn tls_reloads(&self) -> IntCounterVec {
        self.tls_reloads.clone()
    }

    /// The retry, load-shedding and in-flight metrics of one upstream.
    pub fn for_upstream(&self, upstream: &str) -> UpstreamMetrics {
        UpstreamMetrics {
            retries: self.upstream_retries.with_label_values(&[upstream]),
            shed: self.upstream_shed.with_label_values(&[upstream]),
            in_flight: self.upstream_in_flight.with_label_values(&[upstream]),
        }
    }

    /// The health gauge and ejection counter of one upstream endpoint.
    pub fn for_endpoint(&self, upstream: &str, endpoint: &str) -> EndpointMetrics {
        EndpointMetrics {
            healthy: self
                .endpoint_healthy
                .with_label_values(&[upstream, endpoint]),
            ejections: self
                .endpoint_ejections
                .with_label_values(&[upstream, endpoint]),
        }
    }

    /// Records one HTTP exchange. `route` is the route's name, or `-` when no route matched.
    pub fn observe_http(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let mut buf = itoa_buf();
        let status = format_status(status, &mut buf);
        self.http_requests
            .with_label_values(&[route, method, status])
            .inc();
        self.http_duration
            .with_label_values(&[route, method])
            .observe(elapsed.as_secs_f64());
    }

    /// Records one upstream call.
    pub fn observe_upstream(&self, upstream: &str, code: Code, elapsed: Duration) {
        self.upstream_requests
            .with_label_values(&[upstream, code.name()])
            .inc();
        self.upstream_duration
            .with_label_values(&[upstream])
            .observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.mirror_plugin_totals();
        let mut out = Vec::new();
        // Encoding into a Vec only fails on invalid metric families, which the
        // constructors above rule out.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Brings counters kept by plugins (which have no registry) up to date.
    fn mirror_plugin_totals(&self) {
        let _one_at_a_time = self
            .mirror
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (counter, total) in [
            (
                &self.rate_limit_redis_errors,
                switchyard_plugins::rate_limit::redis_errors(),
            ),
            (
                &self.rate_limit_redis_fallbacks,
                switchyard_plugins::rate_limit::redis_fallbacks(),
            ),
        ] {
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn itoa_buf() -> [u8; 3] {
    [b'0'; 3]
}

/// Formats a 3-digit status without allocating.
fn format_status(status: u16, buf: &mut [u8; 3]) -> &str {
    let s = status.min(999);
    buf[0] = b'0' + (s / 100) as u8;
    buf[1] = b'0' + (s / 10 % 10) as u8;
    buf[2] = b'0' + (s % 10) as u8;
    std::str::from_utf8(buf).unwrap_or("000")
}

/// Seconds since the Unix epoch, now.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_requests_and_upstream_calls_in_the_exposition() {
        let m = Metrics::new();
        m.observe_http("users", "GET", 200, Duration::from_millis(3));
        m.observe_http("users", "GET", 404, Duration::from_millis(1));
        m.observe_upstream("users", Code::NotFound, Duration::from_millis(1));
        let text = m.render();
        assert!(
            text.contains(
                r#"switchyard_http_requests_total{method="GET",route="users",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"switchyard_http_requests_total{method="GET",route="users",status="404"} 1"#
        ));
        assert!(text.contains(
            r#"switchyard_upstream_requests_total{grpc_status="NOT_FOUND",upstream="users"} 1"#
        ));
        assert!(text.contains("switchyard_http_request_duration_seconds_bucket"));
    }
}
