//! `/readyz` (ready to take traffic) and `/admin/upstreams` (endpoints,
//! health, ejections).

use http::StatusCode;
use serde_json::json;
use switchyard_plugins::stage::Response;

use super::{json, text};
use crate::edge::Gateway;

/// 200 `ready` when the listeners are bound and not draining, every
/// `critical` upstream has an endpoint in service, and the events outbox
/// (if any) commits; otherwise 503 with the reasons, one per line.
pub(super) fn readyz(gateway: &Gateway) -> Response {
    let reasons = not_ready(gateway);
    if reasons.is_empty() {
        return text(StatusCode::OK, "text/plain", "ready\n".into());
    }
    let mut body = String::from("not ready\n");
    for reason in reasons {
        body.push_str(&reason);
        body.push('\n');
    }
    text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", body)
}

/// Why the gateway should not get traffic now (none: ready).
pub fn not_ready(gateway: &Gateway) -> Vec<String> {
    if !gateway.is_ready() {
        return vec!["starting or draining".to_owned()];
    }
    let runtime = gateway.runtime();
    let mut reasons = Vec::new();
    for (name, up) in &runtime.loaded.config.upstreams {
        let serving = runtime.upstreams.get(name).is_some_and(|u| u.is_serving());
        if up.critical && !serving {
            reasons.push(format!(
                "critical upstream `{name}` has no endpoint in service"
            ));
        }
    }
    if let Some(events) = &runtime.events
        && !events.is_writable()
    {
        reasons.push("the events outbox does not commit (see the logs)".to_owned());
    }
    reasons
}

/// `GET /admin/upstreams`: each upstream, whether it serves, and each of
/// its endpoints' health, circuit and ejection.
pub(super) fn upstreams(gateway: &Gateway) -> Response {
    let runtime = gateway.runtime();
    let config = &runtime.loaded.config.upstreams;
    let upstreams: Vec<_> = runtime
        .upstreams
        .iter()
        .map(|(name, up)| up.status(config.get(name).is_some_and(|c| c.critical)))
        .collect();
    let http = runtime.proxies.upstreams();
    json(
        StatusCode::OK,
        json!({ "upstreams": upstreams, "http_upstreams": http }).to_string(),
    )
}
