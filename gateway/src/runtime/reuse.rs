//! What a reload takes over from the running version instead of building
//! anew, and what it cannot change.
//!
//! Settings bound when the process starts (the listeners' sockets and
//! TLS, the admin listener, the worker threads, the connection limits, the
//! span exporter, the events outbox and its relays) are not rebuilt by a reload: a reload that
//! changes one of them is refused with the key that changed, and the
//! running version keeps serving. Sections are compared by value after
//! defaults are applied (their `Debug` forms), so writing out a default
//! changes nothing.
//!
//! Kept: the events subsystem (one outbox file, one relay per sink, shared
//! by every version) and each upstream whose settings did not change (its
//! connections, health and ejections), unless it has a `tls:` section
//! (certificate files are read again).

use std::collections::BTreeMap;
use std::fmt::Debug;

use crate::config::{ConfigError, KeyPath, LoadedConfig};
use crate::edge::EdgeSettings;
use crate::upstream::Upstream;

use super::Runtime;

/// Refuses a change to a setting bound at start-up.
pub(super) fn check_restart_only(
    loaded: &LoadedConfig,
    previous: &Runtime,
) -> Result<(), ConfigError> {
    let (new, old) = (&loaded.config, &previous.loaded.config);
    let changed = |key: KeyPath, a: &dyn Debug, b: &dyn Debug| {
        if format!("{a:?}") == format!("{b:?}") {
            return Ok(());
        }
        Err(loaded.source.error_at(
            &key,
            format!(
                "`{key}` changed, and it is bound when the gateway starts: restart to change it (the running config keeps serving)"
            ),
        ))
    };
    let root = KeyPath::root();
    changed(root.key("listeners"), &new.listeners, &old.listeners)?;
    // The token may change: the admin API reads it per request.
    let admin = |a: &crate::config::Admin| (a.address.clone(), a.enabled);
    changed(root.key("admin"), &admin(&new.admin), &admin(&old.admin))?;
    changed(
        root.key("workers"),
        &new.worker_count(),
        &old.worker_count(),
    )?;
    changed(
        root.key("limits"),
        &EdgeSettings::from(&new.limits),
        &EdgeSettings::from(&old.limits),
    )?;
    changed(root.key("tracing"), &new.tracing, &old.tracing)?;
    changed(root.key("events"), &new.events, &old.events)
}

/// The running upstreams that `loaded` declares with the same settings.
pub(super) fn kept_upstreams(
    loaded: &LoadedConfig,
    previous: Option<&Runtime>,
) -> BTreeMap<String, Upstream> {
    let Some(previous) = previous else {
        return BTreeMap::new();
    };
    let (new, old) = (&loaded.config, &previous.loaded.config);
    let same_limits = new.limits.max_upstream_message.as_usize()
        == old.limits.max_upstream_message.as_usize()
        && new.worker_count() == old.worker_count();
    if !same_limits {
        return BTreeMap::new();
    }
    new.upstreams
        .iter()
        .filter(|(_, up)| up.tls.is_none())
        .filter_map(|(name, up)| {
            let old_up = old.upstreams.get(name)?;
            let running = previous.upstreams.get(name)?;
            (format!("{up:?}") == format!("{old_up:?}")).then(|| (name.clone(), running.clone()))
        })
        .collect()
}
