//! `graphql.joins` checked against the protos and the routed services.

use std::sync::Arc;

use prost_reflect::{FieldDescriptor, Kind};

use super::{Join, Target};
use crate::config::graphql::{GraphqlConfig, JoinConfig};
use crate::graphql::BuildError;
use crate::graphql::call::Operation;
use crate::graphql::root::{Exposed, Root};

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
    if !is_key_kind(&key.kind()) || key.is_map() {
        return Err(at(
            index,
            "key",
            format!(
                "`{}` is not a string, integer or bool field (or a repeated one)",
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
        many: key.is_list(),
        key,
        target,
    })
}

pub(super) fn is_key_kind(kind: &Kind) -> bool {
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
