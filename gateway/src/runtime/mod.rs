//! A config version compiled into everything the request path needs: the
//! descriptor pool, upstream channels, the route table and each route's
//! plugin stack. Built completely (and so validated) before it serves, then
//! swapped in whole; in-flight requests keep the version they started on.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderName;
use prost_reflect::{DescriptorPool, ServiceDescriptor};
use switchyard_plugins::registry::{BuildContext, build_stack, with_defaults};
use switchyard_plugins::stage::HttpService;

use crate::config::{ConfigError, KeyPath, LoadedConfig, Route};
use crate::grpc::{GrpcMethods, GrpcTarget};
use crate::observability::Metrics;
use crate::routing::header_match::HeaderMatcher;
use crate::routing::{HeaderForwarding, RouteCtx, RouteTable, RouteTableBuilder};
use crate::transcode::binding::Binding;
use crate::transcode::http_rule::{self, RuleSpec};
use crate::transcode::stream::StreamLimits;
use crate::transcode::{handler, response};
use crate::upstream::Upstream;

mod graphql;
mod parts;
mod reuse;
mod traffic;
mod upstreams;
use graphql::graphql_endpoint;
use parts::{
    check_admin_token, check_load_shedding, check_route_names, check_tracing, load_protos,
    open_access_log, start_events,
};
use upstreams::build_upstreams;

/// One compiled config version.
pub struct Runtime {
    pub loaded: LoadedConfig,
    pub pool: DescriptorPool,
    pub table: Arc<RouteTable>,
    /// The methods gRPC and gRPC-Web clients reach (`routes[].grpc`).
    pub grpc: GrpcMethods,
    /// Health and reflection for the passed-through services (`grpc:`).
    pub grpc_builtins: crate::grpc::builtin::Builtins,
    /// The OpenAPI document and the path it is served at (`openapi:`).
    pub openapi: Option<(String, bytes::Bytes)>,
    /// Each route's pipeline (plugins around the handler), by route index.
    pub stacks: Vec<HttpService>,
    pub metrics: Arc<Metrics>,
    /// The GraphQL endpoint, when `graphql:` is configured.
    pub graphql: Option<crate::graphql::Endpoint>,
    /// The outbox, sinks and relays, when `events:` is configured.
    pub events: Option<Arc<crate::events::Events>>,
    /// Inbound webhook endpoints (`webhooks:`), matched before the routes.
    pub webhooks: crate::webhooks::Endpoints,
    /// Reverse-proxy routes (`proxies:`), tried when no route matches.
    pub proxies: crate::proxy::Proxies,
    /// The upstreams by name (a reload keeps the unchanged ones).
    pub upstreams: BTreeMap<String, Upstream>,
    /// The access log (`access_log:`), when serving.
    pub access_log: Option<Arc<crate::observability::access_log::AccessLog>>,
    /// Redirects, fixed answers and rewrites before any route (`edge_rules:`).
    pub edge_rules: crate::edge::rules::EdgeRules,
    /// The response cache's store, when a route has `cache:`.
    pub cache: Option<Arc<crate::cache::Store>>,
}

// === impl Runtime ===

/// What a runtime is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// To serve: the outbox file is opened and the relays deliver.
    Serve,
    /// To check a config (`switchyard validate`, tests of example files):
    /// everything is compiled, but the events outbox is a scratch file and
    /// nothing is delivered, so a check never touches (or is refused by)
    /// a running gateway's outbox.
    Check,
}

impl Runtime {
    /// Compiles `loaded` to serve. Every error names the config key it is
    /// about.
    pub async fn build(
        loaded: LoadedConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Runtime, ConfigError> {
        Runtime::build_for(loaded, metrics, Purpose::Serve, None).await
    }

    /// Compiles `loaded` to replace `self` (a reload): settings bound at
    /// start-up must not have changed; the events subsystem and unchanged
    /// upstreams are taken over (see `reuse`).
    pub async fn build_next(&self, loaded: LoadedConfig) -> Result<Runtime, ConfigError> {
        reuse::check_restart_only(&loaded, self)?;
        Runtime::build_for(loaded, self.metrics.clone(), Purpose::Serve, Some(self)).await
    }

    /// Compiles `loaded` to check it ([`Purpose::Check`]).
    pub async fn check(loaded: LoadedConfig) -> Result<Runtime, ConfigError> {
        Runtime::build_for(loaded, Default::default(), Purpose::Check, None).await
    }

    async fn build_for(
        loaded: LoadedConfig,
        metrics: Arc<Metrics>,
        purpose: Purpose,
        previous: Option<&Runtime>,
    ) -> Result<Runtime, ConfigError> {
        let source = loaded.source.clone();
        let config = &loaded.config;
        check_route_names(&loaded)?;
        check_admin_token(&loaded)?;
        check_tracing(&loaded)?;
        check_load_shedding(&loaded)?;
        // The listeners' certificates and keys, so `validate` and a reload
        // refuse files that would not serve (the edge builds its own).
        crate::edge::tls::listeners(&loaded)?;
        let pool = load_protos(&loaded)?;
        let access_log = open_access_log(&loaded, &metrics, purpose)?;
        let edge_rules = crate::edge::rules::EdgeRules::build(&loaded, &metrics)?;
        let cache = traffic::cache_store(
            &loaded,
            &metrics,
            previous.and_then(|p| p.cache.as_ref()),
            purpose == Purpose::Serve,
        )?;
        let kept = reuse::kept_upstreams(&loaded, previous);
        let upstreams = build_upstreams(&loaded, &metrics, kept)?;
        let events = match previous {
            // Unchanged (check_restart_only): one outbox for every version.
            Some(previous) => previous.events.clone(),
            None => start_events(&loaded, &metrics, purpose).await?,
        };
        let mut table = RouteTableBuilder::default();
        let mut grpc = GrpcMethods::default();
        // One bound on REST streams for all the routes of this version.
        let streams = StreamLimits::new(&config.limits);
        let mut stacks = Vec::with_capacity(config.routes.len());
        let mut targets = Vec::with_capacity(config.routes.len());
        let handler = handler::service();
        for (index, route) in config.routes.iter().enumerate() {
            let key = KeyPath::root().key("routes").index(index);
            let mut ctx = route_ctx(&loaded, index, route, &upstreams, &pool, &metrics)?;
            ctx.cache = traffic::route_cache(&loaded, index, route, cache.as_ref())?;
            ctx.streams = streams.clone();
            ctx.events = crate::events::compile::route_events(
                events.as_deref(),
                &loaded,
                index,
                route,
                &pool,
            )?;
            let service = find_service(&loaded, &pool, route, &key)?;
            ctx.invalidations =
                traffic::route_invalidations(&loaded, index, route, &service, cache.as_ref())?;
            let ctx = Arc::new(ctx);
            targets.push(crate::webhooks::forward::Target {
                route: ctx.clone(),
                service: service.clone(),
                methods: route.methods.clone(),
            });
            let mut exposed = 0;
            for (rpc, spec) in route_rules(&loaded, &pool, &service, route, &key)? {
                let binding = Binding::compile(ctx.clone(), &rpc, &spec)
                    .map_err(|e| source.error_at(&key, e.to_string()))?;
                table
                    .insert(Arc::new(binding))
                    .map_err(|e| source.error_at(&key, format!("HTTP binding conflict: {e}")))?;
                exposed += 1;
            }
            let grpc_exposed = expose_grpc(&mut grpc, &ctx, &service, route)
                .map_err(|e| source.error_at(&key.key("grpc"), e.to_string()))?;
            if exposed == 0 && !grpc_exposed {
                return Err(source.error_at(
                    &key,
                    format!(
                        "route exposes no method: {} has no google.api.http annotations; set `expose_unannotated: true` to expose them at POST /{}/{{Method}}",
                        service.full_name(),
                        service.full_name()
                    ),
                ));
            }
            let plugins = with_defaults(&config.plugins, &route.plugins);
            let ctx = BuildContext {
                base_dir: source.base_dir(),
                route: route.display_name().to_owned(),
                metrics: metrics.plugins.clone(),
            };
            let stack = build_stack(&plugins, handler.clone(), &ctx)
                .await
                .map_err(|e| source.error_at(&key.key("plugins"), e.to_string()))?;
            stacks.push(stack);
        }
        let graphql = graphql_endpoint(
            &loaded,
            &pool,
            &upstreams,
            &metrics,
            events.as_deref(),
            cache.as_ref(),
        )
        .await?;
        let table = Arc::new(table.build());
        let grpc_builtins = crate::grpc::builtin::Builtins::build(
            &config.grpc,
            &grpc,
            &pool,
            purpose == Purpose::Serve,
        )
        .map_err(|e| source.error_at(&KeyPath::root().key("grpc"), e))?;
        let webhooks = crate::webhooks::Endpoints::build(
            &loaded,
            events.as_deref(),
            &table,
            &targets,
            &metrics,
        )
        .await?;
        let proxies = crate::proxy::Proxies::build(&loaded, &metrics).await?;
        let mut runtime = Runtime {
            proxies,
            graphql,
            pool,
            table,
            grpc,
            grpc_builtins,
            webhooks,
            stacks,
            metrics,
            loaded,
            events,
            openapi: None,
            upstreams,
            access_log,
            edge_rules,
            cache,
        };
        if let Some(openapi) = &runtime.loaded.config.openapi {
            let document = crate::openapi::document(&runtime, &openapi.title);
            let json = serde_json::to_vec(&document).expect("a JSON value serializes");
            runtime.openapi = Some((openapi.path.clone(), json.into()));
        }
        Ok(runtime)
    }
}

fn route_ctx(
    loaded: &LoadedConfig,
    index: usize,
    route: &Route,
    upstreams: &BTreeMap<String, Upstream>,
    pool: &DescriptorPool,
    metrics: &Arc<Metrics>,
) -> Result<RouteCtx, ConfigError> {
    let key = KeyPath::root().key("routes").index(index);
    let upstream = traffic::known_upstream(upstreams, &route.upstream)
        .map_err(|e| loaded.source.error_at(&key.key("upstream"), e))?;
    let limits = &loaded.config.limits;
    Ok(RouteCtx {
        index,
        name: route.display_name().to_owned(),
        hosts: compile_each(loaded, &route.hosts, &key.key("hosts"), |host| {
            crate::routing::hosts::host_pattern(host)
        })?,
        match_headers: compile_each(
            loaded,
            &route.match_headers,
            &key.key("match_headers"),
            HeaderMatcher::compile,
        )?,
        timeout: route.timeout.map_or(upstream.timeout, |t| t.0),
        upstream,
        mirror: traffic::route_mirror(loaded, index, route, upstreams, metrics)?,
        cache: None,
        invalidations: Default::default(),
        split: traffic::route_split(loaded, index, route, upstreams, metrics)?,
        max_body: route
            .max_request_body
            .unwrap_or(limits.max_request_body)
            .min(limits.max_request_body)
            .as_usize(),
        serialize: response::serialize_options(&route.json),
        json: route.json.clone(),
        headers: header_rules(loaded, route, &key)?,
        rpc_status: pool.get_message_by_name("google.rpc.Status"),
        metrics: metrics.clone(),
        guard: None,
        events: Default::default(),
        streams: StreamLimits::new(limits),
        rematch: with_defaults(&loaded.config.plugins, &route.plugins)
            .iter()
            .any(|p| p.may_rewrite_path()),
    })
}

/// Each item of the config list at `key` compiled by `compile`; an error
/// names the item's index.
fn compile_each<C, T>(
    loaded: &LoadedConfig,
    items: &[C],
    key: &KeyPath,
    compile: impl Fn(&C) -> Result<T, String>,
) -> Result<Vec<T>, ConfigError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| compile(item).map_err(|e| loaded.source.error_at(&key.index(i), e)))
        .collect()
}

/// The method `name` of `service`, or the error naming its methods.
fn find_method(
    service: &ServiceDescriptor,
    name: &str,
) -> Result<prost_reflect::MethodDescriptor, String> {
    service.methods().find(|m| m.name() == name).ok_or_else(|| {
        let known: Vec<String> = service.methods().map(|m| m.name().to_owned()).collect();
        format!(
            "{} has no method `{name}`; its methods: [{}]",
            service.full_name(),
            known.join(", ")
        )
    })
}

fn header_rules(
    loaded: &LoadedConfig,
    route: &Route,
    key: &KeyPath,
) -> Result<HeaderForwarding, ConfigError> {
    let mut forward = Vec::new();
    for (i, name) in route.headers.forward.iter().enumerate() {
        let at = key.key("headers").key("forward").index(i);
        let parsed = HeaderName::try_from(name.as_str()).map_err(|_| {
            loaded
                .source
                .error_at(&at, format!("{name:?} is not a valid header name"))
        })?;
        if HeaderForwarding::is_reserved(parsed.as_str()) {
            return Err(loaded.source.error_at(
                &at,
                format!("header `{parsed}` is hop-by-hop or owned by gRPC and cannot be forwarded"),
            ));
        }
        forward.push(parsed);
    }
    Ok(HeaderForwarding {
        forward,
        forward_prefixes: route
            .headers
            .forward_prefixes
            .iter()
            .map(|p| p.to_ascii_lowercase())
            .collect(),
        response_prefix: route.headers.response_prefix.to_ascii_lowercase(),
    })
}

fn find_service(
    loaded: &LoadedConfig,
    pool: &DescriptorPool,
    route: &Route,
    key: &KeyPath,
) -> Result<ServiceDescriptor, ConfigError> {
    pool.get_service_by_name(&route.service).ok_or_else(|| {
        let known: Vec<String> = pool.services().map(|s| s.full_name().to_owned()).collect();
        loaded.source.error_at(
            &key.key("service"),
            format!(
                "service `{}` is not in the loaded protos; known services: [{}]",
                route.service,
                known.join(", ")
            ),
        )
    })
}

/// Exposes the route's methods at their gRPC paths when its `grpc` or
/// `websocket` says so; whether it did.
fn expose_grpc(
    grpc: &mut GrpcMethods,
    ctx: &Arc<RouteCtx>,
    service: &ServiceDescriptor,
    route: &Route,
) -> Result<bool, crate::grpc::table::GrpcConflict> {
    if !route.grpc.passthrough && !route.grpc.web && !route.websocket {
        return Ok(false);
    }
    for rpc in service.methods().filter(|m| route.exposes(m.name())) {
        let path = format!("/{}/{}", service.full_name(), rpc.name());
        let path = http::uri::PathAndQuery::try_from(path)
            .expect("a service and method name make a valid path");
        grpc.insert(GrpcTarget::new(
            ctx.clone(),
            rpc,
            route.grpc,
            route.websocket,
            path,
        ))?;
    }
    Ok(true)
}

/// The (method, rule) pairs a route exposes, honouring `methods:` and
/// `expose_unannotated`.
fn route_rules(
    loaded: &LoadedConfig,
    pool: &DescriptorPool,
    service: &ServiceDescriptor,
    route: &Route,
    key: &KeyPath,
) -> Result<Vec<(prost_reflect::MethodDescriptor, RuleSpec)>, ConfigError> {
    if let Some(methods) = &route.methods {
        compile_each(loaded, methods, &key.key("methods"), |name| {
            find_method(service, name)
        })?;
    }
    let mut out = Vec::new();
    for rpc in service.methods().filter(|m| route.exposes(m.name())) {
        let mut rules = http_rule::rules_of(pool, &rpc)
            .map_err(|e| loaded.source.error_at(key, e.to_string()))?;
        // Client-streaming methods have no one-request REST form: gRPC,
        // gRPC-Web and WebSocket clients reach them, REST does not.
        if rules.is_empty() && route.expose_unannotated && !rpc.is_client_streaming() {
            rules.push(http_rule::default_rule(&rpc));
        }
        out.extend(rules.into_iter().map(|r| (rpc.clone(), r)));
    }
    Ok(out)
}

// === GraphQL (docs/graphql.md) ===
