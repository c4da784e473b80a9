//! The route table of one config version: routes by host, then by method
//! and path. A route with `hosts: [api.example.com, "*.example.com"]`
//! answers only for those hosts; a route without `hosts` answers for any.
//!
//! A request's host (`:authority` or `Host`, port and trailing dot removed,
//! lower-cased) picks the first table that routes its path: the exact host,
//! then wildcard hosts from the longest suffix, then the any-host routes.
//! Within that table the usual 404/405 rules apply. `*.example.com` matches
//! `a.example.com` and `a.b.example.com`, not `example.com`.

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderMap, Method};
use switchyard_plugins::error::{Code, ErrorResponse};

use super::table::{PathTable, PathTableBuilder};
use super::{Conflict, Matched};
use crate::transcode::binding::Binding;

/// All routes of a config version.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact: HashMap<String, PathTable>,
    /// `(".example.com", table)`, longest suffix first.
    wildcard: Vec<(String, PathTable)>,
    any: PathTable,
}

/// Collects bindings and builds the table.
#[derive(Default)]
pub struct RouteTableBuilder {
    exact: HashMap<String, PathTableBuilder>,
    wildcard: HashMap<String, PathTableBuilder>,
    any: PathTableBuilder,
}

/// A `hosts:` entry in the form requests are compared with (trailing dot
/// removed, lower case), or why it cannot be used.
pub fn host_pattern(raw: &str) -> Result<String, String> {
    let host = raw.trim_end_matches('.').to_ascii_lowercase();
    check_host_pattern(&host)?;
    Ok(host)
}

/// A `hosts:` entry that cannot be used.
pub fn check_host_pattern(pattern: &str) -> Result<(), String> {
    let name = pattern.strip_prefix("*.").unwrap_or(pattern);
    let valid = !name.is_empty()
        && name.len() <= 253
        && !name.contains('*')
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid host {pattern:?}: expected a DNS name (api.example.com) or a wildcard (*.example.com)"
        ))
    }
}

/// The host a request is for, in the form patterns are compared with.
pub fn request_host(req: &switchyard_plugins::stage::Request) -> Option<String> {
    let raw = match req.uri().host() {
        Some(host) => host,
        None => req.headers().get(http::header::HOST)?.to_str().ok()?,
    };
    let host = if raw.starts_with('[') {
        raw.split(']').next().map(|h| format!("{h}]"))?
    } else {
        raw.split(':').next()?.to_owned()
    };
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

/// Whether two `hosts` lists can both match one request (both "any host",
/// or a pattern in common): two webhook endpoints on one path, or two
/// proxies on one prefix, must not.
pub fn hosts_overlap(a: &[String], b: &[String]) -> bool {
    (a.is_empty() && b.is_empty()) || a.iter().any(|h| b.contains(h))
}

/// How well `host` matches `hosts`: `None` not at all, 0 any host (no
/// `hosts`), else the length of the matching pattern (an exact host beats
/// any wildcard, a longer wildcard a shorter one).
pub fn host_rank(hosts: &[String], host: Option<&str>) -> Option<usize> {
    if hosts.is_empty() {
        return Some(0);
    }
    let host = host?;
    hosts
        .iter()
        .filter_map(|pattern| match pattern.strip_prefix('*') {
            Some(suffix) => {
                (host.len() > suffix.len() && host.ends_with(suffix)).then_some(suffix.len())
            }
            None => (pattern == host).then_some(usize::MAX),
        })
        .max()
}

// === impl RouteTableBuilder ===

impl RouteTableBuilder {
    /// Adds a binding to the table of each of its route's hosts (or to the
    /// any-host table); conflicts are per host.
    pub fn insert(&mut self, binding: Arc<Binding>) -> Result<(), Conflict> {
        let hosts = &binding.route.hosts;
        if hosts.is_empty() {
            return self.any.insert(binding);
        }
        for host in hosts {
            let table = match host.strip_prefix('*') {
                Some(suffix) => self.wildcard.entry(suffix.to_owned()).or_default(),
                None => self.exact.entry(host.clone()).or_default(),
            };
            table.insert(binding.clone())?;
        }
        Ok(())
    }

    pub fn build(self) -> RouteTable {
        let mut wildcard: Vec<(String, PathTable)> = self
            .wildcard
            .into_iter()
            .map(|(suffix, b)| (suffix, b.build()))
            .collect();
        wildcard.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        RouteTable {
            exact: self
                .exact
                .into_iter()
                .map(|(host, b)| (host, b.build()))
                .collect(),
            wildcard,
            any: self.any.build(),
        }
    }
}

// === impl RouteTable ===

impl RouteTable {
    /// The binding for a request to `host`, or the error to answer.
    pub fn lookup(
        &self,
        method: &Method,
        host: Option<&str>,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Matched, ErrorResponse> {
        if let Some(host) = host {
            let exact = self.exact.get(host).into_iter();
            let wildcards = self
                .wildcard
                .iter()
                .filter(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
                .map(|(_, table)| table);
            if let Some(table) = exact.chain(wildcards).find(|t| t.serves(path)) {
                return table.lookup(method, path, headers);
            }
        }
        if self.any.serves(path) || (self.exact.is_empty() && self.wildcard.is_empty()) {
            return self.any.lookup(method, path, headers);
        }
        Err(ErrorResponse::new(
            Code::NotFound,
            format!("no route for {method} {path}"),
        ))
    }

    /// Every binding (a binding on several hosts appears once per host).
    pub fn bindings(&self) -> impl Iterator<Item = &Arc<Binding>> {
        self.exact
            .values()
            .chain(self.wildcard.iter().map(|(_, t)| t))
            .chain(std::iter::once(&self.any))
            .flat_map(PathTable::bindings)
    }

    pub fn len(&self) -> usize {
        self.bindings().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_are_dns_names_or_one_leading_wildcard() {
        for ok in ["api.example.com", "*.example.com", "localhost", "a-b.c1"] {
            assert!(check_host_pattern(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "*",
            "*.",
            "a.*.com",
            "api..com",
            "api.example.com:8080",
            "exa mple.com",
        ] {
            assert!(check_host_pattern(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_request_host_drops_port_and_trailing_dot_and_case() {
        let req = |host: &str| {
            http::Request::builder()
                .header("host", host)
                .body(switchyard_plugins::stage::empty_body())
                .unwrap()
        };
        assert_eq!(
            request_host(&req("API.Example.com:8080")).as_deref(),
            Some("api.example.com")
        );
        assert_eq!(
            request_host(&req("api.example.com.")).as_deref(),
            Some("api.example.com")
        );
        assert_eq!(request_host(&req("[::1]:8080")).as_deref(), Some("[::1]"));
    }
}
