//! Observability: Prometheus metrics (and, later, tracing and access logs).

pub mod metrics;

pub use metrics::Metrics;
