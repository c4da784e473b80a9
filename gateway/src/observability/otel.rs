//! The gateway's own spans, exported over OTLP (`tracing:`).
//!
//! Spans are `tracing` spans of target [`TARGET`] at TRACE level, which the
//! log output never shows; `switchyard run` and `demo` add the OpenTelemetry
//! layer ([`layer`]) to the process's subscriber when the config has
//! `tracing:` (read before the subscriber is set: the section is bound at
//! start). Without it (and in tests that run the gateway in-process) the
//! spans are disabled callsites: a static level check per request.
//!
//! Per request: a server span `request` whose parent is the client's
//! `traceparent` (or none: the gateway starts the trace); the request then
//! carries the span's own context as its `traceparent`, so the upstream's
//! spans are its children. Per upstream call: a client span `upstream`
//! under it.

use std::time::Duration;

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{BatchConfigBuilder, Sampler, SdkTracerProvider};
use tracing::{Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::{Layer, Registry};

use crate::config::tracing::TracingConfig;

/// The target of the gateway's spans (the plugins' spans share it).
pub const TARGET: &str = switchyard_plugins::traced::SPAN_TARGET;

/// The OpenTelemetry layer for the process's subscriber, exporting as
/// `config` says, and its provider (shut it down to send what is left).
/// Only the spans of [`TARGET`] reach it; without it those spans are
/// disabled (TRACE is above every log level the logs use). Must be called
/// on a tokio runtime (the batch exporter runs there).
pub fn layer(
    config: &TracingConfig,
) -> Result<(impl Layer<Registry> + Send + Sync, SdkTracerProvider), String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(config.otlp_endpoint.clone())
        .build()
        .map_err(|e| format!("tracing.otlp_endpoint: {e}"))?;
    let batch = BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(config.export_interval.0.max(Duration::from_millis(10)))
                .with_max_queue_size(config.max_queue.max(1))
                .build(),
        )
        .build();
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
        config.sample_ratio.clamp(0.0, 1.0),
    )));
    let provider = SdkTracerProvider::builder()
        .with_span_processor(batch)
        .with_resource(resource)
        .with_sampler(sampler)
        .build();
    switchyard_plugins::traced::enable();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("switchyard"))
        .with_filter(Targets::new().with_target(TARGET, Level::TRACE));
    Ok((layer, provider))
}

/// The request's server span (disabled unless spans are exported), its
/// parent taken from the request's `traceparent`; the request then carries
/// the span's context as its `traceparent` instead.
pub fn request_span(method: &http::Method, headers: &mut HeaderMap) -> Span {
    let span = tracing::trace_span!(
        target: TARGET,
        "request",
        otel.kind = "server",
        http.request.method = %method,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    if span.is_disabled() {
        return span;
    }
    let propagator = TraceContextPropagator::new();
    let parent = propagator.extract(&Headers(headers));
    let _ = span.set_parent(parent);
    propagator.inject_context(&span.context(), &mut HeadersMut(headers));
    span
}

/// Names a started span (`GET /v1/users/{id}`: known once routed).
pub fn rename(span: &Span, name: String) {
    use opentelemetry::trace::TraceContextExt as _;
    span.context().span().update_name(name);
}

/// A client span for one upstream call (disabled unless spans are exported).
pub fn upstream_span(upstream: &str, path: &str) -> Span {
    tracing::trace_span!(
        target: TARGET,
        "upstream",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "client",
        rpc.system = "grpc",
        upstream = %upstream,
        rpc.grpc.status_code = tracing::field::Empty,
    )
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}
