//! One host's route table: HTTP method + path template (+ header
//! conditions) → binding.

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use switchyard_plugins::error::{Code, ErrorResponse};

use super::header_match::{HeaderMatcher, all_match};
use super::path_router::{self, PathRouter, PathRouterBuilder, RouteMatch};
use super::{Conflict, Matched};
use crate::transcode::binding::Binding;

/// The routes of one host pattern (or of any host).
#[derive(Debug, Default)]
pub struct PathTable {
    by_method: HashMap<Method, PathRouter<Candidates>>,
}

/// The routes that bind one method and path template on one host, in the
/// order they are tried: those with header conditions (config order), then
/// the one without (see `header_match`).
#[derive(Debug, Default)]
pub struct Candidates(Box<[Arc<Binding>]>);

/// Collects bindings and builds the table.
#[derive(Default)]
pub struct PathTableBuilder {
    /// Router values index `slots`.
    by_method: HashMap<Method, PathRouterBuilder<usize>>,
    slots: Vec<Vec<Arc<Binding>>>,
    /// (method, shape) → its slot.
    seen: HashMap<(Method, String), usize>,
}

// === impl Candidates ===

impl Candidates {
    /// The first route whose header conditions the request meets.
    pub fn select(&self, headers: &HeaderMap) -> Option<&Arc<Binding>> {
        self.0
            .iter()
            .find(|b| all_match(&b.route.match_headers, headers))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Binding>> {
        self.0.iter()
    }
}

// === impl PathTableBuilder ===

impl PathTableBuilder {
    /// Adds a binding. Two bindings of the same method and path shape
    /// conflict unless their routes' header conditions tell them apart: at
    /// most one of them may have none, and no two may have the same.
    pub fn insert(&mut self, binding: Arc<Binding>) -> Result<(), Conflict> {
        let method = binding.http_method.clone();
        let key = (method.clone(), binding.template.shape());
        if let Some(&slot) = self.seen.get(&key) {
            let same = |b: &&Arc<Binding>| {
                same_conditions(&b.route.match_headers, &binding.route.match_headers)
            };
            if let Some(existing) = self.slots[slot].iter().find(same) {
                return Err(Conflict {
                    new: binding.describe(),
                    new_rpc: binding.rpc.full_name().to_owned(),
                    existing: existing.describe(),
                    existing_rpc: existing.rpc.full_name().to_owned(),
                    existing_route: existing.route.name.clone(),
                });
            }
            self.slots[slot].push(binding);
            return Ok(());
        }
        let slot = self.slots.len();
        let template = binding.template.clone();
        let describe = binding.describe();
        self.by_method
            .entry(method)
            .or_default()
            .insert(template, slot)
            .map_err(|e| Conflict {
                new: describe,
                new_rpc: String::new(),
                existing: e.to_string(),
                existing_rpc: String::new(),
                existing_route: String::new(),
            })?;
        self.seen.insert(key, slot);
        self.slots.push(vec![binding]);
        Ok(())
    }

    pub fn build(mut self) -> PathTable {
        for slot in &mut self.slots {
            // Stable: routes with conditions first, each group in config order.
            slot.sort_by_key(|b| b.route.match_headers.is_empty());
        }
        let mut slots = self.slots;
        PathTable {
            by_method: self
                .by_method
                .into_iter()
                .map(|(m, b)| {
                    let router = b
                        .build()
                        .map(|slot| Candidates(std::mem::take(&mut slots[slot]).into()));
                    (m, router)
                })
                .collect(),
        }
    }
}

/// Whether two condition lists hold for exactly the same requests, as far as
/// their text tells (the same conditions, in any order).
fn same_conditions(a: &[HeaderMatcher], b: &[HeaderMatcher]) -> bool {
    a.len() == b.len() && a.iter().all(|m| b.contains(m)) && b.iter().all(|m| a.contains(m))
}

// === impl PathTable ===

impl PathTable {
    /// Finds the binding for a request, or the error response to send:
    /// 400 for an undecodable path, 405 (with `Allow`) when only other methods
    /// match, 404 otherwise. `OPTIONS` on a path served for other methods goes
    /// to one of those bindings' routes, marked with the `Allow` list, so the
    /// route's plugins (CORS preflights) see it and the handler can answer it.
    /// `headers` pick among routes of the same method and template.
    pub fn lookup(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Matched, ErrorResponse> {
        let bad_path = |e: path_router::PathError| {
            ErrorResponse::new(Code::InvalidArgument, format!("invalid request path: {e}"))
        };
        if let Some(router) = self.by_method.get(method)
            && let Some(m) = router.at(path).map_err(bad_path)?
        {
            let Some(binding) = m.value.select(headers) else {
                return Err(ErrorResponse::new(
                    Code::NotFound,
                    format!("no route for {method} {path} matches the request headers"),
                ));
            };
            return Ok(Matched {
                binding: binding.clone(),
                captures: m.captures,
                options_allow: None,
            });
        }
        let mut others: Vec<(&Method, RouteMatch<'_, Candidates>)> = self
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
            let candidates = &found.value.0;
            let Some(binding) = found.value.select(headers).or(candidates.first()) else {
                return Err(ErrorResponse::new(
                    Code::NotFound,
                    format!("no route for {method} {path}"),
                ));
            };
            return Ok(Matched {
                binding: binding.clone(),
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
            .flat_map(|r| r.iter().flat_map(|(_, c)| c.iter()))
    }

    pub fn len(&self) -> usize {
        self.bindings().count()
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
