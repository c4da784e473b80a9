//! The configuration file's types. Doc comments here become the descriptions in
//! `schemas/gateway.schema.json` and the configuration reference, so they are
//! written for the person editing the YAML.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use switchyard_plugins::PluginConfig;

use super::balancing::{Balance, HealthCheck, Outlier};
use super::units::{ByteSize, HumanDuration};

/// Switchyard's configuration: where to listen, which `.proto` files describe
/// the upstream services, where those services run, and which of their methods
/// to expose on which routes.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Public listeners: each accepts HTTP/1.1 and HTTP/2 (h2c) on one address.
    #[serde(default = "default_listeners")]
    pub listeners: Vec<Listener>,
    /// The admin listener: `/metrics`, `/healthz`, `/readyz`. Keep it on loopback
    /// or a private network.
    #[serde(default)]
    pub admin: Admin,
    /// Limits applied at the edge, before any route is chosen.
    #[serde(default)]
    pub limits: Limits,
    /// Where the service descriptions come from: `.proto` files compiled at
    /// start-up (no `protoc` needed), or binary descriptor sets.
    pub protos: Protos,
    /// Upstream gRPC services by name, referenced by routes.
    #[serde(default)]
    pub upstreams: BTreeMap<String, Upstream>,
    /// Routes: which services' methods are exposed, how, and to which upstream.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Plugins applied to every route, before the route's own `plugins`; a
    /// route plugin with the same name replaces the default in its place.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// Edge worker threads. Each runs its own event loop with its own upstream
    /// connections (thread per core), so a request is served start to finish
    /// on one thread. Default: the number of CPUs available to the process.
    #[serde(default)]
    pub workers: Option<usize>,
    /// A GraphQL endpoint generated from the routes' services (docs/graphql.md); off when absent.
    #[serde(default)]
    pub graphql: Option<super::graphql::GraphqlConfig>,
    /// Domain events (CloudEvents) published through a durable outbox to
    /// brokers when calls succeed (docs/events.md); off when absent.
    #[serde(default)]
    pub events: Option<super::events::EventsConfig>,
    /// Inbound webhook endpoints: signed provider deliveries (Stripe,
    /// Standard Webhooks) verified, deduplicated and published to an events
    /// sink as CloudEvents (docs/webhooks.md).
    #[serde(default)]
    pub webhooks: Vec<super::webhooks::WebhookEndpointConfig>,
    /// gRPC services the gateway answers itself for the services routes
    /// pass through (`routes[].grpc.passthrough`).
    #[serde(default)]
    pub grpc: GrpcServices,
    /// Serve the OpenAPI 3.1 document of the REST routes (the one
    /// `switchyard openapi` prints); not served when absent.
    #[serde(default)]
    pub openapi: Option<OpenApiConfig>,
    /// Config reload without a restart: the file watch, strict mode.
    #[serde(default)]
    pub reload: super::reload::Reload,
    /// One JSON line per request, to stdout or a file; off when absent.
    #[serde(default)]
    pub access_log: Option<super::AccessLogConfig>,
    /// The gateway's own spans, exported over OTLP; off when absent.
    #[serde(default)]
    pub tracing: Option<super::tracing::TracingConfig>,
    /// Redirects, fixed answers and rewrites decided at the edge, before any
    /// route (docs/edge-logic.md); tried in order, the first match applies.
    #[serde(default)]
    pub edge_rules: Vec<super::edge::EdgeRule>,
    /// The response cache's store, shared by the routes with `cache:`
    /// (docs/caching.md).
    #[serde(default)]
    pub cache: super::cache::CacheStoreConfig,
    /// HTTP services (not gRPC) by name, referenced by `proxies`
    /// (docs/proxying.md).
    #[serde(default)]
    pub http_upstreams: super::proxy::HttpUpstreams,
    /// Reverse-proxy routes to `http_upstreams`, by path prefix: a request
    /// no route, webhook, GraphQL endpoint or gRPC method takes goes to the
    /// proxy with the longest matching prefix (docs/proxying.md).
    #[serde(default)]
    pub proxies: Vec<super::proxy::ProxyRoute>,
}

/// Where the OpenAPI document is served.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenApiConfig {
    /// The document's path (`GET`), `/openapi.json` by default.
    #[serde(default = "default_openapi_path")]
    pub path: String,
    /// The document's title; `Switchyard API` by default.
    #[serde(default = "default_openapi_title")]
    pub title: String,
    /// Also serve a docs page (Swagger UI, built into the binary) at this
    /// path, e.g. `/docs`; none when omitted.
    #[serde(default)]
    pub docs: Option<String>,
}

fn default_openapi_path() -> String {
    "/openapi.json".into()
}

fn default_openapi_title() -> String {
    "Switchyard API".into()
}

/// The gateway's own gRPC services, beside the passed-through ones.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrpcServices {
    /// `grpc.health.v1.Health`: each passed-through service SERVING while
    /// its upstream has an endpoint in service, NOT_SERVING otherwise; the
    /// empty service name (the gateway) SERVING. On by default.
    #[serde(default = "yes")]
    pub health: bool,
    /// gRPC server reflection (`grpc.reflection.v1` and `v1alpha`): the
    /// passed-through services and the files defining them, for `grpcurl`
    /// and the like. Off by default: it publishes the services' schema.
    #[serde(default)]
    pub reflection: bool,
}

impl Default for GrpcServices {
    fn default() -> Self {
        GrpcServices {
            health: true,
            reflection: false,
        }
    }
}

fn yes() -> bool {
    true
}

impl Config {
    /// `workers`, or the CPUs available to the process.
    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
            .max(1)
    }
}

/// One public listener.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// A name for logs and metrics.
    #[serde(default = "default_listener_name")]
    pub name: String,
    /// `host:port` to bind, e.g. `0.0.0.0:8080`.
    pub address: String,
    /// Serve TLS (HTTPS, and HTTP/2 by ALPN) with these certificates.
    /// Absent: plain HTTP/1.1 and h2c.
    #[serde(default)]
    pub tls: Option<super::ListenerTls>,
}

/// The admin listener.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// `host:port` to bind; loopback by default.
    #[serde(default = "default_admin_address")]
    pub address: String,
    /// Set to `false` to run without the admin listener.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A bearer token every admin endpoint but `/healthz` and `/readyz`
    /// asks for (`Authorization: Bearer <token>`); use `${ENV}` to keep it
    /// out of the file. None by default: keep the listener on loopback.
    #[serde(default)]
    pub token: Option<String>,
}

/// Edge limits. The defaults are safe on the public internet.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body accepted by any route (413 above it). Routes may set lower.
    #[serde(default = "default_max_body")]
    pub max_request_body: ByteSize,
    /// Most request headers accepted on HTTP/1.1 (431 above it).
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Largest HTTP/2 header block (decoded), and HTTP/1.1 read buffer.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: ByteSize,
    /// Time a client has to send the complete request head (slowloris
    /// defence); on a TLS listener, also the time it has to finish the TLS
    /// handshake.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: HumanDuration,
    /// Time a client has, once its request head is in, to send the whole
    /// body of a request the gateway reads whole (REST, GraphQL, inbound
    /// webhooks): 408 past it (slow POST defence). gRPC and WebSocket
    /// streams are not bound by it. Applies to connections opened after a
    /// reload.
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout: HumanDuration,
    /// HTTP/2 concurrent streams per connection.
    #[serde(default = "default_h2_streams")]
    pub h2_max_concurrent_streams: u32,
    /// Largest message accepted from an upstream (gRPC max decoding size).
    #[serde(default = "default_max_upstream_message")]
    pub max_upstream_message: ByteSize,
    /// On SIGTERM/SIGINT: time given to in-flight requests before connections are closed.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: HumanDuration,
    /// Accepted connections waiting for their worker thread, per worker; beyond
    /// this a worker is overloaded and new connections are closed at once.
    #[serde(default = "default_worker_backlog")]
    pub worker_backlog: usize,
    /// Server-streaming calls open at once over REST (SSE, NDJSON); beyond
    /// this a new one is refused with 503.
    #[serde(default = "default_max_streams")]
    pub max_streams: usize,
    /// A comment line on idle SSE streams this often, so proxies keep them open.
    #[serde(default = "default_stream_heartbeat")]
    pub stream_heartbeat: HumanDuration,
    /// Admission control: requests shed with 503 while the workers' queueing
    /// delay stays above a target.
    #[serde(default)]
    pub load_shedding: super::shedding::LoadShedding,
}

/// Where `.proto` descriptions come from.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Protos {
    /// Directories, `.proto` files, or binary `FileDescriptorSet` files (`.pb`,
    /// `.binpb`, `.desc`). A directory is an import root and every `.proto` file
    /// below it is compiled; a `.proto` file is compiled on its own. Relative
    /// paths are relative to the config file.
    pub sources: Vec<String>,
    /// Extra import roots for `import` statements (the well-known types and our
    /// `google/api` annotations are always available).
    #[serde(default)]
    pub includes: Vec<String>,
}

/// An upstream gRPC service.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Endpoints as `http://host:port` (h2c) or `https://host:port` (TLS,
    /// see `tls`); requests are balanced across them.
    pub endpoints: Vec<String>,
    /// TLS settings of the `https://` endpoints: the CAs to verify them
    /// against, a client certificate, the name to verify. Absent: the
    /// public web roots and each endpoint's host.
    #[serde(default)]
    pub tls: Option<super::UpstreamTls>,
    /// Time allowed to open a connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Default deadline of a call, sent as `grpc-timeout`; routes may override it.
    #[serde(default = "default_upstream_timeout")]
    pub timeout: HumanDuration,
    /// How often an HTTP/2 PING checks each connection.
    #[serde(default = "default_keepalive_interval")]
    pub keepalive_interval: HumanDuration,
    /// A connection whose PING is not answered within this is replaced.
    #[serde(default = "default_keepalive_timeout")]
    pub keepalive_timeout: HumanDuration,
    /// Calls in flight to this upstream (over all its endpoints and routes)
    /// beyond which a new call is refused at once with 503 UNAVAILABLE
    /// ("saturated") rather than queued: load shedding. Default 1024.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// Retries of calls that failed in transport (no connection, refused
    /// stream, reset or closed connection). Never on a status the upstream
    /// sent, never past the call's deadline.
    #[serde(default)]
    pub retry: Retry,
    /// How calls choose an endpoint: `p2c` (default) or `round_robin`.
    #[serde(default)]
    pub balance: Balance,
    /// Passive outlier ejection of endpoints that keep failing; on by default.
    #[serde(default)]
    pub outlier: Outlier,
    /// Active gRPC health checks of each endpoint; off when omitted.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// The gateway is not ready (`/readyz` 503) while this upstream has no
    /// endpoint in service: give it a `health_check` so that a dead one is
    /// noticed before a call fails. Default false.
    #[serde(default)]
    pub critical: bool,
}

/// When calls to an upstream are retried. A call that cannot have reached the
/// upstream (no connection, not sent, HTTP/2 `REFUSED_STREAM`) is retried
/// whatever its HTTP method; one that may have reached it (reset or closed
/// connection while waiting for the answer) only if it is a GET or HEAD. A
/// retry prefers another endpoint.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Attempts per call, the first included: `1` disables retries. Default 2.
    #[serde(default = "default_retry_attempts")]
    pub attempts: u32,
    /// Retry budget: retries allowed as a fraction of the calls made over the
    /// last 10 seconds, on top of `min_per_second`, so a failing upstream is
    /// not hit with a multiple of its load. Between 0 and 1000; default 0.2.
    #[serde(default = "default_budget_ratio")]
    pub budget_ratio: f32,
    /// Retries a second always allowed, however few calls were made (the
    /// budget's reserve, counted over 10 seconds). Default 10.
    #[serde(default = "default_retry_min_per_second")]
    pub min_per_second: u32,
}

/// A route: the methods of one gRPC service exposed over REST.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// A name for metrics and logs; defaults to the service name.
    #[serde(default)]
    pub name: Option<String>,
    /// The fully-qualified gRPC service, e.g. `demo.users.v1.UserService`.
    pub service: String,
    /// Only requests for these hosts (`api.example.com`, or `*.example.com`
    /// for any subdomain); any host when omitted. The same path may be routed
    /// differently per host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Only requests whose headers meet every one of these conditions. Routes
    /// with conditions are tried before the route without any that binds the
    /// same method and path; when none matches, 404.
    #[serde(default)]
    pub match_headers: Vec<HeaderMatch>,
    /// Only these methods (by simple name); all of the service's methods when omitted.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// The upstream (a key of `upstreams`) that serves the service.
    pub upstream: String,
    /// Send a share of the route's requests to other upstreams (canary,
    /// A/B), sticky by a key, with header or cookie overrides; all to
    /// `upstream` when omitted (docs/edge-logic.md).
    #[serde(default)]
    pub split: Option<super::edge::Split>,
    /// Copy a share of the route's unary REST calls to a shadow upstream,
    /// fire and forget (docs/edge-logic.md); none when omitted.
    #[serde(default)]
    pub mirror: Option<super::edge::Mirror>,
    /// Keep the route's unary GET answers and serve them again
    /// (docs/caching.md); not cached when omitted.
    #[serde(default)]
    pub cache: Option<super::cache::RouteCacheConfig>,
    /// Cached answers (of any route) this route's methods make obsolete
    /// when their calls succeed (docs/caching.md).
    #[serde(default)]
    pub invalidate_cache: Vec<super::cache::CacheInvalidation>,
    /// Deadline for calls on this route; the upstream's `timeout` when omitted.
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// Also expose methods without a `google.api.http` annotation at
    /// `POST /{package.Service}/{Method}` with the whole request as the JSON body.
    #[serde(default)]
    pub expose_unannotated: bool,
    /// Largest request body on this route; the edge limit when omitted.
    #[serde(default)]
    pub max_request_body: Option<ByteSize>,
    /// How JSON is read and written on this route.
    #[serde(default)]
    pub json: JsonOptions,
    /// Which request headers become gRPC metadata, and how response metadata comes back.
    #[serde(default)]
    pub headers: HeaderRules,
    /// Plugins for this route, after the top-level `plugins`; the first listed
    /// sees the request first.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// Events this route publishes when a method's call succeeds (needs the
    /// top-level `events:` section for the outbox and the sinks).
    #[serde(default)]
    pub events: Vec<super::events::EventDefinition>,
    /// gRPC clients of the route's methods at `POST /{package.Service}/{Method}`:
    /// native gRPC passed through, gRPC-Web translated; off by default.
    #[serde(default)]
    pub grpc: GrpcExposure,
    /// WebSocket clients of the route's methods at `GET /{package.Service}/{Method}`
    /// (an HTTP/1.1 upgrade, after the route's plugins): each text frame the
    /// client sends is one request message in JSON, each reply message comes
    /// back as one text frame. A method that does not stream requests takes
    /// the first message as its request; for a client- or bidi-streaming
    /// method an empty text frame ends the client's messages. The call ends
    /// with a close frame: 1000 when it succeeded, else the error as a last
    /// `{"error": {…}}` text frame and close code 4000 + its gRPC code
    /// (1007: a message that is not valid JSON for the request type, 1009:
    /// one over the route's `max_request_body`, 1003: a binary frame, 1008:
    /// a message after the request or the client's end, 1014: an upstream
    /// breaking the gRPC protocol). Pings go out every
    /// `limits.stream_heartbeat` and a client silent for three of them is
    /// closed (1001); open sockets count against `limits.max_streams`. Off by
    /// default.
    #[serde(default)]
    pub websocket: bool,
}

/// Which gRPC clients reach a route's methods. Either way the request runs
/// through the route's plugins (an auth or rate-limit refusal becomes a gRPC
/// status), every kind of method is served (unary and streaming), and the
/// route's `hosts` and `methods` apply; `match_headers` does not.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrpcExposure {
    /// Native gRPC clients (HTTP/2): messages, metadata and trailers pass
    /// through untouched (no transcoding). Each message is bounded by the
    /// route's `max_request_body`; a unary call's deadline is the client's
    /// `grpc-timeout` or the route's `timeout`, whichever is shorter.
    #[serde(default)]
    pub passthrough: bool,
    /// gRPC-Web clients (browsers; `application/grpc-web` and
    /// `application/grpc-web-text`, over HTTP/1.1 or h2), translated to gRPC:
    /// trailers come back at the end of the body. Pair it with a `cors`
    /// plugin that allows the `x-grpc-web` and `content-type` request headers
    /// and exposes `grpc-status` and `grpc-message`.
    #[serde(default)]
    pub web: bool,
}

/// A condition on one request header (`match_headers`): `name` and exactly
/// one of `exact`, `prefix` or `present`. A header sent several times, or as a
/// comma-separated list, matches when any one value does; values are compared
/// byte for byte.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    /// The header name (case-insensitive).
    pub name: String,
    /// The value must equal this.
    #[serde(default)]
    pub exact: Option<String>,
    /// The value must start with this.
    #[serde(default)]
    pub prefix: Option<String>,
    /// `true`: the header must be sent (any value); `false`: it must not be.
    #[serde(default)]
    pub present: Option<bool>,
}

/// JSON mapping options (proto3 JSON).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonOptions {
    /// Unknown fields in a request body or query: `reject` (400, the default) or `ignore`.
    #[serde(default)]
    pub unknown_fields: UnknownFields,
    /// Write fields with default values (0, "", false, empty lists) instead of omitting them.
    #[serde(default)]
    pub emit_defaults: bool,
    /// Write proto field names (`user_id`) instead of lowerCamelCase (`userId`).
    #[serde(default)]
    pub use_proto_names: bool,
    /// Write enums as numbers instead of names.
    #[serde(default)]
    pub enums_as_ints: bool,
}

/// What to do with a field the message does not define.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnknownFields {
    /// Answer 400 naming the field.
    #[default]
    Reject,
    /// Drop it silently.
    Ignore,
}

/// Header ↔ metadata rules. Only allowed headers cross: a gateway must not leak
/// hop-by-hop or internal headers to upstreams.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderRules {
    /// Request headers forwarded as gRPC metadata, by exact name (lower case).
    #[serde(default = "default_forward_headers")]
    pub forward: Vec<String>,
    /// Request headers forwarded when their name starts with one of these prefixes.
    #[serde(default)]
    pub forward_prefixes: Vec<String>,
    /// Prefix given to response metadata returned as HTTP headers.
    #[serde(default = "default_response_prefix")]
    pub response_prefix: String,
}

// === defaults ===

fn default_listeners() -> Vec<Listener> {
    vec![Listener {
        name: default_listener_name(),
        address: "127.0.0.1:8080".into(),
        tls: None,
    }]
}

fn default_listener_name() -> String {
    "public".into()
}

fn default_admin_address() -> String {
    "127.0.0.1:9090".into()
}

fn default_max_body() -> ByteSize {
    ByteSize::mib(4)
}

fn default_max_headers() -> usize {
    100
}

fn default_max_header_bytes() -> ByteSize {
    ByteSize::kib(64)
}

fn default_header_read_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

fn default_body_read_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}

fn default_h2_streams() -> u32 {
    200
}

fn default_max_upstream_message() -> ByteSize {
    ByteSize::mib(4)
}

fn default_shutdown_grace() -> HumanDuration {
    HumanDuration::from_secs(30)
}

fn default_worker_backlog() -> usize {
    1024
}

fn default_max_streams() -> usize {
    10_000
}

fn default_stream_heartbeat() -> HumanDuration {
    HumanDuration::from_secs(15)
}

fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(2)
}

fn default_upstream_timeout() -> HumanDuration {
    HumanDuration::from_secs(15)
}

fn default_keepalive_interval() -> HumanDuration {
    HumanDuration::from_secs(30)
}

fn default_keepalive_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

fn default_max_concurrent() -> usize {
    1024
}

fn default_retry_attempts() -> u32 {
    2
}

fn default_budget_ratio() -> f32 {
    0.2
}

fn default_retry_min_per_second() -> u32 {
    10
}

fn default_forward_headers() -> Vec<String> {
    ["authorization", "x-request-id", "traceparent", "tracestate"]
        .into_iter()
        .map(String::from)
        .collect()
}

fn default_response_prefix() -> String {
    "grpc-metadata-".into()
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            address: default_admin_address(),
            enabled: true,
            token: None,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_body: default_max_body(),
            max_headers: default_max_headers(),
            max_header_bytes: default_max_header_bytes(),
            header_read_timeout: default_header_read_timeout(),
            body_read_timeout: default_body_read_timeout(),
            h2_max_concurrent_streams: default_h2_streams(),
            max_upstream_message: default_max_upstream_message(),
            shutdown_grace: default_shutdown_grace(),
            worker_backlog: default_worker_backlog(),
            max_streams: default_max_streams(),
            stream_heartbeat: default_stream_heartbeat(),
            load_shedding: Default::default(),
        }
    }
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: default_retry_attempts(),
            budget_ratio: default_budget_ratio(),
            min_per_second: default_retry_min_per_second(),
        }
    }
}

impl Default for HeaderRules {
    fn default() -> Self {
        HeaderRules {
            forward: default_forward_headers(),
            forward_prefixes: Vec::new(),
            response_prefix: default_response_prefix(),
        }
    }
}

impl Route {
    /// The route's name for metrics and logs.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.service)
    }

    /// Whether the route exposes the service's method `name` (`methods`).
    pub fn exposes(&self, name: &str) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|methods| methods.iter().any(|m| m == name))
    }
}
