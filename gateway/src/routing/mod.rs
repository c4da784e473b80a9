//! Routing: the per-config-version route table (HTTP method + path template →
//! binding) and the per-route context every binding shares.

pub mod path_router;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use prost_reflect::{MessageDescriptor, SerializeOptions};
use switchyard_plugins::error::{Code, ErrorResponse};

use crate::config::JsonOptions;
use crate::observability::Metrics;
use crate::transcode::binding::Binding;
use crate::upstream::Upstream;
use path_router::{PathRouter, PathRouterBuilder};

/// What every binding of one route shares.
#[derive(Debug)]
pub struct RouteCtx {
    /// Index in `routes:` of the config.
    pub index: usize,
    pub name: String,
    pub upstream: Upstream,
    pub timeout: Duration,
    pub max_body: usize,
    pub json: JsonOptions,
    pub serialize: SerializeOptions,
    pub headers: HeaderForwarding,
    /// `google.rpc.Status`, resolved once, to render upstream error details
    /// (always in the pool: the loader embeds it).
    pub rpc_status: Option<MessageDescriptor>,
    pub metrics: Arc<Metrics>,
}

/// Header ↔ metadata rules, compiled.
#[derive(Clone, Debug)]
pub struct HeaderForwarding {
    pub forward: Vec<HeaderName>,
    pub forward_prefixes: Vec<String>,
    pub response_prefix: String,
}

/// The match handed to the route's pipeline in the request extensions.
#[derive(Clone, Debug)]
pub struct Matched {
    pub binding: Arc<Binding>,
    /// Decoded path-variable values, in template order.
    pub captures: Vec<String>,
}

/// The route table of one config version.
#[derive(Debug, Default)]
pub struct RouteTable {
    by_method: HashMap<Method, PathRouter<Arc<Binding>>>,
}

/// Collects bindings and builds the table.
#[derive(Default)]
pub struct RouteTableBuilder {
    by_method: HashMap<Method, PathRouterBuilder<Arc<Binding>>>,
    /// (method, shape) → the binding already there, for conflict messages.
    seen: HashMap<(Method, String), Arc<Binding>>,
}

/// Two bindings claim the same method and path.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{new}` of {new_rpc} conflicts with `{existing}` of {existing_rpc} (route {existing_route:?})"
)]
pub struct Conflict {
    pub new: String,
    pub new_rpc: String,
    pub existing: String,
    pub existing_rpc: String,
    pub existing_route: String,
}

// === impl HeaderForwarding ===

impl HeaderForwarding {
    /// Headers that never cross between HTTP and gRPC metadata: hop-by-hop
    /// headers, and those gRPC itself owns.
    pub fn is_reserved(name: &str) -> bool {
        name.starts_with("grpc-")
            || name.starts_with(':')
            || matches!(
                name,
                "connection"
                    | "keep-alive"
                    | "proxy-connection"
                    | "proxy-authorization"
                    | "transfer-encoding"
                    | "upgrade"
                    | "te"
                    | "trailer"
                    | "host"
                    | "content-type"
                    | "content-length"
                    | "user-agent"
                    | "accept-encoding"
                    | "content-encoding"
            )
    }
}

// === impl RouteTableBuilder ===

impl RouteTableBuilder {
    pub fn insert(&mut self, binding: Arc<Binding>) -> Result<(), Conflict> {
        let method = binding.http_method.clone();
        let key = (method.clone(), binding.template.shape());
        if let Some(existing) = self.seen.get(&key) {
            return Err(Conflict {
                new: binding.describe(),
                new_rpc: binding.rpc.full_name().to_owned(),
                existing: existing.describe(),
                existing_rpc: existing.rpc.full_name().to_owned(),
                existing_route: existing.route.name.clone(),
            });
        }
        self.seen.insert(key, binding.clone());
        let template = binding.template.clone();
        let describe = binding.describe();
        self.by_method
            .entry(method)
            .or_default()
            .insert(template, binding)
            .map_err(|e| Conflict {
                new: describe,
                new_rpc: String::new(),
                existing: e.to_string(),
                existing_rpc: String::new(),
                existing_route: String::new(),
            })
    }

    pub fn build(self) -> RouteTable {
        RouteTable {
            by_method: self
                .by_method
                .into_iter()
                .map(|(m, b)| (m, b.build()))
                .collect(),
        }
    }
}

// === impl RouteTable ===

impl RouteTable {
    /// Finds the binding for a request, or the error response to send:
    /// 400 for an undecodable path, 405 (with `Allow`) when only other methods
    /// match, 404 otherwise.
    pub fn lookup(&self, method: &Method, path: &str) -> Result<Matched, ErrorResponse> {
        let bad_path = |e: path_router::PathError| {
            ErrorResponse::new(Code::InvalidArgument, format!("invalid request path: {e}"))
        };
        if let Some(router) = self.by_method.get(method)
            && let Some(m) = router.at(path).map_err(bad_path)?
        {
            return Ok(Matched {
                binding: m.value.clone(),
                captures: m.captures,
            });
        }
        let mut allowed: Vec<&str> = self
            .by_method
            .iter()
            .filter(|(m, router)| *m != method && matches!(router.at(path), Ok(Some(_))))
            .map(|(m, _)| m.as_str())
            .collect();
        if allowed.is_empty() {
            return Err(ErrorResponse::new(
                Code::NotFound,
                format!("no route for {method} {path}"),
            ));
        }
        allowed.sort_unstable();
        let allow = allowed.join(", ");
        let err = ErrorResponse::with_status(
            StatusCode::METHOD_NOT_ALLOWED,
            Code::Unimplemented,
            format!("method {method} is not allowed on {path}; allowed: {allow}"),
        );
        Err(match HeaderValue::from_str(&allow) {
            Ok(value) => err.with_header(header::ALLOW, value),
            Err(_) => err,
        })
    }

    /// Every binding, for the admin route table and OpenAPI.
    pub fn bindings(&self) -> impl Iterator<Item = &Arc<Binding>> {
        self.by_method
            .values()
            .flat_map(|r| r.iter().map(|(_, b)| b))
    }

    pub fn len(&self) -> usize {
        self.by_method.values().map(PathRouter::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
