//! A route's `split:`, `mirror:` and `cache:` compiled (see
//! `routing::split`, `routing::mirror` and `crate::cache`), every error at
//! its key.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderName;

use super::{compile_each, find_method};
use crate::config::edge::Sticky;
use crate::config::{ConfigError, KeyPath, LoadedConfig, Route};
use crate::observability::Metrics;
use crate::routing::header_match::{CookieMatcher, HeaderMatcher};
use crate::routing::mirror::{Counts, Mirror};
use crate::routing::split::{BUCKETS, Split, StickyKey, Variant, When, weight_buckets};
use crate::upstream::Upstream;

/// The split of route `index`, if it has one.
pub(super) fn route_split(
    loaded: &LoadedConfig,
    index: usize,
    route: &Route,
    upstreams: &BTreeMap<String, Upstream>,
    metrics: &Metrics,
) -> Result<Option<Split>, ConfigError> {
    let Some(config) = &route.split else {
        return Ok(None);
    };
    let name = route.display_name();
    let key = KeyPath::root().key("routes").index(index).key("split");
    let err = |at: &KeyPath, message: String| loaded.source.error_at(at, message);
    check_label(&config.primary).map_err(|e| err(&key.key("primary"), e))?;
    if config.variants.is_empty() {
        return Err(err(
            &key.key("variants"),
            "a split needs at least one variant besides the route's `upstream`".into(),
        ));
    }
    let count = |variant: &str| {
        metrics
            .traffic
            .split_requests
            .with_label_values(&[name, variant])
    };
    let mut variants = Vec::with_capacity(config.variants.len());
    let mut start = 0;
    for (i, variant) in config.variants.iter().enumerate() {
        let at = key.key("variants").index(i);
        check_label(&variant.name).map_err(|e| err(&at.key("name"), e))?;
        let taken = variant.name == config.primary
            || config.variants[..i].iter().any(|v| v.name == variant.name);
        if taken {
            return Err(err(
                &at.key("name"),
                format!(
                    "variant name `{}` is used twice (the route's own upstream is `{}`)",
                    variant.name, config.primary
                ),
            ));
        }
        let upstream = known_upstream(upstreams, &variant.upstream)
            .map_err(|e| err(&at.key("upstream"), e))?;
        let buckets = weight_buckets(variant.weight).map_err(|e| err(&at.key("weight"), e))?;
        if start + buckets > BUCKETS {
            return Err(err(
                &at.key("weight"),
                "the variants' weights add up to more than 100 (percent)".into(),
            ));
        }
        let when = match &variant.when {
            None => None,
            Some(when) => Some(compile_when(loaded, when, &at.key("when"))?),
        };
        if buckets == 0 && when.is_none() {
            return Err(err(
                &at,
                format!(
                    "variant `{}` has weight 0 and no `when`: it would never be chosen",
                    variant.name
                ),
            ));
        }
        variants.push(Variant {
            name: variant.name.as_str().into(),
            upstream,
            buckets: start..start + buckets,
            when,
            count: count(&variant.name),
        });
        start += buckets;
    }
    let sticky = match &config.sticky {
        None => None,
        Some(sticky) => Some(sticky_key(sticky).map_err(|e| err(&key.key("sticky"), e))?),
    };
    let primary: Arc<str> = config.primary.as_str().into();
    Ok(Some(Split::new(
        primary.clone(),
        count(&primary),
        variants,
        sticky,
    )))
}

/// The mirror of route `index`, if it has one.
pub(super) fn route_mirror(
    loaded: &LoadedConfig,
    index: usize,
    route: &Route,
    upstreams: &BTreeMap<String, Upstream>,
    metrics: &Metrics,
) -> Result<Option<Mirror>, ConfigError> {
    let Some(config) = &route.mirror else {
        return Ok(None);
    };
    let key = KeyPath::root().key("routes").index(index).key("mirror");
    let err = |at: &str, message: String| loaded.source.error_at(&key.key(at), message);
    let upstream = known_upstream(upstreams, &config.upstream).map_err(|e| err("upstream", e))?;
    if config.upstream == route.upstream {
        return Err(err(
            "upstream",
            format!(
                "the shadow is the route's own upstream `{}`: every mirrored call would reach it twice",
                route.upstream
            ),
        ));
    }
    let buckets = weight_buckets(config.percent).map_err(|e| err("percent", e))?;
    if buckets == 0 {
        return Err(err(
            "percent",
            "percent 0 copies nothing: remove `mirror` instead".into(),
        ));
    }
    if config.max_concurrent == 0 {
        return Err(err(
            "max_concurrent",
            "max_concurrent 0 would copy nothing: give 1 or more".into(),
        ));
    }
    let name = route.display_name();
    let count = |outcome: &str| {
        metrics
            .traffic
            .mirror_requests
            .with_label_values(&[name, outcome])
    };
    let counts = Counts {
        ok: count("ok"),
        error: count("error"),
        skipped: count("skipped"),
    };
    Ok(Some(Mirror::new(
        upstream,
        buckets,
        config.max_concurrent,
        counts,
    )))
}

/// The upstream called `name`, or the error naming the defined ones.
pub(super) fn known_upstream(
    upstreams: &BTreeMap<String, Upstream>,
    name: &str,
) -> Result<Upstream, String> {
    upstreams.get(name).cloned().ok_or_else(|| {
        let known: Vec<&str> = upstreams.keys().map(String::as_str).collect();
        format!(
            "unknown upstream `{name}`; defined upstreams: [{}]",
            known.join(", ")
        )
    })
}

fn compile_when(
    loaded: &LoadedConfig,
    when: &crate::config::edge::VariantWhen,
    at: &KeyPath,
) -> Result<When, ConfigError> {
    if when.headers.is_empty() && when.cookies.is_empty() {
        return Err(loaded.source.error_at(
            at,
            "`when` has no condition: give `headers` or `cookies`, or leave `when` out",
        ));
    }
    Ok(When {
        headers: compile_each(
            loaded,
            &when.headers,
            &at.key("headers"),
            HeaderMatcher::compile,
        )?,
        cookies: compile_each(
            loaded,
            &when.cookies,
            &at.key("cookies"),
            CookieMatcher::compile,
        )?,
    })
}

fn sticky_key(sticky: &Sticky) -> Result<StickyKey, String> {
    let mut keys = Vec::new();
    if let Some(header) = &sticky.header {
        let name = HeaderName::try_from(header.as_str())
            .map_err(|_| format!("{header:?} is not a valid header name"))?;
        keys.push(StickyKey::Header(name));
    }
    if let Some(cookie) = &sticky.cookie {
        if cookie.is_empty() || cookie.bytes().any(|b| !b.is_ascii_graphic() || b == b'=') {
            return Err(format!("{cookie:?} is not a valid cookie name"));
        }
        keys.push(StickyKey::Cookie(cookie.as_bytes().into()));
    }
    if sticky.consumer {
        keys.push(StickyKey::Consumer);
    }
    if sticky.client_ip {
        keys.push(StickyKey::ClientIp);
    }
    match keys.len() {
        1 => Ok(keys.remove(0)),
        0 => Err("`sticky` names no key: give one of `header`, `cookie`, `consumer: true`, `client_ip: true`".into()),
        _ => Err("`sticky` names several keys: give only one of `header`, `cookie`, `consumer`, `client_ip`".into()),
    }
}

/// A variant name is a metric label value and a CloudEvents attribute value.
fn check_label(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid variant name {name:?}: 1 to 64 letters, digits, `-` or `_`"
        ))
    }
}

/// The cache store: none when no route caches; the previous version's
/// (its entries kept) when its bounds and shared tier are the same. A
/// store with a shared tier listens for other instances' invalidations
/// when it will serve (`listen`).
pub(super) fn cache_store(
    loaded: &LoadedConfig,
    metrics: &Metrics,
    previous: Option<&Arc<crate::cache::Store>>,
    listen: bool,
) -> Result<Option<Arc<crate::cache::Store>>, ConfigError> {
    let config = &loaded.config;
    if !config.routes.iter().any(|r| r.cache.is_some()) {
        return Ok(None);
    }
    let max_bytes = config.cache.max_bytes.0;
    let max_entry = config.cache.max_entry_bytes.as_usize();
    if let Some(previous) = previous
        && previous.max_bytes == max_bytes
        && previous.max_entry == max_entry
        && previous.shared_config() == config.cache.redis.as_ref()
    {
        return Ok(Some(previous.clone()));
    }
    let metrics = metrics.traffic.cache.clone();
    let Some(redis) = &config.cache.redis else {
        return Ok(Some(crate::cache::Store::new(
            max_bytes, max_entry, metrics,
        )));
    };
    let key = KeyPath::root().key("cache").key("redis");
    if redis.timeout.0.is_zero() {
        return Err(loaded
            .source
            .error_at(&key.key("timeout"), "the timeout must be more than 0s"));
    }
    crate::cache::Store::with_shared(max_bytes, max_entry, metrics, redis, listen)
        .map(Some)
        .map_err(|e| loaded.source.error_at(&key.key("url"), e))
}

/// The cache policy of route `index`, if it has one.
pub(super) fn route_cache(
    loaded: &LoadedConfig,
    index: usize,
    route: &Route,
    store: Option<&Arc<crate::cache::Store>>,
) -> Result<Option<crate::cache::RouteCache>, ConfigError> {
    let (Some(config), Some(store)) = (&route.cache, store) else {
        return Ok(None);
    };
    let key = KeyPath::root().key("routes").index(index).key("cache");
    if config.ttl.0.is_zero() && config.stale_while_revalidate.0.is_zero() {
        return Err(loaded.source.error_at(
            &key.key("ttl"),
            "ttl 0s keeps nothing: give a duration, or remove `cache`",
        ));
    }
    let mut vary = Vec::with_capacity(config.vary.len());
    for (i, name) in config.vary.iter().enumerate() {
        let parsed = HeaderName::try_from(name.as_str()).map_err(|_| {
            loaded.source.error_at(
                &key.key("vary").index(i),
                format!("{name:?} is not a valid header name"),
            )
        })?;
        vary.push(parsed);
    }
    Ok(Some(crate::cache::RouteCache {
        store: store.clone(),
        ttl: config.ttl.0,
        stale_while_revalidate: config.stale_while_revalidate.0,
        vary,
        public: config.public,
    }))
}

/// What route `index`'s methods invalidate (`invalidate_cache`).
pub(super) fn route_invalidations(
    loaded: &LoadedConfig,
    index: usize,
    route: &Route,
    service: &prost_reflect::ServiceDescriptor,
    store: Option<&Arc<crate::cache::Store>>,
) -> Result<crate::cache::Invalidations, ConfigError> {
    if route.invalidate_cache.is_empty() {
        return Ok(Default::default());
    }
    let key = KeyPath::root()
        .key("routes")
        .index(index)
        .key("invalidate_cache");
    let Some(store) = store else {
        return Err(loaded.source.error_at(
            &key,
            "no route has `cache:`: there is nothing to invalidate",
        ));
    };
    let mut by_method: std::collections::HashMap<String, Vec<_>> = Default::default();
    for (i, rule) in route.invalidate_cache.iter().enumerate() {
        let at = key.index(i);
        let err = |k: &str, message: String| loaded.source.error_at(&at.key(k), message);
        let method = find_method(service, &rule.method).map_err(|e| err("method", e))?;
        let target = match &rule.route {
            None => None,
            Some(name) => {
                let cached = loaded
                    .config
                    .routes
                    .iter()
                    .any(|r| r.display_name() == name && r.cache.is_some());
                if !cached {
                    return Err(err(
                        "route",
                        format!("no route named `{name}` has `cache:`"),
                    ));
                }
                Some(Arc::<str>::from(name.as_str()))
            }
        };
        if rule.prefixes.is_empty() {
            return Err(err("prefixes", "give at least one path prefix".into()));
        }
        for (j, prefix) in rule.prefixes.iter().enumerate() {
            if !prefix.starts_with('/') {
                return Err(loaded.source.error_at(
                    &at.key("prefixes").index(j),
                    format!("{prefix:?}: a path prefix starts with `/`"),
                ));
            }
            let template = crate::events::template::Template::compile(
                prefix,
                &method.input(),
                &method.output(),
            )
            .map_err(|e| loaded.source.error_at(&at.key("prefixes").index(j), e))?;
            by_method
                .entry(rule.method.clone())
                .or_default()
                .push((target.clone(), template));
        }
    }
    Ok(crate::cache::Invalidations::new(store.clone(), by_method))
}
