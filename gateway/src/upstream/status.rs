//! What `/admin/upstreams` shows of an upstream and its endpoints.

use serde::Serialize;

/// One upstream.
#[derive(Debug, Serialize)]
pub struct UpstreamStatus {
    pub name: String,
    /// Some endpoint is in service.
    pub serving: bool,
    /// `/readyz` waits for it (`upstreams.<name>.critical`).
    pub critical: bool,
    /// Calls in flight, all endpoints.
    pub in_flight: usize,
    pub endpoints: Vec<EndpointStatus>,
}

/// One endpoint.
#[derive(Debug, Serialize)]
pub struct EndpointStatus {
    /// `host:port`.
    pub address: String,
    /// The balancer may choose it: not ejected, not just refused a
    /// connection, not failing its health checks.
    pub in_service: bool,
    /// The active health checks' verdict (`true` without health checks).
    pub healthy: bool,
    /// Ejected after consecutive failures and not yet answered since.
    pub circuit_open: bool,
    /// How much longer the current ejection lasts.
    pub ejected_for_ms: Option<u64>,
    pub consecutive_failures: u32,
    /// Ejections so far (the back-off's exponent; starts over after a
    /// quiet `max_ejection`).
    pub ejections: u32,
    pub in_flight: usize,
}
