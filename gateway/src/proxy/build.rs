//! `proxies:` and `http_upstreams:` compiled into [`Proxies`], every error
//! naming its key.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;

use switchyard_plugins::registry::{BuildContext, build_stack, with_defaults};
use switchyard_plugins::stage::{HttpService, Request};

use super::upstream::{ClientTls, HttpPool, SharedPool};
use super::{Failures, Proxies, Proxy, Served};
use crate::config::proxy::{HttpUpstream, ProxyRoute};
use crate::config::{ConfigError, KeyPath, LoadedConfig};
use crate::observability::Metrics;

impl Proxies {
    /// Compiles `http_upstreams:` (one connection pool each per worker) and
    /// `proxies:`.
    pub async fn build(loaded: &LoadedConfig, metrics: &Metrics) -> Result<Proxies, ConfigError> {
        let config = &loaded.config;
        let mut pools: BTreeMap<&str, SharedPool> = BTreeMap::new();
        for (name, upstream) in &config.http_upstreams {
            let key = KeyPath::root().key("http_upstreams").key(name);
            let tls = client_tls(loaded, upstream)
                .map_err(|e| loaded.source.error_at(&key.key("tls"), e))?;
            let pool = HttpPool::new(name, upstream, tls, config.worker_count())
                .map_err(|e| loaded.source.error_at(&key, e))?;
            pools.insert(name, Arc::new(pool));
        }
        let mut served: Vec<Served> = Vec::with_capacity(config.proxies.len());
        let mut names = HashSet::new();
        for (index, route) in config.proxies.iter().enumerate() {
            let key = KeyPath::root().key("proxies").index(index);
            let at =
                |field: &str, message: String| loaded.source.error_at(&key.key(field), message);
            check_name(loaded, &route.name, &mut names).map_err(|e| at("name", e))?;
            check_path(&route.prefix).map_err(|e| at("prefix", e))?;
            if let Some(with) = &route.rewrite_prefix {
                check_path(with).map_err(|e| at("rewrite_prefix", e))?;
            }
            let mut hosts = Vec::with_capacity(route.hosts.len());
            for (i, host) in route.hosts.iter().enumerate() {
                let host = crate::routing::hosts::host_pattern(host)
                    .map_err(|e| loaded.source.error_at(&key.key("hosts").index(i), e))?;
                hosts.push(host);
            }
            let upstream = pools.get(route.upstream.as_str()).cloned().ok_or_else(|| {
                let known: Vec<&str> = pools.keys().copied().collect();
                at(
                    "upstream",
                    format!(
                        "unknown HTTP upstream `{}`; http_upstreams has [{}]",
                        route.upstream,
                        known.join(", ")
                    ),
                )
            })?;
            if let Some(other) = served.iter().find(|s| {
                s.proxy.prefix.trim_end_matches('/') == route.prefix.trim_end_matches('/')
                    && crate::routing::hosts::hosts_overlap(&s.proxy.hosts, &hosts)
            }) {
                return Err(at(
                    "prefix",
                    format!(
                        "{:?} is already served for the same hosts by proxy `{}`",
                        route.prefix, other.proxy.name
                    ),
                ));
            }
            let edge_limit = config.limits.max_request_body;
            let proxy = Arc::new(Proxy {
                name: route.name.clone(),
                prefix: route.prefix.clone(),
                hosts,
                timeout: route.timeout.map_or(upstream.timeout, |t| t.0),
                upstream,
                rewrite_prefix: route.rewrite_prefix.clone(),
                preserve_host: route.preserve_host,
                forwarded_for: route.x_forwarded_for,
                reject_ambiguous_paths: route.reject_ambiguous_paths,
                max_body: route
                    .max_request_body
                    .unwrap_or(edge_limit)
                    .min(edge_limit)
                    .as_usize(),
                failures: failures(metrics, &route.name),
            });
            let stack = stack(loaded, route, &proxy, metrics)
                .await
                .map_err(|e| at("plugins", e))?;
            served.push(Served { proxy, stack });
        }
        Ok(Proxies {
            served,
            pools: pools.into_values().collect(),
        })
    }
}

/// The TLS settings of an upstream's `https://` endpoints: its `tls`, or
/// the public web roots; `tls` on an upstream without one is an error.
fn client_tls(loaded: &LoadedConfig, upstream: &HttpUpstream) -> Result<ClientTls, String> {
    let https = upstream.endpoints.iter().any(|e| e.starts_with("https://"));
    if upstream.tls.is_some() && !https {
        return Err("`tls` applies to https:// endpoints, and these are all http://".to_owned());
    }
    let tls = upstream.tls.clone().unwrap_or_default();
    Ok(ClientTls {
        config: crate::upstream::tls::client_config(&tls, |p| loaded.source.resolve(p))?,
        server_name: crate::upstream::tls::server_name(&tls)?,
    })
}

fn failures(metrics: &Metrics, proxy: &str) -> Failures {
    let errors = &metrics.traffic.proxy_errors;
    let kind = |k: &str| errors.with_label_values(&[proxy, k]);
    Failures {
        connect: kind("connect"),
        timeout: kind("timeout"),
        broken: kind("broken"),
        saturated: kind("saturated"),
    }
}

/// The proxy behind its plugins (the top-level ones, then its own).
async fn stack(
    loaded: &LoadedConfig,
    route: &ProxyRoute,
    proxy: &Arc<Proxy>,
    metrics: &Metrics,
) -> Result<HttpService, String> {
    let proxy = proxy.clone();
    let handler = HttpService::new(tower::service_fn(move |req: Request| {
        let proxy = proxy.clone();
        async move { Ok::<_, Infallible>(proxy.call(req).await) }
    }));
    let ctx = BuildContext {
        base_dir: loaded.source.base_dir(),
        route: route.name.clone(),
        metrics: metrics.plugins.clone(),
    };
    build_stack(
        &with_defaults(&loaded.config.plugins, &route.plugins),
        handler,
        &ctx,
    )
    .await
    .map_err(|e| e.to_string())
}

/// Proxy names label metrics: unique among proxies, routes and webhook
/// endpoints.
fn check_name(loaded: &LoadedConfig, name: &str, seen: &mut HashSet<String>) -> Result<(), String> {
    if name.is_empty() {
        return Err("a proxy needs a `name` (it labels its metrics)".into());
    }
    if !seen.insert(name.to_owned()) {
        return Err(format!("proxy name `{name}` is used twice"));
    }
    let config = &loaded.config;
    let route = config.routes.iter().any(|r| r.display_name() == name);
    let webhook = config
        .webhooks
        .iter()
        .any(|w| w.name.as_deref().unwrap_or(&w.path) == name);
    if route || webhook {
        return Err(format!(
            "`{name}` is also a route's or webhook endpoint's name (they share metrics labels)"
        ));
    }
    Ok(())
}

/// An absolute path in normal form.
fn check_path(path: &str) -> Result<(), String> {
    match crate::routing::normalize::normalize(path) {
        Ok(std::borrow::Cow::Borrowed(_)) if path.starts_with('/') && !path.contains('?') => Ok(()),
        _ => Err(format!(
            "{path:?} is not an absolute path in normal form, e.g. /legacy"
        )),
    }
}
