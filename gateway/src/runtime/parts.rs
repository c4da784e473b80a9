//! The parts of a runtime built before its routes: the protos, the events
//! side, the access log, and the checks of the config as a whole.

use std::sync::Arc;

use prost_reflect::DescriptorPool;

use super::Purpose;
use crate::config::{ConfigError, KeyPath, LoadedConfig};
use crate::observability::Metrics;
use crate::protos::{self, ProtoSources};

/// `limits.load_shedding`: a target and an interval the probe can measure,
/// a share that leaves something to serve.
pub(super) fn check_load_shedding(loaded: &LoadedConfig) -> Result<(), ConfigError> {
    let shedding = &loaded.config.limits.load_shedding;
    let key = KeyPath::root().key("limits").key("load_shedding");
    let fail = |field: &str, message: String| Err(loaded.source.error_at(&key.key(field), message));
    if shedding.max_share.is_nan() || shedding.max_share <= 0.0 || shedding.max_share > 1.0 {
        return fail(
            "max_share",
            format!(
                "max_share is {}; use a share above 0 and at most 1 (or enabled: false)",
                shedding.max_share
            ),
        );
    }
    let interval = shedding.interval.0;
    if interval < std::time::Duration::from_millis(1)
        || interval > std::time::Duration::from_secs(1)
    {
        return fail(
            "interval",
            format!("interval is {interval:?}; use 1ms to 1s (the default is 15ms)"),
        );
    }
    if shedding.target.0 < std::time::Duration::from_millis(2) {
        return fail(
            "target",
            format!(
                "target is {:?}; use 2ms or more (the probe's timer resolves a millisecond; the default is 20ms)",
                shedding.target.0
            ),
        );
    }
    Ok(())
}

/// `tracing:` checked (the exporter itself starts with the process).
pub(super) fn check_tracing(loaded: &LoadedConfig) -> Result<(), ConfigError> {
    let Some(config) = &loaded.config.tracing else {
        return Ok(());
    };
    let key = KeyPath::root().key("tracing");
    if !(0.0..=1.0).contains(&config.sample_ratio) {
        return Err(loaded.source.error_at(
            &key.key("sample_ratio"),
            format!(
                "sample_ratio is {}; use a share from 0 to 1",
                config.sample_ratio
            ),
        ));
    }
    match config.otlp_endpoint.parse::<http::Uri>() {
        Ok(uri) if uri.scheme().is_some() && uri.authority().is_some() => Ok(()),
        _ => Err(loaded.source.error_at(
            &key.key("otlp_endpoint"),
            format!(
                "{:?} is not a URL like http://127.0.0.1:4317",
                config.otlp_endpoint
            ),
        )),
    }
}

/// The access log, opened to serve (a check does not touch its file).
pub(super) fn open_access_log(
    loaded: &LoadedConfig,
    metrics: &Metrics,
    purpose: Purpose,
) -> Result<Option<Arc<crate::observability::access_log::AccessLog>>, ConfigError> {
    let Some(config) = &loaded.config.access_log else {
        return Ok(None);
    };
    let key = KeyPath::root().key("access_log");
    if !(0.0..=1.0).contains(&config.sample) {
        return Err(loaded.source.error_at(
            &key.key("sample"),
            format!("sample is {}; use a share from 0 to 1", config.sample),
        ));
    }
    if purpose == Purpose::Check {
        return Ok(None);
    }
    let dropped = metrics.access_log_dropped.clone();
    crate::observability::access_log::AccessLog::open(config, |p| loaded.source.resolve(p), dropped)
        .map(|log| Some(Arc::new(log)))
        .map_err(|e| loaded.source.error_at(&key.key("output"), e))
}

/// The events side (`events:`), started on the current runtime.
pub(super) async fn start_events(
    loaded: &LoadedConfig,
    metrics: &Metrics,
    purpose: Purpose,
) -> Result<Option<Arc<crate::events::Events>>, ConfigError> {
    let Some(config) = &loaded.config.events else {
        return Ok(None);
    };
    let base_dir = loaded.source.base_dir();
    let metrics = metrics.events.clone();
    let started = match purpose {
        Purpose::Serve => crate::events::Events::start(config, &base_dir, metrics).await,
        Purpose::Check => crate::events::Events::check(config, &base_dir, metrics).await,
    };
    let events = started.map_err(|e| {
        let key = e.key.iter().fold(KeyPath::root().key("events"), |k, part| {
            k.key(part.as_str())
        });
        loaded.source.error_at(&key, e.message)
    })?;
    Ok(Some(Arc::new(events)))
}

/// Route names (a route's `name`, else its service) label metrics and keep
/// shared rate-limit budgets apart: two routes must not share one.
pub(super) fn check_route_names(loaded: &LoadedConfig) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashMap::new();
    for (index, route) in loaded.config.routes.iter().enumerate() {
        let name = route.display_name();
        if let Some(first) = seen.insert(name, index) {
            let key = KeyPath::root().key("routes").index(index);
            let key = if route.name.is_some() {
                key.key("name")
            } else {
                key
            };
            return Err(loaded.source.error_at(
                &key,
                format!(
                    "route name `{name}` is already used by routes[{first}]; give each route a distinct `name` (unnamed routes are named after their service)"
                ),
            ));
        }
    }
    Ok(())
}

/// An admin token that is set must be worth asking for: an empty one (an
/// unset `${VAR}`) or a short one is refused rather than taken.
pub(super) fn check_admin_token(loaded: &LoadedConfig) -> Result<(), ConfigError> {
    match &loaded.config.admin.token {
        Some(token) if token.len() < 16 => Err(loaded.source.error_at(
            &KeyPath::root().key("admin").key("token"),
            format!(
                "admin.token is {} characters; use at least 16 (e.g. `openssl rand -hex 32`), or remove it",
                token.len()
            ),
        )),
        _ => Ok(()),
    }
}

pub(super) fn load_protos(loaded: &LoadedConfig) -> Result<DescriptorPool, ConfigError> {
    let source = &loaded.source;
    let protos = &loaded.config.protos;
    let sources = ProtoSources {
        sources: protos.sources.iter().map(|p| source.resolve(p)).collect(),
        includes: protos.includes.iter().map(|p| source.resolve(p)).collect(),
    };
    protos::load(&sources)
        .map_err(|e| source.error_at(&KeyPath::root().key("protos").key("sources"), e.to_string()))
}
