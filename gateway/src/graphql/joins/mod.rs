//! Joins: fields added to generated types and resolved by another method,
//! with a key from the parent (`graphql.joins`, docs/graphql.md "Joins").
//!
//! Every join field of one request goes through that request's loader for
//! the join ([`RequestState`]), which de-duplicates keys and batches them:
//! the first field to ask for a key becomes the batch's leader and yields
//! once, so that its siblings — the other elements of the same list, resolved
//! concurrently by the executor — queue their keys; then it takes every
//! queued key and fetches them, one call per key (`call`) or one call per
//! `max_size` keys (`batch`), all concurrently, and hands each waiter its
//! result. A key fetched once in a request is not fetched again (at most
//! [`MAX_REMEMBERED`] per join and request).

mod compile;
mod loader;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, ResolverContext, TypeRef};
use futures_util::future::join_all;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};
use switchyard_plugins::error::{Code, ErrorResponse};

use super::call::{self, Operation, RequestHeaders};
use super::root;
pub use compile::compile;
pub use loader::{MAX_REMEMBERED, RequestState};

/// A compiled join.
pub struct Join {
    pub(super) index: usize,
    /// The message that gets the field.
    pub on: MessageDescriptor,
    /// The field's GraphQL name.
    pub field: String,
    pub(super) key: FieldDescriptor,
    /// A repeated key: the field is a list, one item per key, in key order;
    /// a key that finds nothing (or whose call fails, reported as an error)
    /// has no item (async-graphql's dynamic executor cannot render a `null`
    /// item of an object list).
    pub(super) many: bool,
    pub(super) target: Target,
}

pub(super) enum Target {
    Call {
        op: Operation,
        argument: FieldDescriptor,
    },
    Batch {
        op: Operation,
        argument: FieldDescriptor,
        results: FieldDescriptor,
        match_field: FieldDescriptor,
        max_size: usize,
    },
}

/// What one key resolved to: the message, `null`, or the call's error.
pub(super) type Outcome = Result<Option<DynamicMessage>, async_graphql::Error>;

// === impl Join ===

impl Join {
    /// The message type of the field's value.
    pub fn output(&self) -> MessageDescriptor {
        match &self.target {
            Target::Call { op, .. } => op.method.output(),
            Target::Batch { results, .. } => match results.kind() {
                Kind::Message(m) => m,
                _ => unreachable!("checked at compile"),
            },
        }
    }

    /// The GraphQL field: `type_name`, nullable; `[type_name!]!` for a
    /// repeated key.
    pub fn field(self: &Arc<Self>, type_name: String) -> Field {
        let join = self.clone();
        let (each, every) = if self.many {
            ("each of the `", "each `")
        } else {
            ("`", "the `")
        };
        let description = match &self.target {
            Target::Call { op, argument } => format!(
                "Joined: `{}` with `{}` = {each}{}`.",
                op.method.full_name(),
                argument.name(),
                self.key.name()
            ),
            Target::Batch { op, argument, .. } => format!(
                "Joined, batched: `{}` with `{}` = {every}{}` of every parent.",
                op.method.full_name(),
                argument.name(),
                self.key.name()
            ),
        };
        let ty = if self.many {
            TypeRef::named_nn_list_nn(type_name)
        } else {
            TypeRef::named(type_name)
        };
        Field::new(self.field.clone(), ty, move |ctx| {
            let join = join.clone();
            FieldFuture::new(async move {
                match join.resolve(&ctx).await {
                    Ok(value) => Ok(value),
                    Err(error) => {
                        root::report(&ctx, error);
                        Ok(join
                            .many
                            .then(|| FieldValue::list(Vec::<FieldValue>::new())))
                    }
                }
            })
        })
        .description(description)
    }

    async fn resolve<'a>(
        &self,
        ctx: &ResolverContext<'a>,
    ) -> async_graphql::Result<Option<FieldValue<'a>>> {
        let parent = ctx
            .parent_value
            .downcast_ref::<DynamicMessage>()
            .ok_or("the parent value is not a message")?;
        let state = ctx
            .data_opt::<RequestState>()
            .ok_or("no request state (internal error)")?;
        let headers = ctx.data_opt::<RequestHeaders>();
        let loader = state.loader(self.index);
        let value = parent.get_field(&self.key);
        if !self.many {
            let Some(key) = key_text(&value) else {
                return Ok(None);
            };
            let value = loader.load(self, key, headers, state.started()).await?;
            return Ok(value.map(FieldValue::owned_any));
        }
        // Every key through the loader at once: one batch (or one call per
        // distinct key) for all of them and the siblings' keys.
        let keys: Vec<String> = match value.as_ref() {
            Value::List(items) => items.iter().filter_map(key_text).collect(),
            _ => Vec::new(),
        };
        let started = state.started();
        let outcomes = join_all(
            keys.into_iter()
                .map(|key| loader.load(self, key, headers, started)),
        )
        .await;
        let items: Vec<FieldValue<'a>> = outcomes
            .into_iter()
            .filter_map(|outcome| match outcome {
                Ok(found) => found.map(FieldValue::owned_any),
                Err(error) => {
                    root::report(ctx, error);
                    None
                }
            })
            .collect();
        Ok(Some(FieldValue::list(items)))
    }

    /// Fetches `keys` (distinct), each to its outcome.
    pub(super) async fn fetch(
        &self,
        keys: Vec<String>,
        headers: Option<&RequestHeaders>,
        started: Instant,
    ) -> Vec<(String, Outcome)> {
        match &self.target {
            Target::Call { op, argument } => {
                let calls = keys.into_iter().map(|key| async move {
                    let outcome = match request(op, argument, std::slice::from_ref(&key)) {
                        Ok(message) => op.call(&message, headers, started).await.map(Some),
                        Err(e) => Err(e),
                    };
                    (key, outcome)
                });
                join_all(calls).await
            }
            Target::Batch {
                op,
                argument,
                results,
                match_field,
                max_size,
            } => {
                let chunks = keys.chunks(*max_size).map(|chunk| async move {
                    let reply = match request(op, argument, chunk) {
                        Ok(message) => op.call(&message, headers, started).await,
                        Err(e) => Err(e),
                    };
                    match_results(chunk, reply, results, match_field)
                });
                join_all(chunks).await.into_iter().flatten().collect()
            }
        }
    }
}

/// The request message with `argument` set to `keys` (one for a single field).
fn request(
    op: &Operation,
    argument: &FieldDescriptor,
    keys: &[String],
) -> Result<DynamicMessage, async_graphql::Error> {
    let mut message = DynamicMessage::new(op.method.input());
    let values = keys
        .iter()
        .map(|k| key_value(&argument.kind(), k))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| call::graphql_error(ErrorResponse::new(Code::InvalidArgument, e)))?;
    let value = if argument.is_list() {
        Value::List(values)
    } else {
        values
            .into_iter()
            .next()
            .unwrap_or_else(|| argument.default_value())
    };
    message.try_set_field(argument, value).map_err(|e| {
        call::graphql_error(ErrorResponse::new(Code::InvalidArgument, e.to_string()))
    })?;
    Ok(message)
}

/// Each key of `chunk` with its result from a batch reply.
fn match_results(
    chunk: &[String],
    reply: Result<DynamicMessage, async_graphql::Error>,
    results: &FieldDescriptor,
    match_field: &FieldDescriptor,
) -> Vec<(String, Outcome)> {
    let reply = match reply {
        Ok(reply) => reply,
        Err(error) => {
            return chunk
                .iter()
                .map(|k| (k.clone(), Err(error.clone())))
                .collect();
        }
    };
    let mut found: HashMap<String, DynamicMessage> = HashMap::new();
    if let Value::List(items) = reply.get_field(results).as_ref() {
        for item in items {
            if let Some(message) = item.as_message()
                && let Some(key) = key_text(&message.get_field(match_field))
            {
                found.entry(key).or_insert_with(|| message.clone());
            }
        }
    }
    chunk
        .iter()
        .map(|k| (k.clone(), Ok(found.remove(k))))
        .collect()
}

/// A key's text, or `None` for the zero value (no key: no call).
fn key_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::I32(v) => v.to_string(),
        Value::I64(v) => v.to_string(),
        Value::U32(v) => v.to_string(),
        Value::U64(v) => v.to_string(),
        Value::Bool(true) => "true".to_owned(),
        _ => return None,
    };
    (!text.is_empty() && text != "0").then_some(text)
}

/// A key's text as a value of `kind`.
fn key_value(kind: &Kind, key: &str) -> Result<Value, String> {
    let bad = |_| format!("join key {key:?} is not a valid {kind:?}");
    Ok(match kind {
        Kind::String => Value::String(key.to_owned()),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(key.parse().map_err(bad)?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(key.parse().map_err(bad)?),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(key.parse().map_err(bad)?),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(key.parse().map_err(bad)?),
        Kind::Bool => Value::Bool(key == "true"),
        _ => return Err(format!("join keys cannot be {kind:?}")),
    })
}
