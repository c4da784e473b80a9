//! The GraphQL endpoint: a schema generated at run time from the gRPC
//! services of the configured routes (async-graphql's dynamic API), served
//! at `graphql.path` behind the top-level plugins. docs/graphql.md has the
//! mapping rules.
//!
//! - [`naming`] names types and root fields, [`scalars`] maps proto scalars
//!   and well-known types, [`types`] builds output objects, enums and oneof
//!   unions, [`inputs`] input objects and the arguments → request conversion;
//! - [`root`] decides which methods are exposed where, [`call`] calls the
//!   upstream and maps its errors, [`output`] resolves fields of the replies;
//! - [`http`] is the GraphQL-over-HTTP service, [`subscriptions`] the
//!   WebSocket and SSE transports, [`graphiql`] the browser page with its
//!   assets built in.

pub mod cached;
pub mod call;
pub mod field_mask;
pub mod graphiql;
pub mod guard;
pub mod http;
pub mod inputs;
pub mod joins;
pub mod limits;
pub mod lru;
pub mod naming;
pub mod output;
pub mod persisted;
pub mod protection;
pub mod root;
pub mod scalars;
pub mod subscriptions;
pub mod types;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use async_graphql::dynamic::{
    Field, FieldFuture, Object, Schema, Subscription, SubscriptionField, SubscriptionFieldFuture,
    Type, TypeRef,
};
use prost_reflect::DescriptorPool;
use switchyard_plugins::stage::{HttpService, Request, Response};
use tower::{Service, ServiceExt};

use crate::config::graphql::GraphqlConfig;
use crate::routing::normalize::normalize;
use naming::Names;
use root::{Exposed, Root};
use types::{Comments, Reach};

/// The compiled endpoint of one config version.
pub struct Endpoint {
    /// The path it answers on (normal form).
    pub path: String,
    pub schema: Schema,
    /// The top-level plugins around [`http::service`].
    stack: HttpService,
    /// Whether browsers get the GraphiQL page on `GET <path>`.
    graphiql: bool,
}

/// The schema cannot be built from this config; `key` is below `graphql`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BuildError {
    pub key: Vec<String>,
    pub message: String,
}

// === impl BuildError ===

impl BuildError {
    pub fn at<'a>(key: impl IntoIterator<Item = &'a str>, message: impl Into<String>) -> Self {
        BuildError {
            key: key.into_iter().map(str::to_owned).collect(),
            message: message.into(),
        }
    }
}

// === impl Endpoint ===

impl Endpoint {
    /// The endpoint at `path`, served by `stack` (built around [`http::service`]).
    pub fn new(path: String, schema: Schema, stack: HttpService, graphiql: bool) -> Endpoint {
        Endpoint {
            path,
            schema,
            stack,
            graphiql,
        }
    }

    /// Checks `graphql.path`: absolute and in normal form.
    pub fn check_path(path: &str) -> Result<(), BuildError> {
        match normalize(path) {
            Ok(std::borrow::Cow::Borrowed(_)) if path.starts_with('/') => Ok(()),
            _ => Err(BuildError::at(
                ["path"],
                format!("{path:?} is not an absolute path in normal form, e.g. /graphql"),
            )),
        }
    }

    /// Whether a request for `path` (in normal form: the edge normalises it
    /// first) is for this endpoint (or, with GraphiQL on, one of the page's
    /// assets).
    pub fn serves(&self, path: &str) -> bool {
        path == self.path || (self.graphiql && self.asset_name(path).is_some())
    }

    /// `name` for `<path>/graphiql/<name>`.
    fn asset_name<'a>(&self, path: &'a str) -> Option<&'a str> {
        path.strip_prefix(self.path.trim_end_matches('/'))?
            .strip_prefix('/')?
            .strip_prefix(graphiql::ASSETS_DIR)?
            .strip_prefix('/')
    }

    /// Serves one request: the GraphiQL page or an asset of it (public,
    /// before the plugins: they hold nothing but the page), else GraphQL
    /// through the plugins.
    pub async fn call(&self, req: Request) -> Result<Response, Infallible> {
        if self.graphiql && req.method() == ::http::Method::GET {
            let path = req.uri().path();
            if let Some(name) = self.asset_name(path) {
                return Ok(graphiql::asset(name, req.headers()).unwrap_or_else(|| {
                    switchyard_plugins::ErrorResponse::new(
                        switchyard_plugins::error::Code::NotFound,
                        format!("no GraphiQL asset {name:?}"),
                    )
                    .into_response()
                }));
            }
            let has_query = req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|p| p.starts_with("query=")));
            if graphiql::wants_page(req.headers(), has_query) {
                return Ok(graphiql::page(&self.path));
            }
        }
        let mut stack = self.stack.clone();
        stack.ready().await?;
        stack.call(req).await
    }
}

/// The schema of the methods of `exposed` (routed services).
pub fn schema(
    pool: &DescriptorPool,
    config: &GraphqlConfig,
    exposed: &[Exposed],
) -> Result<Schema, BuildError> {
    let ops = root::plan(pool, config, exposed)?;
    let joins = joins::compile(pool, config, exposed)?;
    let (mut out, mut input) = (Reach::default(), Reach::default());
    for join in &joins {
        out.visit(&join.output());
    }
    for op in &ops {
        out.visit(&op.method.output());
        if op.single_input {
            input.visit(&op.method.input());
        } else {
            input.visit_flattened(&op.method.input());
        }
    }
    let all = out
        .messages
        .values()
        .chain(input.messages.values())
        .chain(input.flattened.values())
        .map(|m| (m.full_name(), m.package_name()))
        .chain(
            out.enums
                .values()
                .chain(input.enums.values())
                .map(|e| (e.full_name(), e.package_name())),
        );
    let names = Names::new(config.naming, all);
    let comments = Comments::new(pool);
    let mut types = Types::default();
    register_types(&mut types, &names, &comments, &out, &input, &joins)?;
    let fields = root::field_names(&names, ops);
    let roots = root_objects(&names, &comments, &fields);
    let has = |root: Root| fields.iter().any(|(_, op)| op.root == root);
    let mut builder = Schema::build(
        "Query",
        has(Root::Mutation).then_some("Mutation"),
        has(Root::Subscription).then_some("Subscription"),
    );
    for ty in types.list.into_iter().chain(roots) {
        builder = builder.register(ty);
    }
    builder
        .finish()
        .map_err(|e| BuildError::at([] as [&str; 0], format!("invalid GraphQL schema: {e}")))
}

/// The generated types, each name checked for a clash.
#[derive(Default)]
struct Types {
    origins: BTreeMap<String, String>,
    list: Vec<Type>,
}

impl Types {
    fn add(&mut self, ty: Type, origin: &str) -> Result<(), BuildError> {
        let name = type_name(&ty).to_owned();
        if let Some(other) = self.origins.insert(name.clone(), origin.to_owned())
            && other != origin
        {
            return Err(BuildError::at(
                ["naming"],
                format!(
                    "GraphQL type name `{name}` is generated for both {other} and {origin}; use `naming: mesh`"
                ),
            ));
        }
        self.list.push(ty);
        Ok(())
    }
}

fn type_name(ty: &Type) -> &str {
    match ty {
        Type::Scalar(t) => t.type_name(),
        Type::Object(t) => t.type_name(),
        Type::InputObject(t) => t.type_name(),
        Type::Enum(t) => t.type_name(),
        Type::Union(t) => t.type_name(),
        Type::Interface(t) => t.type_name(),
        Type::Subscription(t) => t.type_name(),
        Type::Upload => "Upload",
    }
}

fn register_types(
    types: &mut Types,
    names: &Names,
    comments: &Comments,
    out: &Reach,
    input: &Reach,
    joins: &[Arc<joins::Join>],
) -> Result<(), BuildError> {
    for name in out.scalars.union(&input.scalars) {
        if let Some(scalar) = scalars::definition(name) {
            types.add(Type::Scalar(scalar), "a well-known scalar")?;
        }
    }
    let enums: BTreeMap<_, _> = out.enums.iter().chain(&input.enums).collect();
    for (full, desc) in enums {
        types.add(types::enumeration(names, comments, desc), full)?;
    }
    for (full, desc) in &out.messages {
        let mut generated = types::object(names, comments, desc);
        // The message's object is last; joined fields go on it.
        if let Some(Type::Object(object)) = generated.pop() {
            let object = joins
                .iter()
                .filter(|j| j.on.full_name() == full.as_str())
                .fold(object, |object, join| {
                    object.field(join.field(names.of(join.output().full_name())))
                });
            generated.push(Type::Object(object));
        }
        for ty in generated {
            types.add(ty, full)?;
        }
    }
    for (i, join) in joins.iter().enumerate() {
        if !out.messages.contains_key(join.on.full_name()) {
            return Err(BuildError::at(
                ["joins".to_owned(), i.to_string(), "on".to_owned()]
                    .iter()
                    .map(String::as_str),
                format!(
                    "{} is not the type of any field of the schema: nothing could select `{}`",
                    join.on.full_name(),
                    join.field
                ),
            ));
        }
    }
    for (full, desc) in &input.messages {
        for ty in inputs::input_objects(names, comments, desc) {
            types.add(ty, &format!("the input of {full}"))?;
        }
    }
    for (full, desc) in &input.flattened {
        if !input.messages.contains_key(full) {
            for ty in inputs::oneof_objects(names, desc) {
                types.add(ty, &format!("the input of {full}"))?;
            }
        }
    }
    Ok(())
}

/// Query, Mutation and Subscription. Query always exists (GraphQL requires
/// it): with no read method it has a placeholder `_empty` field.
fn root_objects(
    names: &Names,
    comments: &Comments,
    fields: &[(String, Arc<call::Operation>)],
) -> Vec<Type> {
    let mut query = Object::new("Query");
    let mut mutation = Object::new("Mutation");
    let mut subscription = Subscription::new("Subscription");
    for (name, op) in fields {
        match op.root {
            Root::Query => query = query.field(root::field(names, comments, name, op)),
            Root::Mutation => mutation = mutation.field(root::field(names, comments, name, op)),
            Root::Subscription => {
                subscription = subscription.field(subscription_field(names, comments, name, op))
            }
        }
    }
    let has = |root: Root| fields.iter().any(|(_, op)| op.root == root);
    if !has(Root::Query) {
        query = query.field(empty_field());
    }
    let mut out = vec![Type::Object(query)];
    if has(Root::Mutation) {
        out.push(Type::Object(mutation));
    }
    if has(Root::Subscription) {
        out.push(Type::Subscription(subscription));
    }
    out
}

/// An owned value where one of a shorter lifetime is expected.
fn shorten<'a>(
    value: async_graphql::dynamic::FieldValue<'static>,
) -> async_graphql::dynamic::FieldValue<'a> {
    value
}

/// The placeholder field of a type that would have none (GraphQL forbids
/// empty objects); always null.
pub fn empty_field() -> Field {
    Field::new("_empty", TypeRef::named(TypeRef::BOOLEAN), |_| {
        FieldFuture::Value(None)
    })
    .description("Placeholder: the proto message has no fields. Always null.")
}

/// A server-streaming method: each message of the upstream stream is an
/// event of the subscription (served over WebSocket and SSE, [`http`]).
fn subscription_field(
    names: &Names,
    comments: &Comments,
    name: &str,
    op: &Arc<call::Operation>,
) -> SubscriptionField {
    let resolver_op = op.clone();
    let mut field = SubscriptionField::new(name, root::output_type(names, op), move |ctx| {
        let op = resolver_op.clone();
        SubscriptionFieldFuture::new(async move {
            let events = op.subscribe(&ctx).await?;
            Ok(futures_util::StreamExt::map(events, |event| {
                event.map(shorten)
            }))
        })
    });
    for argument in root::arguments(names, comments, op) {
        field = field.argument(argument);
    }
    match root::method_comment(comments, &op.method) {
        Some(text) => field.description(text),
        None => field,
    }
}
