//! Root fields: which methods are exposed and where (Query, Mutation,
//! Subscription), their names and arguments, and the resolver that calls
//! the upstream (docs/graphql.md, "Root fields").

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputValue, ResolverContext, TypeRef,
};
use prost_reflect::{DescriptorPool, MethodDescriptor, ReflectMessage, ServiceDescriptor};

use super::BuildError;
use super::call::Operation;
use super::field_mask::{JoinKeys, MaskPlan};
use super::inputs;
use super::naming::Names;
use super::scalars::Wkt;
use super::types::Comments;
use crate::config::graphql::{GraphqlConfig, OperationKind};
use crate::routing::RouteCtx;
use crate::transcode::http_rule;

/// A routed service, as the GraphQL schema sees it.
pub struct Exposed {
    pub service: ServiceDescriptor,
    pub route: Arc<RouteCtx>,
    /// The route's `methods:` filter, if any.
    pub methods: Option<Vec<String>>,
}

/// The root type a method's field belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Root {
    Query,
    Mutation,
    Subscription,
}

/// Every exposed method with its root, in a stable order.
pub fn plan(
    pool: &DescriptorPool,
    config: &GraphqlConfig,
    exposed: &[Exposed],
) -> Result<Vec<Operation>, BuildError> {
    let mut seen = BTreeSet::new();
    let mut ops = Vec::new();
    let join_keys: JoinKeys = Arc::new(
        config
            .joins
            .iter()
            .map(|j| ((j.on.clone(), j.field.clone()), j.key.clone()))
            .collect(),
    );
    for item in exposed {
        if !seen.insert(item.service.full_name().to_owned()) {
            continue; // the first route of a service serves it
        }
        for method in item.service.methods() {
            if item
                .methods
                .as_ref()
                .is_some_and(|m| !m.iter().any(|n| n == method.name()))
            {
                continue;
            }
            let Some(root) = classify(pool, config, &method)? else {
                continue;
            };
            let single_input = method.input().fields().len() > config.input_threshold;
            let mask = MaskPlan::find(&method.input(), &config.field_masks, &join_keys);
            ops.push(
                Operation::new(
                    method,
                    root,
                    item.route.clone(),
                    single_input,
                    config.timeout.0,
                )?
                .with_mask(mask),
            );
        }
    }
    for name in config.operations.keys() {
        if !ops.iter().any(|op| op.method.full_name() == name.as_str())
            && !config
                .operations
                .get(name)
                .is_some_and(|k| *k == OperationKind::Skip)
        {
            return Err(BuildError::at(
                ["operations", name.as_str()],
                format!("`{name}` is not a method of a routed service"),
            ));
        }
    }
    Ok(ops)
}

/// Preferred names, or qualified ones where two methods of one root type
/// would share a name.
pub fn field_names(names: &Names, ops: Vec<Operation>) -> Vec<(String, Arc<Operation>)> {
    let mut count: BTreeMap<(Root, String), usize> = BTreeMap::new();
    for op in &ops {
        *count
            .entry((op.root, names.root_field(&op.method)))
            .or_default() += 1;
    }
    ops.into_iter()
        .map(|op| {
            let preferred = names.root_field(&op.method);
            let name = if count[&(op.root, preferred.clone())] > 1 {
                names.qualified_root_field(&op.method)
            } else {
                preferred
            };
            (name, Arc::new(op))
        })
        .collect()
}

/// Where `method` goes: the config's override, else Subscription for a
/// server stream, Query for a read (GET annotation or a Get/List/Batch/Search
/// name), Mutation otherwise. Client and bidi streams are not exposed.
fn classify(
    pool: &DescriptorPool,
    config: &GraphqlConfig,
    method: &MethodDescriptor,
) -> Result<Option<Root>, BuildError> {
    let full = method.full_name();
    let over = config.operations.get(full).copied();
    let at = |message: String| BuildError::at(["operations", full], message);
    if method.is_client_streaming() {
        return match over {
            None | Some(OperationKind::Skip) => Ok(None),
            Some(_) => Err(at(format!(
                "`{full}` is client-streaming, which GraphQL does not expose"
            ))),
        };
    }
    if method.is_server_streaming() {
        return match over {
            None => Ok(Some(Root::Subscription)),
            Some(OperationKind::Skip) => Ok(None),
            Some(_) => Err(at(format!(
                "`{full}` is server-streaming: it is a Subscription field and can only be skipped"
            ))),
        };
    }
    Ok(match over {
        Some(OperationKind::Query) => Some(Root::Query),
        Some(OperationKind::Mutation) => Some(Root::Mutation),
        Some(OperationKind::Skip) => None,
        None if is_read(pool, method) => Some(Root::Query),
        None => Some(Root::Mutation),
    })
}

fn is_read(pool: &DescriptorPool, method: &MethodDescriptor) -> bool {
    let get = http_rule::rules_of(pool, method)
        .map(|rules| rules.iter().any(|r| r.method == http::Method::GET))
        .unwrap_or(false);
    get || ["Get", "List", "Batch", "Search"]
        .iter()
        .any(|p| method.name().starts_with(p))
}

/// The arguments of a root field: none for `Empty`, one `input:` above the
/// threshold, else one per request field.
pub fn arguments(names: &Names, comments: &Comments, op: &Operation) -> Vec<InputValue> {
    let input = op.method.input();
    if Wkt::of(&input).is_some() {
        return Vec::new();
    }
    if op.single_input {
        let ty = names.input(&names.of(input.full_name()));
        return vec![InputValue::new("input", TypeRef::named(ty))];
    }
    inputs::input_values(names, comments, &input)
}

/// The (nullable) type of a root field: a failed call nulls only its field.
pub fn output_type(names: &Names, op: &Operation) -> TypeRef {
    let output = op.method.output();
    match Wkt::of(&output) {
        Some(wkt) => wkt.type_ref(),
        None => TypeRef::named(names.of(output.full_name())),
    }
}

/// A Query or Mutation field calling the upstream.
pub fn field(names: &Names, comments: &Comments, name: &str, op: &Arc<Operation>) -> Field {
    let resolver_op = op.clone();
    let mut field = Field::new(
        name,
        output_type(names, op),
        move |ctx: ResolverContext<'_>| {
            let op = resolver_op.clone();
            FieldFuture::new(async move {
                match op.run(&ctx).await {
                    Ok(value) => Ok(Some(value)),
                    Err(error) => {
                        report(&ctx, error);
                        Ok(None)
                    }
                }
            })
        },
    );
    for argument in arguments(names, comments, op) {
        field = field.argument(argument);
    }
    match method_comment(comments, &op.method) {
        Some(text) => field.description(text),
        None => field,
    }
}

/// Records a failed root field as an error with its `path` and returns
/// nothing, so the field is `null` and its siblings still resolve
/// (async-graphql's dynamic resolver would drop the field and the path).
pub(crate) fn report(ctx: &ResolverContext<'_>, error: async_graphql::Error) {
    let error = ctx.set_error_path(error.into_server_error(ctx.item.pos));
    ctx.add_error(error);
}

/// The proto comment of a method.
pub fn method_comment<'c>(comments: &'c Comments, method: &MethodDescriptor) -> Option<&'c str> {
    comments.get(method.parent_file().name(), method.path())
}

/// The field value of a reply.
pub fn reply_value(
    op: &Operation,
    message: prost_reflect::DynamicMessage,
) -> async_graphql::Result<FieldValue<'static>> {
    match Wkt::of(&message.descriptor()) {
        Some(wkt) => wkt
            .output(&message)
            .map(FieldValue::value)
            .map_err(|e| async_graphql::Error::new(format!("{}: {e}", op.method.full_name()))),
        None => Ok(FieldValue::owned_any(message)),
    }
}
