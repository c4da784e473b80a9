//! The `graphql:` section: a GraphQL endpoint whose schema is generated from
//! the gRPC services of the configured routes (docs/graphql.md).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A GraphQL endpoint (`POST`/`GET` at `path`) whose schema is generated from
/// the services of `routes:`: each method becomes a Query, Mutation or
/// Subscription field, called through its route's upstream with the route's
/// timeout and header forwarding. The top-level `plugins:` run on each
/// GraphQL request; a route's own plugins (auth, rate_limit, headers) run
/// before each call made on that route. Off when absent. See docs/graphql.md.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GraphqlConfig {
    /// The endpoint's path; it takes precedence over any REST binding with the
    /// same path.
    #[serde(default = "default_path")]
    pub path: String,
    /// How types and root fields are named: `readable` (`User`, `order`) or
    /// `mesh` (`demo_users_v1__User`, `demo_users_v1_UserService_GetUser`, as
    /// GraphQL Mesh names them).
    #[serde(default)]
    pub naming: GraphqlNaming,
    /// A request message with more fields than this is taken as one `input:`
    /// argument instead of one argument per field.
    #[serde(default = "default_input_threshold")]
    pub input_threshold: usize,
    /// Per-method overrides of where a method appears, by full method name
    /// (`demo.users.v1.UserService.CreateUser`): `query`, `mutation` or
    /// `skip` (not exposed). Unary methods only, except `skip`.
    #[serde(default)]
    pub operations: BTreeMap<String, OperationKind>,
    /// Serve the GraphiQL page to browsers on `GET <path>` (its assets are
    /// built into the binary, under `<path>/graphiql/`). The page holds no
    /// data: what it can show depends on introspection and the plugins.
    #[serde(default = "yes")]
    pub graphiql: bool,
    /// Limits checked on every operation before it runs (before any upstream
    /// call): query size, depth, aliases, root fields, complexity. The
    /// defaults are meant for the public internet. See docs/graphql.md,
    /// "Protection".
    #[serde(default)]
    pub limits: GraphqlLimits,
    /// Answer introspection (`__schema`, `__type`; `__typename` is always
    /// allowed). Turn it off in production unless clients need the schema at
    /// run time: GraphiQL and code generators rely on it.
    #[serde(default = "yes")]
    pub introspection: bool,
    /// Several operations in one HTTP request (a JSON array body). Off when
    /// absent: a batch is refused with a 400.
    #[serde(default)]
    pub batching: Option<GraphqlBatching>,
    /// Persisted queries: Automatic Persisted Queries (Apollo's sha256
    /// protocol, the default) or a safelist of registered operations.
    #[serde(default)]
    pub persisted_queries: PersistedQueries,
    /// Fields added to generated types, resolved by calling another method
    /// with a key from the parent: `Order.user` by `GetUser(id: order.user_id)`,
    /// or batched by `BatchGetUsers(ids: [...])` (one call per request and
    /// level, not one per order). See docs/graphql.md, "Joins".
    #[serde(default)]
    pub joins: Vec<JoinConfig>,
    /// Request fields filled from the GraphQL selection when they are a
    /// `google.protobuf.FieldMask` the query did not set: the upstream is
    /// told which fields of its reply are read (AIP-157 `read_mask`). Root
    /// fields only. Default `[read_mask]`; `[]` turns it off.
    #[serde(default = "default_field_masks")]
    pub field_masks: Vec<String>,
    /// The overall deadline of one GraphQL request: every upstream call gets
    /// what remains of it (or its route's timeout, if shorter).
    #[serde(default = "default_timeout")]
    pub timeout: crate::config::units::HumanDuration,
    /// Subscriptions (server-streaming methods) over WebSocket
    /// (`graphql-transport-ws`) and SSE: how many may be open and how idle
    /// connections are kept alive. See docs/graphql.md, "Subscriptions".
    #[serde(default)]
    pub subscriptions: GraphqlSubscriptions,
    /// Parsed documents kept in memory by query text (queries of up to
    /// 4 KiB that passed the limits), so a query sent again is not parsed
    /// again; least recently used out first. `0` turns the cache off.
    #[serde(default = "default_document_cache")]
    pub document_cache: usize,
}

/// The naming scheme of generated types and root fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GraphqlNaming {
    /// Types named after the message (`User`), prefixed with the package in
    /// PascalCase when two packages define the same name (`DemoUsersV1User`);
    /// root fields `GetOrder` → `order`, `ListOrders` → `orders`, others in
    /// lowerCamelCase (`createOrder`).
    #[default]
    Readable,
    /// GraphQL Mesh's gRPC source names: types `pkg__Msg` (dots in the
    /// package as `_`), root fields `pkg_Service_Method`.
    Mesh,
}

/// Where a method appears in the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// A field of `Query` (a read: may be retried, may run in parallel).
    Query,
    /// A field of `Mutation` (runs in order, never retried once sent).
    Mutation,
    /// Not exposed over GraphQL.
    Skip,
}

/// A field added to a generated type (`on`), resolved by another method.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinConfig {
    /// The message that gets the field, by full name (`demo.orders.v1.Order`).
    pub on: String,
    /// The new field's GraphQL name (`user`); must not clash with a field of
    /// the message.
    pub field: String,
    /// The parent's field holding the key (proto name, `user_id`): a string,
    /// integer or bool field. A parent whose key is empty (the zero value)
    /// gets `null` without a call.
    pub key: String,
    /// Resolve each key with one call: `method` with `argument` = the key.
    #[serde(default)]
    pub call: Option<JoinCall>,
    /// Resolve the keys of one request level together with a batch method.
    /// Takes precedence over `call`; one of the two is required.
    #[serde(default)]
    pub batch: Option<JoinBatch>,
}

/// A join resolved one key per call.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinCall {
    /// The method, by full name (`demo.users.v1.UserService.GetUser`); a unary
    /// method of a routed service. Its reply is the field's value.
    pub method: String,
    /// The request field set to the key (proto name, `id`).
    pub argument: String,
}

/// A join resolved by a batch method: the keys of every parent at one level
/// of the query (de-duplicated) go out in one call, in chunks of `max_size`,
/// and the results come back matched by key.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinBatch {
    /// The method, by full name (`demo.users.v1.UserService.BatchGetUsers`).
    pub method: String,
    /// The repeated request field that takes the keys (`ids`).
    pub argument: String,
    /// The repeated message field of the reply holding the results (`users`).
    pub results: String,
    /// The field of each result that holds its key (`id`); a key without a
    /// result resolves to `null`.
    #[serde(rename = "match")]
    pub match_field: String,
    /// Most keys per call; larger batches are split into concurrent calls.
    #[serde(default = "default_max_batch")]
    pub max_size: usize,
}

fn default_field_masks() -> Vec<String> {
    vec!["read_mask".to_owned()]
}

fn default_max_batch() -> usize {
    100
}

fn default_timeout() -> crate::config::units::HumanDuration {
    crate::config::units::HumanDuration(std::time::Duration::from_secs(10))
}

fn yes() -> bool {
    true
}

fn default_path() -> String {
    "/graphql".to_owned()
}

fn default_input_threshold() -> usize {
    8
}

// === impl GraphqlConfig ===

impl Default for GraphqlConfig {
    fn default() -> Self {
        GraphqlConfig {
            path: default_path(),
            naming: GraphqlNaming::default(),
            input_threshold: default_input_threshold(),
            operations: BTreeMap::new(),
            graphiql: true,
            limits: GraphqlLimits::default(),
            introspection: true,
            batching: None,
            persisted_queries: PersistedQueries::default(),
            joins: Vec::new(),
            field_masks: default_field_masks(),
            timeout: default_timeout(),
            subscriptions: GraphqlSubscriptions::default(),
            document_cache: default_document_cache(),
        }
    }
}

/// Bounds on subscriptions. Each open subscription holds one upstream
/// stream; a subscription beyond a limit is refused with
/// `SUBSCRIPTION_LIMIT` (nothing is queued).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GraphqlSubscriptions {
    /// Most subscriptions open at once on this gateway instance, WebSocket
    /// and SSE together.
    #[serde(default = "default_max_open")]
    pub max_open: usize,
    /// Most subscriptions open at once on one WebSocket connection.
    #[serde(default = "default_max_per_connection")]
    pub max_per_connection: usize,
    /// How long a WebSocket client has to send `connection_init` before the
    /// connection is closed (4408).
    #[serde(default = "default_init_timeout")]
    pub init_timeout: crate::config::units::HumanDuration,
    /// How often an idle connection is kept alive: a `ping` message on
    /// WebSocket, a comment line on SSE.
    #[serde(default = "default_keepalive")]
    pub keepalive: crate::config::units::HumanDuration,
    /// Largest WebSocket message (or frame) a client may send; a larger one
    /// closes the connection (1009).
    #[serde(default = "default_max_ws_message")]
    pub max_message: crate::config::units::ByteSize,
}

impl Default for GraphqlSubscriptions {
    fn default() -> Self {
        GraphqlSubscriptions {
            max_open: default_max_open(),
            max_per_connection: default_max_per_connection(),
            init_timeout: default_init_timeout(),
            keepalive: default_keepalive(),
            max_message: default_max_ws_message(),
        }
    }
}

fn default_document_cache() -> usize {
    1000
}

fn default_max_open() -> usize {
    10_000
}

fn default_max_per_connection() -> usize {
    32
}

fn default_init_timeout() -> crate::config::units::HumanDuration {
    crate::config::units::HumanDuration(std::time::Duration::from_secs(10))
}

fn default_keepalive() -> crate::config::units::HumanDuration {
    crate::config::units::HumanDuration(std::time::Duration::from_secs(15))
}

fn default_max_ws_message() -> crate::config::units::ByteSize {
    crate::config::units::ByteSize(64 * 1024)
}

// === Protection (docs/graphql.md, "Protection") ===

/// Per-operation limits, checked before the operation runs. Every limit
/// applies to the operation that executes, with fragments expanded.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GraphqlLimits {
    /// Largest query text, checked before parsing.
    #[serde(default = "default_max_query_bytes")]
    pub max_query_bytes: crate::config::units::ByteSize,
    /// Most lexical tokens (names, punctuation, values) in the query text,
    /// counted before parsing.
    #[serde(default = "default_max_query_tokens")]
    pub max_query_tokens: usize,
    /// Deepest field nesting (a root field is depth 1). Introspection
    /// (`__schema`, `__type` and below) is bounded by
    /// `max_introspection_depth` instead.
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
    /// Deepest nesting of list fields (`types`, `fields`, `args`…) inside
    /// introspection; GraphiQL's standard introspection query needs 3.
    #[serde(default = "default_max_introspection_depth")]
    pub max_introspection_depth: usize,
    /// Most aliases (`a: user(id: "1")`) in the operation.
    #[serde(default = "default_max_aliases")]
    pub max_aliases: usize,
    /// Most root fields (each usually one upstream call) in the operation;
    /// `__typename` does not count.
    #[serde(default = "default_max_root_fields")]
    pub max_root_fields: usize,
    /// Highest cost of the operation: each field costs 1 (or its entry in
    /// `costs`), and a list field multiplies the cost of its selection by
    /// its assumed size. Introspection and `__typename` cost nothing.
    #[serde(default = "default_max_complexity")]
    pub max_complexity: u64,
    /// The assumed size of a list field when no `first`, `last`, `pageSize`,
    /// `page_size` or `limit` argument (on the field or its parent) says it.
    #[serde(default = "default_list_size")]
    pub default_list_size: u64,
    /// The cost of particular fields, by `Type.field` (`Query.orders: 5`),
    /// instead of 1.
    #[serde(default)]
    pub costs: BTreeMap<String, u64>,
}

/// Batched requests: a JSON array of GraphQL requests in one POST, answered
/// by an array of responses in the same order.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GraphqlBatching {
    /// Most operations in one batch (a larger batch is refused with a 400).
    pub max: usize,
}

/// Persisted queries: clients send a sha256 hash instead of the query text
/// (`extensions.persistedQuery: {version: 1, sha256Hash}`).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersistedQueries {
    /// `apq` (default): Automatic Persisted Queries, a hash the gateway does
    /// not know yet is `PERSISTED_QUERY_NOT_FOUND` and the client sends the
    /// query with its hash once; any query may still be sent as text.
    /// `safelist`: only the operations of `file` run. `off`: hashes are
    /// refused with `PERSISTED_QUERY_NOT_SUPPORTED`.
    #[serde(default)]
    pub mode: PersistedQueryMode,
    /// Registered operations (mode `safelist`), relative to the config file:
    /// a JSON object `{"<sha256 hex>": "<query>"}`, a JSON array of query
    /// texts, or an Apollo persisted query manifest
    /// (`{"operations": [{"id", "body"}]}`).
    #[serde(default)]
    pub file: Option<String>,
    /// Most queries kept by APQ (least recently used first out).
    #[serde(default = "default_apq_entries")]
    pub max_entries: usize,
}

/// How persisted queries work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PersistedQueryMode {
    /// Persisted queries are refused; queries are sent as text.
    Off,
    /// Automatic Persisted Queries with a bounded in-memory cache.
    #[default]
    Apq,
    /// Only the operations registered in `file` run, by hash or exact text.
    Safelist,
}

fn default_max_query_bytes() -> crate::config::units::ByteSize {
    crate::config::units::ByteSize(16 * 1024)
}

fn default_max_query_tokens() -> usize {
    2000
}

fn default_max_depth() -> usize {
    12
}

fn default_max_introspection_depth() -> usize {
    3
}

fn default_max_aliases() -> usize {
    30
}

fn default_max_root_fields() -> usize {
    20
}

fn default_max_complexity() -> u64 {
    5000
}

fn default_list_size() -> u64 {
    10
}

fn default_apq_entries() -> usize {
    1000
}

impl Default for GraphqlLimits {
    fn default() -> Self {
        GraphqlLimits {
            max_query_bytes: default_max_query_bytes(),
            max_query_tokens: default_max_query_tokens(),
            max_depth: default_max_depth(),
            max_introspection_depth: default_max_introspection_depth(),
            max_aliases: default_max_aliases(),
            max_root_fields: default_max_root_fields(),
            max_complexity: default_max_complexity(),
            default_list_size: default_list_size(),
            costs: BTreeMap::new(),
        }
    }
}

impl Default for PersistedQueries {
    fn default() -> Self {
        PersistedQueries {
            mode: PersistedQueryMode::default(),
            file: None,
            max_entries: default_apq_entries(),
        }
    }
}
