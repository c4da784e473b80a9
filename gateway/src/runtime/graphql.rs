//! The GraphQL endpoint of a config version: the schema from the routes'
//! services, each route's context with its guard (its own plugins),
//! events and cache, the protection and the top-level plugin stack around it.

use std::collections::BTreeMap;
use std::sync::Arc;

use prost_reflect::DescriptorPool;
use switchyard_plugins::registry::{BuildContext, build_stack, with_defaults};

use super::{find_service, route_ctx};
use crate::config::{ConfigError, KeyPath, LoadedConfig, Route};
use crate::observability::Metrics;
use crate::routing::RouteCtx;
use crate::upstream::Upstream;

/// The GraphQL endpoint when `graphql:` is set: the schema of the routes'
/// services (each called through its route's upstream, timeout and header
/// rules), behind the top-level plugins; each route's own plugins guard the
/// calls made on it.
pub(super) async fn graphql_endpoint(
    loaded: &LoadedConfig,
    pool: &DescriptorPool,
    upstreams: &BTreeMap<String, Upstream>,
    metrics: &Arc<Metrics>,
    events: Option<&crate::events::Events>,
    cache: Option<&Arc<crate::cache::Store>>,
) -> Result<Option<crate::graphql::Endpoint>, ConfigError> {
    use crate::graphql::{self, BuildError, root::Exposed};
    let Some(config) = &loaded.config.graphql else {
        return Ok(None);
    };
    let source = &loaded.source;
    let at = |e: BuildError| {
        let key = e
            .key
            .iter()
            .fold(KeyPath::root().key("graphql"), |k, part| {
                match part.parse::<usize>() {
                    Ok(index) => k.index(index),
                    Err(_) => k.key(part.as_str()),
                }
            });
        source.error_at(&key, e.message)
    };
    graphql::Endpoint::check_path(&config.path).map_err(at)?;
    let mut exposed = Vec::with_capacity(loaded.config.routes.len());
    for (index, route) in loaded.config.routes.iter().enumerate() {
        let key = KeyPath::root().key("routes").index(index);
        let service = find_service(loaded, pool, route, &key)?;
        exposed.push(Exposed {
            route: Arc::new({
                let mut ctx =
                    guarded_route_ctx(loaded, index, route, upstreams, pool, metrics).await?;
                ctx.events =
                    crate::events::compile::route_events(events, loaded, index, route, pool)?;
                ctx.cache = super::traffic::route_cache(loaded, index, route, cache)?;
                ctx.invalidations =
                    super::traffic::route_invalidations(loaded, index, route, &service, cache)?;
                ctx
            }),
            service,
            methods: route.methods.clone(),
        });
    }
    let schema = graphql::schema(pool, config, &exposed).map_err(at)?;
    let protection = graphql::protection::Protection::new(
        config,
        &schema,
        &source.base_dir(),
        metrics.graphql.clone(),
    )
    .map_err(at)?;
    let subscriptions = graphql::subscriptions::Subscriptions::new(
        &config.subscriptions,
        metrics.subscriptions.clone(),
    )
    .map_err(at)?;
    let handler = graphql::http::service(graphql::http::Served {
        schema: schema.clone(),
        protection,
        subscriptions,
        max_body: loaded.config.limits.max_request_body.as_usize(),
    });
    let ctx = BuildContext {
        base_dir: source.base_dir(),
        route: "graphql".to_owned(),
        metrics: metrics.plugins.clone(),
    };
    let stack = build_stack(&with_defaults(&loaded.config.plugins, &[]), handler, &ctx)
        .await
        .map_err(|e| source.error_at(&KeyPath::root().key("plugins"), e.to_string()))?;
    Ok(Some(graphql::Endpoint::new(
        config.path.clone(),
        schema,
        stack,
        config.graphiql,
    )))
}

/// [`route_ctx`] with the route's guard: its own plugins, run before each
/// call GraphQL makes on it (`graphql::guard`).
async fn guarded_route_ctx(
    loaded: &LoadedConfig,
    index: usize,
    route: &Route,
    upstreams: &BTreeMap<String, Upstream>,
    pool: &DescriptorPool,
    metrics: &Arc<Metrics>,
) -> Result<RouteCtx, ConfigError> {
    let mut ctx = route_ctx(loaded, index, route, upstreams, pool, metrics)?;
    let build = BuildContext {
        base_dir: loaded.source.base_dir(),
        route: route.display_name().to_owned(),
        metrics: metrics.plugins.clone(),
    };
    let key = KeyPath::root().key("routes").index(index).key("plugins");
    ctx.guard = crate::graphql::guard::Guard::build(&route.plugins, &build)
        .await
        .map_err(|e| loaded.source.error_at(&key, e.to_string()))?;
    Ok(ctx)
}
