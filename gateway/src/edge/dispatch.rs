//! Per-request dispatch: take the live runtime, match the route, run the
//! route's pipeline, record metrics. Requests keep the runtime they started
//! on, so a config swap never changes a request mid-flight.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use http::Method;

use arc_swap::ArcSwap;
use switchyard_plugins::error::{Code, ErrorResponse};
use switchyard_plugins::stage::{
    BoxFuture, ClientAddr, ConsumerSlot, OriginalUri, Request, Response,
};
use tower::{Service, ServiceExt};

use super::Shutdown;
use super::websocket::{self, Sessions};
use crate::grpc::{self, GrpcMatched, GrpcTarget};
use crate::observability::{Metrics, access_log, otel, trace};
use crate::routing::RouteCtx;
use crate::routing::hosts::request_host;
use crate::routing::normalize::normalize;
use crate::runtime::Runtime;
use crate::transcode::binding::Binding;
use crate::transcode::websocket::WsMatched;
use tracing::Instrument as _;

/// The gateway's shared state: the live runtime and process-wide metrics.
pub struct Gateway {
    runtime: ArcSwap<Runtime>,
    pub metrics: Arc<Metrics>,
    ready: AtomicBool,
    /// The WebSocket sessions of upgraded connections.
    pub sessions: Sessions,
}

// === impl Gateway ===

impl Gateway {
    /// The gateway serving `runtime`; its WebSocket sessions end when
    /// `shutdown` is triggered.
    pub fn new(runtime: Runtime, shutdown: Shutdown) -> Arc<Gateway> {
        let metrics = runtime.metrics.clone();
        metrics.config_version.inc();
        Arc::new(Gateway {
            runtime: ArcSwap::from_pointee(runtime),
            metrics,
            ready: AtomicBool::new(false),
            sessions: Sessions::new(shutdown),
        })
    }

    /// The live runtime.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Replaces the live runtime; in-flight requests finish on the old one.
    pub fn swap(&self, next: Runtime) {
        self.runtime.store(Arc::new(next));
        self.metrics.config_version.inc();
    }

    /// Ready once the listeners are bound, not ready once draining.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Serves one request. The future is boxed with an explicit `Send` bound
    /// (see `transcode::handler::service`).
    pub fn dispatch(self: Arc<Self>, req: Request) -> BoxFuture<Result<Response, Infallible>> {
        Box::pin(async move { Ok(self.serve(req).await) })
    }

    /// Every request passes here: the trace context is made sure of, the
    /// request is served, then counted (and logged).
    async fn serve(&self, mut req: Request) -> Response {
        let clock = Instant::now();
        // Admission control first: a shed request costs next to nothing.
        if let Some(shed) = super::shedding::refuse(self, &req) {
            self.metrics
                .observe_http("-", req.method().as_str(), 503, clock.elapsed());
            return shed;
        }
        let runtime = self.runtime();
        let method = req.method().clone();
        // A span of its own when spans are exported (its context becomes
        // the request's `traceparent`), else the client's trace context
        // kept or one started.
        let span = otel::request_span(&method, req.headers_mut());
        if span.is_disabled() {
            trace::ensure(req.headers_mut());
        }
        let started = runtime
            .access_log
            .as_ref()
            .map(|_| started(&mut req, clock));
        let (response, served) = self
            .dispatch_inner(&runtime, req)
            .instrument(span.clone())
            .await;
        let status = response.status().as_u16();
        if !span.is_disabled() {
            otel::rename(&span, format!("{method} {}", served.span_name()));
            span.record("http.route", served.path());
            span.record("http.response.status_code", status);
        }
        self.metrics
            .observe_http(served.label(), method.as_str(), status, clock.elapsed());
        match (&runtime.access_log, started) {
            (Some(log), Some(started)) => log.wrap(response, started, served.describe()),
            _ => response,
        }
    }

    /// A gRPC or gRPC-Web call: the route exposing the method runs it (its
    /// plugins, then `grpc::passthrough`); an unknown method is
    /// UNIMPLEMENTED, and every refusal a gRPC status.
    async fn dispatch_grpc(
        &self,
        runtime: &Runtime,
        mut req: Request,
        protocol: grpc::Protocol,
        preflight: bool,
    ) -> (Response, ServedBy) {
        let target = runtime
            .grpc
            .find(req.uri().path(), || request_host(&req))
            .filter(|t| preflight || t.serves(protocol))
            .cloned();
        if target.is_none()
            && protocol == grpc::Protocol::Native
            && let Some(mut builtin) = runtime.grpc_builtins.find(req.uri().path())
        {
            let response = match builtin.ready().await {
                Ok(service) => match service.call(req).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                },
                Err(never) => match never {},
            };
            return (response, ServedBy::Fixed("-"));
        }
        let Some(target) = target else {
            let message = format!("unknown method {}", req.uri().path());
            let code = Code::Unimplemented as i32;
            self.metrics
                .grpc
                .calls
                .with_label_values(&["-", protocol.label(), Code::Unimplemented.name()])
                .inc();
            let response = grpc::status::response(protocol, code, &message, Default::default());
            return (response, ServedBy::Fixed("-"));
        };
        let route = target.route.clone();
        req.extensions_mut().insert(GrpcMatched {
            target: target.clone(),
            protocol,
            preflight,
        });
        let response = run_route(runtime, route.index, req).await;
        let response = if preflight {
            response
        } else {
            grpc::status::ensure_grpc(protocol, response, &route.name, &self.metrics).await
        };
        (
            response,
            ServedBy::Route(route, Via::Grpc(target, protocol.label())),
        )
    }

    async fn dispatch_inner(&self, runtime: &Runtime, mut req: Request) -> (Response, ServedBy) {
        if let Some(refused) = super::head::refusal(&req) {
            return (refused, ServedBy::Fixed("-"));
        }
        let method = req.method().clone();
        let upgrade = websocket::is_upgrade(&req);
        if upgrade {
            req.extensions_mut().insert(self.sessions.clone());
        }
        // One normal form of the path for everything below (a malformed one is a 400).
        let normalized = normalize_uri(&mut req);
        // Edge rules (`edge_rules:`): answered here, or rewritten and routed.
        if normalized.is_ok()
            && let Some((response, rule)) = runtime.edge_rules.apply(&mut req)
        {
            return (response, ServedBy::Edge(rule));
        }
        // Inbound webhooks (`webhooks:`) come before GraphQL and the routes.
        if normalized.is_ok()
            && let Some(webhook) = runtime.webhooks.find(&req)
        {
            let mut stack = webhook.stack();
            let Ok(stack) = stack.ready().await;
            let Ok(response) = stack.call(req).await;
            return (response, ServedBy::Webhook(webhook.name().to_owned()));
        }
        // The GraphQL endpoint (`graphql.path`) comes before the route table.
        if normalized.is_ok()
            && let Some(graphql) = runtime
                .graphql
                .as_ref()
                .filter(|g| g.serves(req.uri().path()))
        {
            let Ok(response) = graphql.call(req).await;
            return (response, ServedBy::Fixed("graphql"));
        }
        // The OpenAPI document (`openapi:`).
        if let Some((path, json)) = &runtime.openapi
            && method == Method::GET
            && req.uri().path() == path
        {
            let mut response =
                http::Response::new(switchyard_plugins::stage::full_body(json.clone()));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            return (response, ServedBy::Fixed("openapi"));
        }
        // The docs page and its assets (`openapi.docs`).
        if method == Method::GET
            && let Some(openapi) = &runtime.loaded.config.openapi
            && let Some(docs) = &openapi.docs
            && req.uri().path().starts_with(docs.as_str())
            && let Some(response) =
                crate::openapi::docs::serve(docs, &openapi.path, req.uri().path(), req.headers())
        {
            return (response, ServedBy::Fixed("openapi"));
        }
        // WebSocket clients of methods, at the methods' gRPC paths.
        if normalized.is_ok()
            && upgrade
            && let Some(target) = runtime
                .grpc
                .find(req.uri().path(), || request_host(&req))
                .filter(|t| t.websocket)
                .cloned()
        {
            let route = target.route.clone();
            req.extensions_mut().insert(WsMatched {
                target: target.clone(),
            });
            let response = run_route(runtime, route.index, req).await;
            return (
                response,
                ServedBy::Route(route, Via::Grpc(target, "websocket")),
            );
        }
        // gRPC and gRPC-Web clients, by content type (and CORS preflights
        // of gRPC-Web methods).
        if normalized.is_ok()
            && let Some((protocol, preflight)) = grpc_request(runtime, &req)
        {
            return self.dispatch_grpc(runtime, req, protocol, preflight).await;
        }
        let matched = normalized.and_then(|()| {
            runtime.table.lookup(
                &method,
                request_host(&req).as_deref(),
                req.uri().path(),
                req.headers(),
            )
        });
        match matched {
            Ok(matched) => {
                let binding = matched.binding.clone();
                req.extensions_mut().insert(matched);
                if binding.route.rematch {
                    req.extensions_mut()
                        .insert(crate::routing::Rematch(runtime.table.clone()));
                }
                let response = run_route(runtime, binding.route.index, req).await;
                (
                    response,
                    ServedBy::Route(binding.route.clone(), Via::Rest(binding)),
                )
            }
            // No route binds the path (or not for this method): a proxy
            // whose prefix covers it takes the request.
            Err(error)
                if matches!(
                    error.http_status,
                    http::StatusCode::NOT_FOUND | http::StatusCode::METHOD_NOT_ALLOWED
                ) && let Some(proxy) = runtime.proxies.find(&req) =>
            {
                let served = ServedBy::Proxy(proxy.proxy().clone());
                if let Some(refused) = proxy.proxy().refuse_path(req.uri().path()) {
                    return (refused.into_response(), served);
                }
                let mut stack = proxy.stack();
                let Ok(stack) = stack.ready().await;
                let Ok(response) = stack.call(req).await;
                (response, served)
            }
            Err(error) => (error.into_response(), ServedBy::Fixed("-")),
        }
    }
}

/// What served a request: the metrics' route label, and what the access
/// log says of it.
enum ServedBy {
    /// No route: `-` (unmatched, gRPC built-ins), `graphql`, `openapi`.
    Fixed(&'static str),
    /// An inbound webhook endpoint, by name.
    Webhook(String),
    /// An edge rule that answered, by name.
    Edge(Arc<str>),
    Route(Arc<RouteCtx>, Via),
    /// A reverse proxy (`proxies:`).
    Proxy(Arc<crate::proxy::Proxy>),
}

/// How a route was reached.
enum Via {
    Rest(Arc<Binding>),
    /// A gRPC path, by protocol (`grpc`, `grpc-web`, `websocket`).
    Grpc(Arc<GrpcTarget>, &'static str),
}

impl ServedBy {
    fn label(&self) -> &str {
        match self {
            ServedBy::Fixed(label) => label,
            ServedBy::Webhook(name) => name,
            ServedBy::Edge(name) => name,
            ServedBy::Route(route, _) => &route.name,
            ServedBy::Proxy(proxy) => &proxy.name,
        }
    }

    /// The route's template or gRPC path (`-` without a route).
    fn path(&self) -> String {
        match self {
            ServedBy::Route(_, Via::Rest(binding)) => binding.template.to_string(),
            ServedBy::Route(_, Via::Grpc(target, _)) => target.path.to_string(),
            ServedBy::Proxy(proxy) => proxy.prefix.clone(),
            _ => "-".to_owned(),
        }
    }

    /// What a span calls the exchange: its template or gRPC path, else
    /// what served it (`graphql`, `openapi`, a webhook endpoint).
    fn span_name(&self) -> String {
        match self {
            ServedBy::Route(..) | ServedBy::Proxy(_) => self.path(),
            other => other.label().to_owned(),
        }
    }

    fn describe(self) -> access_log::Served {
        let fixed = |route: &str, protocol| access_log::Served {
            route: route.to_owned(),
            path: "-".to_owned(),
            protocol,
            upstream: None,
        };
        match self {
            ServedBy::Fixed(label) => fixed(label, "http"),
            ServedBy::Webhook(name) => fixed(&name, "webhook"),
            ServedBy::Edge(name) => fixed(&name, "edge"),
            ServedBy::Proxy(proxy) => access_log::Served {
                route: proxy.name.clone(),
                path: proxy.prefix.clone(),
                protocol: "proxy",
                upstream: Some(proxy.upstream.name.clone()),
            },
            ServedBy::Route(ref route, ref via) => {
                let path = self.path();
                let protocol = match via {
                    Via::Rest(_) => "rest",
                    Via::Grpc(_, protocol) => protocol,
                };
                access_log::Served {
                    route: route.name.clone(),
                    path,
                    protocol,
                    upstream: Some(route.upstream.name.clone()),
                }
            }
        }
    }
}

/// What the access log keeps of a request before it is served; puts the
/// slot `auth` names the consumer in.
fn started(req: &mut Request, clock: Instant) -> access_log::Started {
    let consumer = ConsumerSlot::default();
    req.extensions_mut().insert(consumer.clone());
    let variant = crate::routing::VariantSlot::default();
    req.extensions_mut().insert(variant.clone());
    access_log::Started {
        at: std::time::SystemTime::now(),
        clock,
        method: req.method().clone(),
        trace_id: trace::trace_id(req.headers()).map(str::to_owned),
        client: req.extensions().get::<ClientAddr>().map(|a| a.0.ip()),
        consumer: consumer.0,
        variant,
    }
}

/// Runs `req` through the pipeline of route `index` (its plugins, then the
/// handler).
async fn run_route(runtime: &Runtime, index: usize, req: Request) -> Response {
    let mut stack = runtime.stacks[index].clone();
    // `ready` then `call` rather than `oneshot` (rust-lang/rust#102211).
    let Ok(stack) = stack.ready().await;
    let Ok(response) = stack.call(req).await;
    response
}

/// Whether `req` is a gRPC call (its protocol), or the CORS preflight of a
/// gRPC-Web method.
fn grpc_request(runtime: &Runtime, req: &Request) -> Option<(grpc::Protocol, bool)> {
    if let Some(protocol) = grpc::Protocol::of(req.headers()) {
        return (req.method() == Method::POST).then_some((protocol, false));
    }
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        && runtime
            .grpc
            .find(req.uri().path(), || request_host(req))
            .is_some_and(|t| t.exposure.web);
    preflight.then_some((grpc::Protocol::Web, true))
}

/// Rewrites the request's path to its normal form (see `routing::normalize`),
/// so routing and every plugin see the same path; a malformed one is a 400.
fn normalize_uri(req: &mut Request) -> Result<(), ErrorResponse> {
    let normal = match normalize(req.uri().path()) {
        Ok(std::borrow::Cow::Borrowed(_)) => return Ok(()),
        Ok(std::borrow::Cow::Owned(path)) => path,
        Err(e) => {
            return Err(ErrorResponse::new(
                Code::InvalidArgument,
                format!("invalid request path: {e}"),
            ));
        }
    };
    let mut parts = req.uri().clone().into_parts();
    let path_and_query = match req.uri().query() {
        Some(query) => format!("{normal}?{query}"),
        None => normal,
    };
    parts.path_and_query = Some(
        path_and_query
            .parse()
            .map_err(|_| ErrorResponse::new(Code::InvalidArgument, "invalid request path"))?,
    );
    let normal = http::Uri::from_parts(parts)
        .map_err(|_| ErrorResponse::new(Code::InvalidArgument, "invalid request path"))?;
    let original = std::mem::replace(req.uri_mut(), normal);
    req.extensions_mut().insert(OriginalUri(original));
    Ok(())
}
