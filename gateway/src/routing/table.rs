//! One host's route table: HTTP method + path template → binding.

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderValue, Method, StatusCode, header};
use switchyard_plugins::error::{Code, ErrorResponse};

use super::path_router::{self, PathRouter, PathRouterBuilder, RouteMatch};
use super::{Conflict, Matched};
use crate::transcode::binding::Binding;

/// The routes of one host pattern (or of any host).
#[derive(Debug, Default)]
pub struct PathTable {
    by_method: HashMap<Method, PathRouter<Arc<Binding>>>,
}

/// Collects bindings and builds the table.
#[derive(Default)]
pub struct PathTableBuilder {
    by_method: HashMap<Method, PathRouterBuilder<Arc<Binding>>>,
    /// (method, shape) → the binding already there, for conflict messages.
    seen: HashMap<(Method, String), Arc<Binding>>,
}

// === impl PathTableBuilder ===

impl PathTableBuilder {
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

    pub fn build(self) -> PathTable {
        PathTable {
            by_method: self
                .by_method
                .into_iter()
                .map(|(m, b)| (m, b.build()))
                .collect(),
        }
    }
}

// === impl PathTable ===

impl PathTable {
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

    /// Whether any method is routed on `path` here (a malformed path counts,
    /// so that its 400 comes from this table).
    pub fn serves(&self, path: &str) -> bool {
        self.by_method
            .values()
            .any(|router| !matches!(router.at(path), Ok(None)))
    }
}
