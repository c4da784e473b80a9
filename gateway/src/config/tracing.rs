//! `tracing:`: the gateway's own spans, exported over OTLP.

use schemars::JsonSchema;
use serde::Deserialize;

use super::units::HumanDuration;

/// Spans of the gateway's own (each request, each upstream call), exported
/// to an OpenTelemetry collector over OTLP/gRPC. Off when absent (the W3C
/// trace context is propagated either way). Bound at start: a reload that
/// changes it is refused.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// The collector's OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317`.
    pub otlp_endpoint: String,
    /// `service.name` of the spans. Default `switchyard`.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// The share of the traces the gateway starts (requests without a
    /// `traceparent`) that are recorded, from 0 to 1 (default 1). A
    /// request with a `traceparent` follows its sampled flag.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
    /// How often finished spans are sent, in batches. Default 1s.
    #[serde(default = "default_export_interval")]
    pub export_interval: HumanDuration,
    /// Spans waiting to be sent, at most; past it new spans are dropped.
    /// Default 8192.
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
}

fn default_service_name() -> String {
    "switchyard".into()
}

fn default_sample_ratio() -> f64 {
    1.0
}

fn default_export_interval() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(1))
}

fn default_max_queue() -> usize {
    8192
}
