//! `access_log:`: one JSON line per request (docs/operations.md).

use schemars::JsonSchema;
use serde::Deserialize;

/// The access log: one JSON line per request (time, request and trace ids,
/// route, method, path template, status, gRPC status, upstream, duration,
/// bytes, consumer, client address; never bodies or credentials). Off when
/// absent.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// `stdout` (default), `stderr`, or a file (appended to; a relative path
    /// is relative to the config file). After rotating the file away, a
    /// config reload opens a new one.
    #[serde(default = "default_output")]
    pub output: String,
    /// The share of requests logged, from 0 to 1 (default 1: all). Failed
    /// exchanges (5xx, or a gRPC status other than OK in the response head)
    /// are logged whatever the sample.
    #[serde(default = "default_sample")]
    pub sample: f64,
    /// Lines waiting for the writer thread, at most; past it lines are
    /// dropped and counted (`access_log_dropped_total`), never waited for.
    /// Default 65536.
    #[serde(default = "default_buffer_lines")]
    pub buffer_lines: usize,
}

fn default_output() -> String {
    "stdout".into()
}

fn default_sample() -> f64 {
    1.0
}

fn default_buffer_lines() -> usize {
    65_536
}
