//! A route's `events:` compiled against its service, each definition
//! checked (method, sink, templates) with its config location.

use std::collections::HashMap;
use std::sync::Arc;

use prost_reflect::DescriptorPool;

use super::{EventSpec, Events};
use crate::config::{ConfigError, KeyPath, LoadedConfig, Route};

/// The route's event definitions by method name (simple name).
pub type RouteEvents = HashMap<String, Vec<Arc<EventSpec>>>;

/// Compiles `routes[index].events`.
pub fn route_events(
    events: Option<&Events>,
    loaded: &LoadedConfig,
    index: usize,
    route: &Route,
    pool: &DescriptorPool,
) -> Result<RouteEvents, ConfigError> {
    let mut out = RouteEvents::new();
    if route.events.is_empty() {
        return Ok(out);
    }
    let key = KeyPath::root().key("routes").index(index).key("events");
    let Some(events) = events else {
        return Err(loaded.source.error_at(
            &key,
            "this route publishes events but there is no top-level `events:` section (the outbox and the sinks)",
        ));
    };
    let Some(service) = pool.get_service_by_name(&route.service) else {
        return Ok(out); // reported where the route's service is resolved
    };
    for (i, definition) in route.events.iter().enumerate() {
        let at = key.clone().index(i);
        let method = service
            .methods()
            .find(|m| m.name() == definition.method)
            .ok_or_else(|| {
                loaded.source.error_at(
                    &at.clone().key("method"),
                    format!(
                        "{} has no method `{}`",
                        service.full_name(),
                        definition.method
                    ),
                )
            })?;
        if method.is_client_streaming() || method.is_server_streaming() {
            return Err(loaded.source.error_at(
                &at.key("method"),
                format!(
                    "`{}` is streaming; events follow unary calls",
                    definition.method
                ),
            ));
        }
        let spec = events
            .definition(definition, route.display_name(), &method)
            .map_err(|e| {
                let key = e
                    .key
                    .iter()
                    .fold(at.clone(), |k, part| k.key(part.as_str()));
                loaded.source.error_at(&key, e.message)
            })?;
        out.entry(definition.method.clone())
            .or_default()
            .push(Arc::new(spec));
    }
    Ok(out)
}
