//! A route's `events:` compiled against its service, each definition
//! checked (method, sink, templates) with its config location.

use std::collections::HashMap;
use std::sync::Arc;

use prost_reflect::DescriptorPool;
use switchyard_plugins::error::{Code, ErrorResponse};

use super::{EventSpec, Events, Occurrence};
use crate::config::{ConfigError, KeyPath, LoadedConfig, Route};

/// The route's event definitions by method name (simple name), used the
/// same way by REST and GraphQL calls: [`RouteEvents::admit`] before the
/// call, [`RouteEvents::emit`] after it succeeded.
#[derive(Debug, Default)]
pub struct RouteEvents(HashMap<String, Vec<Arc<EventSpec>>>);

impl RouteEvents {
    /// Refuses a call of `method` (503) when one of its must-deliver
    /// events has no room in the outbox, before the upstream acts.
    pub fn admit(&self, method: &str) -> Result<(), ErrorResponse> {
        for event in self.0.get(method).into_iter().flatten() {
            event.admit().map_err(|_| {
                ErrorResponse::new(
                    Code::Unavailable,
                    "the event outbox is full; try again later",
                )
            })?;
        }
        Ok(())
    }

    /// Appends the events `call` of `method` publishes (on success, or on
    /// the statuses they name).
    pub fn emit(&self, method: &str, call: &Occurrence<'_>) {
        for event in self.0.get(method).into_iter().flatten() {
            event.emit(call);
        }
    }

    /// Whether `method` has events at all (before building an occurrence).
    pub fn any(&self, method: &str) -> bool {
        self.0.contains_key(method)
    }
}

/// Compiles `routes[index].events`.
pub fn route_events(
    events: Option<&Events>,
    loaded: &LoadedConfig,
    index: usize,
    route: &Route,
    pool: &DescriptorPool,
) -> Result<RouteEvents, ConfigError> {
    let mut out = HashMap::new();
    if route.events.is_empty() {
        return Ok(RouteEvents(out));
    }
    let key = KeyPath::root().key("routes").index(index).key("events");
    let Some(events) = events else {
        return Err(loaded.source.error_at(
            &key,
            "this route publishes events but there is no top-level `events:` section (the outbox and the sinks)",
        ));
    };
    let Some(service) = pool.get_service_by_name(&route.service) else {
        return Ok(RouteEvents(out)); // reported where the route's service is resolved
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
            .or_insert_with(Vec::new)
            .push(Arc::new(spec));
    }
    Ok(RouteEvents(out))
}
