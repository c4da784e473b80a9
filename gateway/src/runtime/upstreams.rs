//! The upstreams of a config version: endpoints, TLS, health checks and
//! call policies, checked and built once for every route that names them.

use std::collections::BTreeMap;

use crate::config::{ConfigError, KeyPath, LoadedConfig};
use crate::observability::Metrics;
use crate::upstream::endpoint::ConnSettings;
use crate::upstream::health::HealthPolicy;
use crate::upstream::outlier::OutlierPolicy;
use crate::upstream::retry::RetryPolicy;
use crate::upstream::tls::TlsSettings;
use crate::upstream::{Options, Upstream};

/// The TLS settings of an upstream with `https://` endpoints (its `tls:`,
/// or the public web roots), built once for all its endpoints.
fn upstream_tls(
    loaded: &LoadedConfig,
    up: &crate::config::Upstream,
    key: &KeyPath,
) -> Result<Option<TlsSettings>, ConfigError> {
    let https = up.endpoints.iter().any(|e| e.starts_with("https://"));
    let error = |e: String| loaded.source.error_at(&key.key("tls"), e);
    match &up.tls {
        Some(_) if !https => Err(error(
            "`tls` applies to https:// endpoints, and these are all http://".to_owned(),
        )),
        Some(tls) => TlsSettings::new(tls, |p| loaded.source.resolve(p))
            .map(Some)
            .map_err(error),
        None if https => TlsSettings::new(&Default::default(), |p| loaded.source.resolve(p))
            .map(Some)
            .map_err(error),
        None => Ok(None),
    }
}

/// The upstreams of `loaded`: those in `kept` (unchanged since the running
/// version) as they are, the others built.
pub(super) fn build_upstreams(
    loaded: &LoadedConfig,
    metrics: &Metrics,
    mut kept: BTreeMap<String, Upstream>,
) -> Result<BTreeMap<String, Upstream>, ConfigError> {
    let config = &loaded.config;
    let mut out = BTreeMap::new();
    for (name, up) in &config.upstreams {
        if let Some(running) = kept.remove(name) {
            out.insert(name.clone(), running);
            continue;
        }
        let key = KeyPath::root().key("upstreams").key(name);
        let retry = RetryPolicy::new(
            up.retry.attempts,
            up.retry.budget_ratio,
            up.retry.min_per_second,
        )
        .map_err(|e| loaded.source.error_at(&key.key("retry"), e.to_string()))?;
        if up.max_concurrent == 0 {
            return Err(loaded.source.error_at(
                &key.key("max_concurrent"),
                "max_concurrent must be at least 1",
            ));
        }
        let health = health_policy(loaded, up, &key)?;
        let outlier = OutlierPolicy {
            consecutive_failures: up.outlier.consecutive_failures,
            base_ejection: up.outlier.base_ejection.0,
            max_ejection: up.outlier.max_ejection.0,
        };
        let tls = upstream_tls(loaded, up, &key)?;
        let endpoint_metrics = |endpoint: &str| metrics.for_endpoint(name, endpoint);
        let upstream = Upstream::new(
            name,
            &up.endpoints,
            ConnSettings {
                connect_timeout: up.connect_timeout.0,
                keepalive_interval: up.keepalive_interval.0,
                keepalive_timeout: up.keepalive_timeout.0,
                workers: config.worker_count(),
            },
            Options {
                timeout: up.timeout.0,
                max_message: config.limits.max_upstream_message.as_usize(),
                max_concurrent: up.max_concurrent,
                retry,
                metrics: metrics.for_upstream(name),
                balance: up.balance,
                outlier,
                health,
                endpoint_metrics: &endpoint_metrics,
                tls: tls.as_ref(),
            },
        )
        .map_err(|e| loaded.source.error_at(&key.key("endpoints"), e.to_string()))?;
        out.insert(name.clone(), upstream);
    }
    Ok(out)
}

/// The health-check settings of `up`, checked.
fn health_policy(
    loaded: &LoadedConfig,
    up: &crate::config::Upstream,
    key: &KeyPath,
) -> Result<Option<HealthPolicy>, ConfigError> {
    let Some(check) = &up.health_check else {
        return Ok(None);
    };
    let key = key.key("health_check");
    let positive = [
        ("interval", check.interval.0.is_zero()),
        ("timeout", check.timeout.0.is_zero()),
        ("unhealthy_threshold", check.unhealthy_threshold == 0),
        ("healthy_threshold", check.healthy_threshold == 0),
    ];
    if let Some(&(field, _)) = positive.iter().find(|(_, zero)| *zero) {
        return Err(loaded
            .source
            .error_at(&key.key(field), format!("{field} must be greater than 0")));
    }
    Ok(Some(HealthPolicy {
        interval: check.interval.0,
        timeout: check.timeout.0,
        service: check.service.clone(),
        unhealthy_threshold: check.unhealthy_threshold,
        healthy_threshold: check.healthy_threshold,
    }))
}
