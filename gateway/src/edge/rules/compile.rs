//! Edge rules compiled from `edge_rules:`: each rule's match, action and
//! targets checked, every error at the key below the rule it is about.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};

use super::{Action, Piece, Rule, Target};
use crate::config::edge::{EdgeRule, Redirect, Respond, Rewrite};
use crate::observability::Metrics;
use crate::routing::header_match::HeaderMatcher;
use crate::routing::hosts::{check_host_pattern, host_pattern};
use crate::transcode::path_template::PathTemplate;

/// A compile error: the keys below the rule, and the message.
pub(super) type RuleError = (Vec<&'static str>, String);

impl Rule {
    pub(super) fn compile(
        config: &EdgeRule,
        index: usize,
        metrics: &Metrics,
    ) -> Result<Rule, RuleError> {
        let at = |keys: &[&'static str], message: String| (keys.to_vec(), message);
        let name: Arc<str> = match &config.name {
            Some(name) if name.is_empty() => return Err(at(&["name"], "empty name".into())),
            Some(name) => name.as_str().into(),
            None => format!("edge_rules[{index}]").into(),
        };
        let m = &config.matches;
        let path = PathTemplate::parse(&m.path)
            .map_err(|e| at(&["match", "path"], format!("invalid path template: {e}")))?;
        let mut methods = Vec::with_capacity(m.methods.len());
        for method in &m.methods {
            let parsed =
                Method::from_bytes(method.to_ascii_uppercase().as_bytes()).map_err(|_| {
                    at(
                        &["match", "methods"],
                        format!("{method:?} is not an HTTP method"),
                    )
                })?;
            methods.push(parsed);
        }
        let hosts = m
            .hosts
            .iter()
            .map(|host| host_pattern(host))
            .collect::<Result<_, _>>()
            .map_err(|e| at(&["match", "hosts"], e))?;
        let mut headers = Vec::with_capacity(m.headers.len());
        for condition in &m.headers {
            headers
                .push(HeaderMatcher::compile(condition).map_err(|e| at(&["match", "headers"], e))?);
        }
        let actions = [
            config.redirect.is_some(),
            config.respond.is_some(),
            config.rewrite.is_some(),
        ];
        let action = match (&config.redirect, &config.respond, &config.rewrite) {
            _ if actions.iter().filter(|a| **a).count() > 1 => {
                return Err(at(
                    &[],
                    "a rule has one action: give only one of `redirect`, `respond` or `rewrite`"
                        .into(),
                ));
            }
            (Some(redirect), _, _) => compile_redirect(redirect, &path)
                .map_err(|(k, e)| (std::iter::once("redirect").chain(k).collect(), e))?,
            (_, Some(respond), _) => compile_respond(respond)
                .map_err(|(k, e)| (std::iter::once("respond").chain(k).collect(), e))?,
            (_, _, Some(rewrite)) => compile_rewrite(rewrite, &path)
                .map_err(|(k, e)| (std::iter::once("rewrite").chain(k).collect(), e))?,
            _ => {
                return Err(at(
                    &[],
                    "the rule does nothing: give one of `redirect`, `respond` or `rewrite`".into(),
                ));
            }
        };
        let label = match action {
            Action::Redirect { .. } => "redirect",
            Action::Respond { .. } => "respond",
            Action::Rewrite { .. } => "rewrite",
        };
        Ok(Rule {
            applied: metrics
                .traffic
                .edge_rules
                .with_label_values(&[&name, label]),
            name,
            path,
            methods,
            hosts,
            headers,
            action,
        })
    }
}

fn compile_redirect(config: &Redirect, path: &PathTemplate) -> Result<Action, RuleError> {
    let status = StatusCode::from_u16(config.status)
        .ok()
        .filter(|s| matches!(s.as_u16(), 301 | 302 | 303 | 307 | 308))
        .ok_or_else(|| {
            (
                vec!["status"],
                format!(
                    "{} is not a redirect status: use 301, 302, 303, 307 or 308",
                    config.status
                ),
            )
        })?;
    let absolute = config.to.starts_with("https://") || config.to.starts_with("http://");
    if !absolute && !config.to.starts_with('/') {
        return Err((
            vec!["to"],
            format!(
                "{:?}: a target is a path (`/…`) or an http(s) URL",
                config.to
            ),
        ));
    }
    let to = Target::compile(&config.to, path).map_err(|e| (vec!["to"], e))?;
    Ok(Action::Redirect {
        to,
        status,
        keep_query: config.keep_query,
    })
}

fn compile_respond(config: &Respond) -> Result<Action, RuleError> {
    let status = StatusCode::from_u16(config.status)
        .ok()
        .filter(|s| s.as_u16() >= 200)
        .ok_or_else(|| {
            (
                vec!["status"],
                format!("{} is not a status from 200 to 599", config.status),
            )
        })?;
    let mut headers = HeaderMap::new();
    for (name, value) in &config.headers {
        let name = HeaderName::try_from(name.as_str()).map_err(|_| {
            (
                vec!["headers"],
                format!("{name:?} is not a valid header name"),
            )
        })?;
        if matches!(
            name,
            header::CONTENT_LENGTH | header::TRANSFER_ENCODING | header::CONNECTION
        ) {
            return Err((vec!["headers"], format!("`{name}` is set by the gateway")));
        }
        let value = HeaderValue::try_from(value.as_str()).map_err(|_| {
            (
                vec!["headers"],
                format!("the value of `{name}` is not a valid header value"),
            )
        })?;
        headers.append(name, value);
    }
    let body = config.body.clone().map(Bytes::from).unwrap_or_default();
    if !body.is_empty() && !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    Ok(Action::Respond {
        status,
        headers,
        body,
    })
}

fn compile_rewrite(config: &Rewrite, path: &PathTemplate) -> Result<Action, RuleError> {
    let target = match &config.path {
        None => None,
        Some(p) if !p.starts_with('/') => {
            return Err((
                vec!["path"],
                format!("{p:?}: a rewritten path starts with `/`"),
            ));
        }
        Some(p) if p.contains(['?', '#']) => {
            return Err((
                vec!["path"],
                format!(
                    "{p:?}: a rewritten path has no query or fragment (the request's query is kept)"
                ),
            ));
        }
        Some(p) => Some(Target::compile(p, path).map_err(|e| (vec!["path"], e))?),
    };
    let host = match &config.host {
        None => None,
        Some(host) => {
            let name = host.rsplit_once(':').map_or(host.as_str(), |(name, port)| {
                if port.parse::<u16>().is_ok() {
                    name
                } else {
                    host
                }
            });
            let valid = check_host_pattern(name).is_ok() && !name.starts_with('*');
            let value = HeaderValue::try_from(host.as_str()).ok().filter(|_| valid);
            Some(value.ok_or_else(|| {
                (
                    vec!["host"],
                    format!(
                        "{host:?} is not a host name (api.example.com, with an optional :port)"
                    ),
                )
            })?)
        }
    };
    if target.is_none() && host.is_none() {
        return Err((
            vec![],
            "`rewrite` changes nothing: give `path`, `host` or both".into(),
        ));
    }
    Ok(Action::Rewrite { path: target, host })
}

// === impl Target ===

impl Target {
    /// Parses `{name}` pieces: a variable of `path`, or `host`.
    fn compile(text: &str, path: &PathTemplate) -> Result<Target, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("{text:?}: `{{` without its `}}`"))?;
            let name = &rest[open + 1..open + close];
            let variable = path.variables().iter().position(|v| v.name() == name);
            pieces.push(match variable {
                Some(i) => Piece::Var(i, path.variables()[i].is_multi_segment()),
                None if name == "host" => Piece::Host,
                None => {
                    let known: Vec<&str> = path.variables().iter().map(|v| v.name()).collect();
                    return Err(format!(
                        "{text:?}: `{{{name}}}` is not a variable of the match path (its variables: [{}]) nor `{{host}}`",
                        known.join(", ")
                    ));
                }
            });
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("{text:?}: `}}` without its `{{`"));
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Target(pieces))
    }
}
