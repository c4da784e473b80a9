//! Routing: the per-config-version route table (HTTP method + path template →
//! binding) and the per-route context every binding shares.

pub mod normalize;
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
use path_router::{PathRouter, PathRouterBuilder, RouteMatch};

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
    /// Set for an `OPTIONS` request on a path served for other methods: the
    /// `Allow` list. The handler answers it (204) instead of calling upstream.
    pub options_allow: Option<HeaderValue>,
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
    /// match, 404 otherwise. `OPTIONS` on a path served for other methods goes
    /// to one of those bindings' routes, marked with the `Allow` list, so the
    /// route's plugins (CORS preflights) see it and the handler can answer it.
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
                options_allow: None,
            });
        }
        let mut others: Vec<(&Method, RouteMatch<'_, Arc<Binding>>)> = self
            .by_method
            .iter()
            .filter(|(m, _)| *m != method)
            .filter_map(|(m, router)| router.at(path).ok().flatten().map(|found| (m, found)))
            .collect();
        if others.is_empty() {
            return Err(ErrorResponse::new(
                Code::NotFound,
                format!("no route for {method} {path}"),
            ));
        }
        others.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let allow = others
            .iter()
            .map(|(m, _)| m.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let allow_value = HeaderValue::from_str(&allow).ok();
        if *method == Method::OPTIONS {
            let (_, found) = others.swap_remove(0);
            return Ok(Matched {
                binding: found.value.clone(),
                captures: found.captures,
                options_allow: allow_value.or_else(|| Some(HeaderValue::from_static("OPTIONS"))),
            });
        }
        let err = ErrorResponse::with_status(
            StatusCode::METHOD_NOT_ALLOWED,
            Code::Unimplemented,
            format!("method {method} is not allowed on {path}; allowed: {allow}"),
        );
        Err(match allow_value {
            Some(value) => err.with_header(header::ALLOW, value),
            None => err,
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
