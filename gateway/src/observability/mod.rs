//! Observability: Prometheus metrics, the access log, W3C trace context.

pub mod access_log;
pub mod graphql;
pub mod load;
pub mod metrics;
pub mod otel;
pub mod trace;
pub mod traffic;

pub use metrics::Metrics;
