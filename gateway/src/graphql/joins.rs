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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, ResolverContext, TypeRef};
use futures_util::future::join_all;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};
use switchyard_plugins::error::{Code, ErrorResponse};
use tokio::sync::oneshot;

use super::BuildError;
use super::call::{self, Operation, RequestHeaders};
use super::root::{self, Exposed, Root};
use crate::config::graphql::{GraphqlConfig, JoinConfig};

/// Keys remembered per join and request, beyond which results are fetched
/// again rather than kept.
pub const MAX_REMEMBERED: usize = 10_000;

/// A compiled join.
pub struct Join {
    index: usize,
    /// The message that gets the field.
    pub on: MessageDescriptor,
    /// The field's GraphQL name.
    pub field: String,
    key: FieldDescriptor,
    target: Target,
}

enum Target {
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
type Outcome = Result<Option<DynamicMessage>, async_graphql::Error>;

/// Per-request state of the GraphQL executor, in the request data.
pub struct RequestState {
    started: Instant,
    loaders: Mutex<HashMap<usize, Arc<Loader>>>,
}

/// One join's loader within one request.
#[derive(Default)]
struct Loader {
    state: Mutex<LoaderState>,
}

#[derive(Default)]
struct LoaderState {
    /// Keys waiting for the next batch.
    queued: Vec<String>,
    /// Who waits for each key queued or in flight.
    waiting: HashMap<String, Vec<oneshot::Sender<Outcome>>>,
    /// Keys already fetched in this request.
    done: HashMap<String, Outcome>,
}

fn at(index: usize, field: &str, message: impl Into<String>) -> BuildError {
    let index = index.to_string();
    BuildError::at(["joins", index.as_str(), field], message)
}

/// Compiles `graphql.joins` against the routed services.
pub fn compile(
    pool: &prost_reflect::DescriptorPool,
    config: &GraphqlConfig,
    exposed: &[Exposed],
) -> Result<Vec<Arc<Join>>, BuildError> {
    let mut out = Vec::with_capacity(config.joins.len());
    for (index, join) in config.joins.iter().enumerate() {
        out.push(Arc::new(compile_one(pool, config, exposed, index, join)?));
    }
    for (i, a) in out.iter().enumerate() {
        if out[..i]
            .iter()
            .any(|b| b.on.full_name() == a.on.full_name() && b.field == a.field)
        {
            return Err(at(
                i,
                "field",
                format!("`{}.{}` is joined twice", a.on.full_name(), a.field),
            ));
        }
    }
    Ok(out)
}

fn compile_one(
    pool: &prost_reflect::DescriptorPool,
    config: &GraphqlConfig,
    exposed: &[Exposed],
    index: usize,
    join: &JoinConfig,
) -> Result<Join, BuildError> {
    let on = pool.get_message_by_name(&join.on).ok_or_else(|| {
        at(
            index,
            "on",
            format!("no message `{}` in the protos", join.on),
        )
    })?;
    if on.fields().any(|f| f.json_name() == join.field) || join.field.is_empty() {
        return Err(at(
            index,
            "field",
            format!(
                "`{}` is empty or already a field of {}",
                join.field, join.on
            ),
        ));
    }
    let key = on.get_field_by_name(&join.key).ok_or_else(|| {
        at(
            index,
            "key",
            format!("{} has no field `{}`", join.on, join.key),
        )
    })?;
    if !is_key_kind(&key.kind()) || key.is_list() || key.is_map() {
        return Err(at(
            index,
            "key",
            format!(
                "`{}` is not a single string, integer or bool field",
                join.key
            ),
        ));
    }
    let target = match (&join.batch, &join.call) {
        (Some(batch), _) => {
            let op = operation(pool, config, exposed, index, "batch", &batch.method)?;
            let argument = request_field(&op, index, "batch", &batch.argument, true)?;
            let output = op.method.output();
            let results = output
                .get_field_by_name(&batch.results)
                .filter(|f| f.is_list() && matches!(f.kind(), Kind::Message(_)))
                .ok_or_else(|| {
                    at(
                        index,
                        "batch",
                        format!(
                            "{} has no repeated message field `{}`",
                            output.full_name(),
                            batch.results
                        ),
                    )
                })?;
            let Kind::Message(result) = results.kind() else {
                unreachable!("checked above");
            };
            let match_field = result
                .get_field_by_name(&batch.match_field)
                .filter(|f| is_key_kind(&f.kind()) && !f.is_list())
                .ok_or_else(|| {
                    at(
                        index,
                        "batch",
                        format!(
                            "{} has no single key field `{}`",
                            result.full_name(),
                            batch.match_field
                        ),
                    )
                })?;
            if batch.max_size == 0 {
                return Err(at(index, "batch", "max_size must be at least 1"));
            }
            Target::Batch {
                op,
                argument,
                results,
                match_field,
                max_size: batch.max_size,
            }
        }
        (None, Some(single)) => {
            let op = operation(pool, config, exposed, index, "call", &single.method)?;
            let argument = request_field(&op, index, "call", &single.argument, false)?;
            Target::Call { op, argument }
        }
        (None, None) => {
            return Err(at(
                index,
                "field",
                "a join needs `call` or `batch`: the method that resolves it",
            ));
        }
    };
    Ok(Join {
        index,
        on,
        field: join.field.clone(),
        key,
        target,
    })
}

fn is_key_kind(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::String
            | Kind::Int32
            | Kind::Int64
            | Kind::Uint32
            | Kind::Uint64
            | Kind::Sint32
            | Kind::Sint64
            | Kind::Fixed32
            | Kind::Fixed64
            | Kind::Sfixed32
            | Kind::Sfixed64
            | Kind::Bool
    )
}

/// The operation calling `method`, through the route of its service.
fn operation(
    pool: &prost_reflect::DescriptorPool,
    config: &GraphqlConfig,
    exposed: &[Exposed],
    index: usize,
    part: &str,
    method: &str,
) -> Result<Operation, BuildError> {
    let (service, name) = method.rsplit_once('.').unwrap_or(("", method));
    let descriptor = pool
        .get_service_by_name(service)
        .and_then(|s| s.methods().find(|m| m.name() == name))
        .ok_or_else(|| at(index, part, format!("no method `{method}` in the protos")))?;
    let exposed = exposed
        .iter()
        .find(|e| e.service.full_name() == service)
        .ok_or_else(|| {
            at(
                index,
                part,
                format!("`{method}`: its service has no route; joins call routed services"),
            )
        })?;
    if descriptor.is_client_streaming() || descriptor.is_server_streaming() {
        return Err(at(index, part, format!("`{method}` is not unary")));
    }
    Operation::new(
        descriptor,
        Root::Query,
        exposed.route.clone(),
        false,
        config.timeout.0,
    )
}

fn request_field(
    op: &Operation,
    index: usize,
    part: &str,
    name: &str,
    repeated: bool,
) -> Result<FieldDescriptor, BuildError> {
    let input = op.method.input();
    input
        .get_field_by_name(name)
        .filter(|f| is_key_kind(&f.kind()) && f.is_list() == repeated && !f.is_map())
        .ok_or_else(|| {
            at(
                index,
                part,
                format!(
                    "{} has no {} field `{name}` for the keys",
                    input.full_name(),
                    if repeated {
                        "repeated string/integer"
                    } else {
                        "single string/integer"
                    }
                ),
            )
        })
}

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

    /// The GraphQL field, typed `type_name` (nullable).
    pub fn field(self: &Arc<Self>, type_name: String) -> Field {
        let join = self.clone();
        let description = match &self.target {
            Target::Call { op, argument } => format!(
                "Joined: `{}` with `{}` = `{}`.",
                op.method.full_name(),
                argument.name(),
                self.key.name()
            ),
            Target::Batch { op, argument, .. } => format!(
                "Joined, batched: `{}` with `{}` = the `{}` of every parent.",
                op.method.full_name(),
                argument.name(),
                self.key.name()
            ),
        };
        Field::new(self.field.clone(), TypeRef::named(type_name), move |ctx| {
            let join = join.clone();
            FieldFuture::new(async move {
                match join.resolve(&ctx).await {
                    Ok(value) => Ok(value),
                    Err(error) => {
                        root::report(&ctx, error);
                        Ok(None)
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
        let Some(key) = key_text(&parent.get_field(&self.key)) else {
            return Ok(None);
        };
        let state = ctx
            .data_opt::<RequestState>()
            .ok_or("no request state (internal error)")?;
        let headers = ctx.data_opt::<RequestHeaders>();
        let loader = state.loader(self.index);
        let value = loader.load(self, key, headers, state.started).await?;
        Ok(value.map(FieldValue::owned_any))
    }

    /// Fetches `keys` (distinct), each to its outcome.
    async fn fetch(
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

// === impl RequestState ===

impl RequestState {
    pub fn new() -> RequestState {
        RequestState {
            started: Instant::now(),
            loaders: Mutex::new(HashMap::new()),
        }
    }

    /// When the request started: upstream calls get what remains of
    /// `graphql.timeout` from here.
    pub fn started(&self) -> Instant {
        self.started
    }

    fn loader(&self, join: usize) -> Arc<Loader> {
        let mut loaders = self.loaders.lock().unwrap_or_else(|e| e.into_inner());
        loaders.entry(join).or_default().clone()
    }
}

impl Default for RequestState {
    fn default() -> Self {
        RequestState::new()
    }
}

// === impl Loader ===

impl Loader {
    /// The outcome for `key`, batched with the keys its siblings ask for.
    async fn load(
        &self,
        join: &Join,
        key: String,
        headers: Option<&RequestHeaders>,
        started: Instant,
    ) -> Outcome {
        let (rx, leader) = {
            let mut state = self.lock();
            if let Some(done) = state.done.get(&key) {
                return done.clone();
            }
            let (tx, rx) = oneshot::channel();
            let leader = state.queued.is_empty();
            match state.waiting.get_mut(&key) {
                Some(waiters) => waiters.push(tx),
                None => {
                    state.waiting.insert(key.clone(), vec![tx]);
                    state.queued.push(key);
                }
            }
            (rx, leader && !state.queued.is_empty())
        };
        if leader {
            // Let the sibling fields polled after this one queue their keys.
            tokio::task::yield_now().await;
            let keys = std::mem::take(&mut self.lock().queued);
            let outcomes = join.fetch(keys, headers, started).await;
            let mut state = self.lock();
            for (key, outcome) in outcomes {
                for tx in state.waiting.remove(&key).unwrap_or_default() {
                    let _ = tx.send(outcome.clone());
                }
                if state.done.len() < MAX_REMEMBERED {
                    state.done.insert(key, outcome);
                }
            }
        }
        rx.await.unwrap_or_else(|_| {
            Err(async_graphql::Error::new(
                "the batch this field waited for was cancelled",
            ))
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LoaderState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
