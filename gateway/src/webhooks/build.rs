//! `webhooks:` compiled into [`Endpoints`], every error naming its key.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, Method};
use switchyard_plugins::PluginConfig;
use switchyard_plugins::registry::{BuildContext, build_stack, with_defaults};
use switchyard_plugins::stage::{HttpService, Request};

use super::dedupe::{LocalStore, RedisStore, Store};
use super::forward::{Forwarder, Target};
use super::publish::{Publisher, Template};
use super::verify::{STRIPE_SIGNATURE, Scheme, Verifier};
use super::{Endpoint, Endpoints, Handoff, Outcome, Outcomes, Served};
use crate::config::webhooks::{DedupeStore, PublishConfig, WebhookEndpointConfig, WebhookScheme};
use crate::config::{ConfigError, KeyPath, LoadedConfig};
use crate::events::Events;
use crate::observability::Metrics;
use crate::routing::RouteTable;

/// Default `dedupe.max_entries` of a local store.
const DEFAULT_MAX_ENTRIES: usize = 100_000;

impl Endpoints {
    /// Compiles `webhooks:`. `events` is the running events side (the sinks);
    /// `table` the routes, to warn about paths a webhook shadows; `targets`
    /// the routes deliveries may be forwarded through; `metrics` count
    /// deliveries by endpoint and outcome, and plugin outcomes.
    pub async fn build(
        loaded: &LoadedConfig,
        events: Option<&Events>,
        table: &RouteTable,
        targets: &[Target],
        metrics: &Metrics,
    ) -> Result<Endpoints, ConfigError> {
        let received = &metrics.webhooks_received;
        let mut endpoints = Endpoints::default();
        let mut names = HashSet::new();
        for (index, config) in loaded.config.webhooks.iter().enumerate() {
            let key = KeyPath::root().key("webhooks").index(index);
            let at =
                |field: &str, message: String| loaded.source.error_at(&key.key(field), message);
            let name = endpoint_name(config);
            let name_key = if config.name.is_some() {
                "name"
            } else {
                "path"
            };
            check_name(loaded, &name, &mut names).map_err(|e| at(name_key, e))?;
            check_path(loaded, config).map_err(|e| at("path", e))?;
            let hosts = hosts(loaded, config, &key)?;
            let endpoint = Endpoint {
                verifier: verifier(loaded, config, &key)?,
                max_body: config.max_body.as_usize().max(1),
                store: store(loaded, config, &name, &key)?,
                handoff: handoff(loaded, events, targets, config, &key)?,
                outcomes: Outcomes(
                    Outcome::ALL
                        .iter()
                        .map(|o| received.with_label_values(&[name.as_str(), o.as_str()]))
                        .collect(),
                ),
                hosts,
                name,
            };
            let same_path = endpoints.by_path.entry(config.path.clone()).or_default();
            if let Some(other) = same_path
                .iter()
                .find(|e| crate::routing::hosts::hosts_overlap(&e.endpoint.hosts, &endpoint.hosts))
            {
                return Err(at(
                    "path",
                    format!(
                        "{:?} is already served for the same hosts by webhook endpoint `{}`",
                        config.path,
                        other.name()
                    ),
                ));
            }
            warn_if_shadowing(table, &config.path, &endpoint);
            let endpoint = Arc::new(endpoint);
            let stack = stack(loaded, config, &endpoint, metrics)
                .await
                .map_err(|e| at("plugins", e))?;
            same_path.push(Served { endpoint, stack });
        }
        Ok(endpoints)
    }
}

/// The endpoint behind its plugins: its own `plugins`, with the top-level
/// ones except `auth` and `idempotency` (the signature authenticates, the
/// webhook id deduplicates).
async fn stack(
    loaded: &LoadedConfig,
    config: &WebhookEndpointConfig,
    endpoint: &Arc<Endpoint>,
    metrics: &Metrics,
) -> Result<HttpService, String> {
    let defaults: Vec<PluginConfig> = loaded
        .config
        .plugins
        .iter()
        .filter(|p| !matches!(p, PluginConfig::Auth(_) | PluginConfig::Idempotency(_)))
        .cloned()
        .collect();
    let endpoint = endpoint.clone();
    let handler = HttpService::new(tower::service_fn(move |req: Request| {
        let endpoint = endpoint.clone();
        async move { Ok::<_, Infallible>(endpoint.call(req).await) }
    }));
    let ctx = BuildContext {
        base_dir: loaded.source.base_dir(),
        route: endpoint_name(config),
        metrics: metrics.plugins.clone(),
    };
    build_stack(&with_defaults(&defaults, &config.plugins), handler, &ctx)
        .await
        .map_err(|e| e.to_string())
}

/// The endpoint's `name`, else its `path`.
fn endpoint_name(config: &WebhookEndpointConfig) -> String {
    config.name.clone().unwrap_or_else(|| config.path.clone())
}

/// Endpoint names label metrics: unique among endpoints and routes.
fn check_name(loaded: &LoadedConfig, name: &str, seen: &mut HashSet<String>) -> Result<(), String> {
    if !seen.insert(name.to_owned()) {
        return Err(format!(
            "webhook endpoint name `{name}` is used twice; give each a distinct `name`"
        ));
    }
    if loaded
        .config
        .routes
        .iter()
        .any(|r| r.display_name() == name)
    {
        return Err(format!(
            "`{name}` is also a route's name (they share metrics labels); set a distinct `name`"
        ));
    }
    Ok(())
}

fn check_path(loaded: &LoadedConfig, config: &WebhookEndpointConfig) -> Result<(), String> {
    let path = &config.path;
    match crate::routing::normalize::normalize(path) {
        Ok(std::borrow::Cow::Borrowed(_)) if path.starts_with('/') => {}
        _ => {
            return Err(format!(
                "{path:?} is not an absolute path in normal form, e.g. /webhooks/stripe"
            ));
        }
    }
    if loaded
        .config
        .graphql
        .as_ref()
        .is_some_and(|g| &g.path == path)
    {
        return Err(format!(
            "{path:?} is the GraphQL endpoint's path (graphql.path)"
        ));
    }
    Ok(())
}

fn hosts(
    loaded: &LoadedConfig,
    config: &WebhookEndpointConfig,
    key: &KeyPath,
) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::with_capacity(config.hosts.len());
    for (i, host) in config.hosts.iter().enumerate() {
        let host = crate::routing::hosts::host_pattern(host)
            .map_err(|e| loaded.source.error_at(&key.key("hosts").index(i), e))?;
        out.push(host);
    }
    Ok(out)
}

fn verifier(
    loaded: &LoadedConfig,
    config: &WebhookEndpointConfig,
    key: &KeyPath,
) -> Result<Verifier, ConfigError> {
    let at = |k: KeyPath, message: String| loaded.source.error_at(&k, message);
    let scheme = match (config.scheme, &config.signature_header) {
        (WebhookScheme::StandardWebhooks, None) => Scheme::StandardWebhooks,
        (WebhookScheme::StandardWebhooks, Some(_)) => {
            return Err(at(key.key("signature_header"), "`signature_header` is for `scheme: stripe`; Standard Webhooks headers are fixed by the spec".to_owned()));
        }
        (WebhookScheme::Stripe, header) => {
            let text = header.as_deref().unwrap_or(STRIPE_SIGNATURE);
            let header = HeaderName::try_from(text).map_err(|_| {
                at(
                    key.key("signature_header"),
                    format!("{text:?} is not a valid header name"),
                )
            })?;
            Scheme::Stripe { header }
        }
    };
    let tolerance = config.tolerance.0;
    if tolerance.as_secs() == 0 {
        return Err(at(
            key.key("tolerance"),
            "`tolerance` must be at least 1s".to_owned(),
        ));
    }
    Verifier::new(scheme, &config.secrets, tolerance).map_err(|(index, message)| {
        let k = key.key("secrets");
        at(index.map_or(k.clone(), |i| k.index(i)), message)
    })
}

fn store(
    loaded: &LoadedConfig,
    config: &WebhookEndpointConfig,
    name: &str,
    key: &KeyPath,
) -> Result<Store, ConfigError> {
    let dedupe = &config.dedupe;
    let key = key.key("dedupe");
    let at = |field: &str, message: String| loaded.source.error_at(&key.key(field), message);
    if dedupe.ttl < config.tolerance {
        return Err(at(
            "ttl",
            format!(
                "`ttl` ({}) is shorter than the endpoint's `tolerance` ({}): a replay inside the tolerance would not be recognised",
                humantime::format_duration(dedupe.ttl.0),
                humantime::format_duration(config.tolerance.0)
            ),
        ));
    }
    match dedupe.store {
        DedupeStore::Local => {
            if dedupe.url.is_some() {
                return Err(at("url", "`url` is for `store: redis`".to_owned()));
            }
            let max = dedupe.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
            if max == 0 {
                return Err(at(
                    "max_entries",
                    "`max_entries` must be at least 1".to_owned(),
                ));
            }
            Ok(Store::Local(LocalStore::new(dedupe.ttl.0, max)))
        }
        DedupeStore::Redis => {
            if dedupe.max_entries.is_some() {
                return Err(at(
                    "max_entries",
                    "`max_entries` is for `store: local` (Redis keys expire after `ttl`)"
                        .to_owned(),
                ));
            }
            let Some(url) = &dedupe.url else {
                return Err(loaded.source.error_at(
                    &key,
                    "`store: redis` needs `url`, e.g. redis://127.0.0.1:6379",
                ));
            };
            RedisStore::new(url, name, dedupe.ttl.0)
                .map(Store::Redis)
                .map_err(|e| at("url", e))
        }
    }
}

/// `publish:` or `forward:`, exactly one.
fn handoff(
    loaded: &LoadedConfig,
    events: Option<&Events>,
    targets: &[Target],
    config: &WebhookEndpointConfig,
    key: &KeyPath,
) -> Result<Handoff, ConfigError> {
    match (&config.publish, &config.forward) {
        (Some(publish), None) => {
            publisher(loaded, events, config, publish, &key.key("publish")).map(Handoff::Publish)
        }
        (None, Some(forward)) => Forwarder::compile(forward, targets)
            .map(Handoff::Forward)
            .map_err(|(field, e)| loaded.source.error_at(&key.key("forward").key(field), e)),
        (Some(_), Some(_)) => Err(loaded.source.error_at(
            &key.key("forward"),
            "set one of `publish` (to an events sink) and `forward` (to a gRPC method), not both",
        )),
        (None, None) => Err(loaded.source.error_at(
            key,
            "missing `publish` (to an events sink) or `forward` (to a gRPC method): where do deliveries go?",
        )),
    }
}

fn publisher(
    loaded: &LoadedConfig,
    events: Option<&Events>,
    config: &WebhookEndpointConfig,
    publish: &PublishConfig,
    key: &KeyPath,
) -> Result<Publisher, ConfigError> {
    let at = |field: &str, message: String| loaded.source.error_at(&key.key(field), message);
    let Some(events) = events else {
        return Err(at(
            "sink",
            "webhooks publish to an events sink: configure the top-level `events:` section"
                .to_owned(),
        ));
    };
    let sink = events.sink(&publish.sink).ok_or_else(|| {
        let known: Vec<&str> = events.sink_names().collect();
        at(
            "sink",
            format!(
                "unknown sink `{}`; events.sinks has [{}]",
                publish.sink,
                known.join(", ")
            ),
        )
    })?;
    let template = |field: &str, text: &str| Template::compile(text).map_err(|e| at(field, e));
    Ok(Publisher {
        sink,
        event_type: template("type", &publish.event_type)?,
        source: publish
            .source
            .clone()
            .unwrap_or_else(|| format!("/switchyard{}", config.path)),
        subject: publish
            .subject
            .as_deref()
            .map(|t| template("subject", t))
            .transpose()?,
        destination: template("destination", &publish.destination)?,
    })
}

/// Webhooks are matched before routes: say so when one hides a route.
fn warn_if_shadowing(table: &RouteTable, path: &str, endpoint: &Endpoint) {
    let hosts: Vec<Option<&str>> = if endpoint.hosts.is_empty() {
        vec![None]
    } else {
        endpoint
            .hosts
            .iter()
            .map(|h| Some(h.trim_start_matches("*.")))
            .collect()
    };
    for host in hosts {
        if let Ok(matched) = table.lookup(&Method::POST, host, path, &HeaderMap::new()) {
            tracing::warn!(
                webhook = %endpoint.name,
                route = %matched.binding.route.name,
                path,
                "a webhook endpoint shadows a route binding POST on the same path: webhooks are matched first"
            );
        }
    }
}
