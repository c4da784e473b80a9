//! Edge rules (`edge_rules:`): redirects, fixed answers and rewrites,
//! decided on the normalised request before inbound webhooks, GraphQL and
//! the routes. Rules are tried in config order; the first whose match
//! holds is applied, and no other rule is tried after it (a rewrite then
//! goes on to routing). See docs/edge-logic.md.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use prometheus::IntCounter;
use switchyard_plugins::error::{Code, ErrorResponse};
use switchyard_plugins::stage::{OriginalUri, Request, Response, full_body};

use crate::config::{ConfigError, KeyPath, LoadedConfig};
use crate::observability::Metrics;
use crate::routing::header_match::{HeaderMatcher, all_match};
use crate::routing::hosts::{host_rank, request_host};
use crate::routing::normalize::normalize;
use crate::transcode::path_template::PathTemplate;

mod compile;

/// A one-segment variable's value in a target: everything but unreserved
/// characters and sub-delimiters is encoded, `/` and `%` included.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A multi-segment variable's value keeps its `/` and the escapes the
/// match left encoded (`%2F`).
const MULTI: &AsciiSet = &SEGMENT.remove(b'/').remove(b'%');

/// The compiled rules of one config version.
#[derive(Debug, Default)]
pub struct EdgeRules {
    rules: Box<[Rule]>,
}

#[derive(Debug)]
struct Rule {
    name: Arc<str>,
    path: PathTemplate,
    methods: Vec<Method>,
    hosts: Vec<String>,
    headers: Vec<HeaderMatcher>,
    action: Action,
    applied: IntCounter,
}

#[derive(Debug)]
enum Action {
    Redirect {
        to: Target,
        status: StatusCode,
        keep_query: bool,
    },
    Respond {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    Rewrite {
        path: Option<Target>,
        host: Option<HeaderValue>,
    },
}

/// A templated target: text with `{variable}` and `{host}` pieces.
#[derive(Debug)]
struct Target(Vec<Piece>);

#[derive(Debug)]
enum Piece {
    Text(String),
    /// A variable of the match template, by index, and whether it spans
    /// several segments.
    Var(usize, bool),
    Host,
}

// === impl EdgeRules ===

impl EdgeRules {
    /// Compiles `edge_rules:`, every error at its key.
    pub fn build(loaded: &LoadedConfig, metrics: &Metrics) -> Result<EdgeRules, ConfigError> {
        let mut rules = Vec::with_capacity(loaded.config.edge_rules.len());
        for (index, rule) in loaded.config.edge_rules.iter().enumerate() {
            let key = KeyPath::root().key("edge_rules").index(index);
            rules.push(
                Rule::compile(rule, index, metrics).map_err(|(at, message)| {
                    loaded.source.error_at(
                        &at.iter().fold(key.clone(), |k, part| k.key(*part)),
                        message,
                    )
                })?,
            );
        }
        Ok(EdgeRules {
            rules: rules.into(),
        })
    }

    /// Applies the first rule `req` matches: the answer and the rule's
    /// name when it answered; `None` when no rule matched, or one rewrote
    /// the request (then routed as it is now).
    pub fn apply(&self, req: &mut Request) -> Option<(Response, Arc<str>)> {
        if self.rules.is_empty() {
            return None;
        }
        let host = request_host(req);
        for rule in self.rules.iter() {
            let Some(captures) = rule.matches(req, host.as_deref()) else {
                continue;
            };
            rule.applied.inc();
            let vars = Vars {
                captures: &captures,
                host: host.as_deref().unwrap_or_default(),
            };
            let response = match &rule.action {
                Action::Redirect {
                    to,
                    status,
                    keep_query,
                } => {
                    let query = req.uri().query().filter(|_| *keep_query);
                    redirect(to.render(&vars), query, *status)
                }
                Action::Respond {
                    status,
                    headers,
                    body,
                } => {
                    let mut response = http::Response::new(full_body(body.clone()));
                    *response.status_mut() = *status;
                    *response.headers_mut() = headers.clone();
                    response
                }
                Action::Rewrite { path, host } => {
                    let path = path.as_ref().map(|p| p.render(&vars));
                    match rewrite(req, path, host.clone()) {
                        Ok(()) => return None,
                        Err(error) => error.into_response(),
                    }
                }
            };
            return Some((response, rule.name.clone()));
        }
        None
    }
}

/// The values a target's pieces take for one request.
struct Vars<'a> {
    captures: &'a [String],
    host: &'a str,
}

// === impl Rule ===

impl Rule {
    /// The match template's captures when `req` meets every condition.
    fn matches(&self, req: &Request, host: Option<&str>) -> Option<Vec<String>> {
        if !self.methods.is_empty() && !self.methods.contains(req.method()) {
            return None;
        }
        host_rank(&self.hosts, host)?;
        if !all_match(&self.headers, req.headers()) {
            return None;
        }
        self.path.matches(req.uri().path()).ok().flatten()
    }
}

// === impl Target ===

impl Target {
    fn render(&self, vars: &Vars<'_>) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Var(i, multi) => {
                    let value = vars.captures.get(*i).map_or("", String::as_str);
                    let set = if *multi { MULTI } else { SEGMENT };
                    out.extend(utf8_percent_encode(value, set));
                }
                Piece::Host => out.extend(utf8_percent_encode(vars.host, SEGMENT)),
            }
        }
        out
    }
}

/// A redirect to `location` (plus the request's query, if kept).
fn redirect(mut location: String, query: Option<&str>, status: StatusCode) -> Response {
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        location.push(if location.contains('?') { '&' } else { '?' });
        location.push_str(query);
    }
    let mut response = http::Response::new(switchyard_plugins::stage::empty_body());
    *response.status_mut() = status;
    match HeaderValue::try_from(location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
        }
        Err(_) => {
            // Only a target's literal text could make it invalid, and
            // compile accepted that text: unreachable in practice.
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    response
}

/// Replaces the request's path (the query kept; the path brought to its
/// normal form again, as the values put in it may hold dot segments)
/// and/or host; the URI as sent stays in `OriginalUri` for signatures.
fn rewrite(
    req: &mut Request,
    path: Option<String>,
    host: Option<HeaderValue>,
) -> Result<(), ErrorResponse> {
    let invalid = |e: String| {
        ErrorResponse::new(
            Code::InvalidArgument,
            format!("invalid rewritten path: {e}"),
        )
    };
    let path = match path {
        Some(path) => Some(
            normalize(&path)
                .map_err(|e| invalid(e.to_string()))?
                .into_owned(),
        ),
        None => None,
    };
    if req.extensions().get::<OriginalUri>().is_none() {
        let original = req.uri().clone();
        req.extensions_mut().insert(OriginalUri(original));
    }
    let mut parts = req.uri().clone().into_parts();
    if let Some(path) = path {
        let path_and_query = match req.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        let pq = path_and_query
            .parse()
            .map_err(|_| invalid(path_and_query.clone()))?;
        parts.path_and_query = Some(pq);
    }
    if let Some(host) = &host {
        if parts.authority.is_some()
            && let Ok(authority) = host.to_str().unwrap_or_default().parse()
        {
            parts.authority = Some(authority);
        }
        req.headers_mut().insert(header::HOST, host.clone());
    }
    *req.uri_mut() = http::Uri::from_parts(parts).map_err(|e| invalid(e.to_string()))?;
    Ok(())
}
