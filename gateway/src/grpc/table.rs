//! The methods gRPC clients reach, by request path
//! (`/{package.Service}/{Method}`), per host as the REST routes are; the
//! WebSocket clients of `routes[].websocket` reach methods at the same paths.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use prometheus::IntCounter;
use prost_reflect::MethodDescriptor;
use switchyard_plugins::error::Code;

use super::Protocol;
use crate::config::GrpcExposure;
use crate::routing::RouteCtx;
use crate::routing::hosts::host_rank;

/// One method exposed to gRPC (or WebSocket) clients by one route.
#[derive(Debug)]
pub struct GrpcTarget {
    pub route: Arc<RouteCtx>,
    pub rpc: MethodDescriptor,
    pub exposure: GrpcExposure,
    /// WebSocket clients reach it too (`routes[].websocket`).
    pub websocket: bool,
    /// `/{package.Service}/{Method}`.
    pub path: http::uri::PathAndQuery,
    /// `grpc_calls_total` of the route by protocol (gRPC, gRPC-Web) and
    /// code, resolved on first use (no label lookup per call).
    calls: [[OnceLock<IntCounter>; 17]; 2],
}

/// The match handed to the route's pipeline in the request extensions.
#[derive(Clone, Debug)]
pub struct GrpcMatched {
    pub target: Arc<GrpcTarget>,
    pub protocol: Protocol,
    /// A CORS preflight (`OPTIONS`) for a gRPC-Web method: the handler
    /// answers 204 when no `cors` plugin did.
    pub preflight: bool,
}

/// Every method exposed to gRPC clients in a config version.
#[derive(Debug, Default)]
pub struct GrpcMethods {
    by_path: HashMap<String, Vec<Arc<GrpcTarget>>>,
    /// Whether some route names hosts (else the request's host is not
    /// looked at).
    by_host: bool,
}

/// Two routes expose the same method for the same host.
#[derive(Debug, thiserror::Error)]
#[error("{method} is already exposed to gRPC clients by route `{existing}` for the same hosts")]
pub struct GrpcConflict {
    pub method: String,
    pub existing: String,
}

// === impl GrpcTarget ===

impl GrpcTarget {
    pub fn new(
        route: Arc<RouteCtx>,
        rpc: MethodDescriptor,
        exposure: GrpcExposure,
        websocket: bool,
        path: http::uri::PathAndQuery,
    ) -> GrpcTarget {
        GrpcTarget {
            route,
            rpc,
            exposure,
            websocket,
            path,
            calls: Default::default(),
        }
    }

    /// Counts one call that ended with `code`.
    pub fn count(&self, protocol: Protocol, code: i32) {
        let code = Code::from_i32(code);
        self.calls[usize::from(protocol.is_web())][code as usize]
            .get_or_init(|| {
                self.route.metrics.grpc.calls.with_label_values(&[
                    self.route.name.as_str(),
                    protocol.label(),
                    code.name(),
                ])
            })
            .inc();
    }
    /// Whether clients of `protocol` may call it.
    pub fn serves(&self, protocol: Protocol) -> bool {
        match protocol {
            Protocol::Native => self.exposure.passthrough,
            Protocol::Web | Protocol::WebText => self.exposure.web,
        }
    }

    /// Neither client nor server streams: the call has one deadline.
    pub fn is_unary(&self) -> bool {
        !self.rpc.is_client_streaming() && !self.rpc.is_server_streaming()
    }
}

// === impl GrpcMethods ===

impl GrpcMethods {
    /// Adds a route's method; the same method on the same host pattern
    /// (or on any host) twice is a conflict.
    pub fn insert(&mut self, target: GrpcTarget) -> Result<(), GrpcConflict> {
        let targets = self
            .by_path
            .entry(target.path.as_str().to_owned())
            .or_default();
        let overlaps = |other: &GrpcTarget| {
            let (a, b) = (&other.route.hosts, &target.route.hosts);
            (a.is_empty() && b.is_empty()) || a.iter().any(|h| b.contains(h))
        };
        if let Some(existing) = targets.iter().find(|t| overlaps(t)) {
            return Err(GrpcConflict {
                method: target.rpc.full_name().to_owned(),
                existing: existing.route.name.clone(),
            });
        }
        self.by_host |= !target.route.hosts.is_empty();
        targets.push(Arc::new(target));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }

    /// Every exposed method (once per route exposing it).
    pub fn targets(&self) -> impl Iterator<Item = &Arc<GrpcTarget>> {
        self.by_path.values().flatten()
    }

    /// The target for a request to `path` on `host` (asked for only when a
    /// route names hosts): a route naming the host exactly, else the longest
    /// matching wildcard, else one for any host.
    pub fn find(
        &self,
        path: &str,
        host: impl FnOnce() -> Option<String>,
    ) -> Option<&Arc<GrpcTarget>> {
        let targets = self.by_path.get(path)?;
        let host = if self.by_host { host() } else { None };
        let host = host.as_deref();
        targets
            .iter()
            .filter_map(|t| Some((host_rank(&t.route.hosts, host)?, t)))
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, t)| t)
    }
}

#[cfg(test)]
mod tests {
    use crate::routing::hosts::host_rank as rank;

    fn hosts(list: &[&str]) -> Vec<String> {
        list.iter().map(|h| h.to_string()).collect()
    }

    #[test]
    fn an_exact_host_beats_a_wildcard_which_beats_any_host() {
        let host = Some("api.example.com");
        let exact = rank(&hosts(&["api.example.com"]), host).unwrap();
        let wildcard = rank(&hosts(&["*.example.com"]), host).unwrap();
        let any = rank(&[], host).unwrap();
        assert!(exact > wildcard && wildcard > any);
        assert_eq!(rank(&hosts(&["*.example.com"]), Some("example.com")), None);
        assert_eq!(rank(&hosts(&["other.example.com"]), host), None);
        assert_eq!(rank(&hosts(&["api.example.com"]), None), None);
    }
}
