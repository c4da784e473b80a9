//! Output field resolvers: read a field of the parent `DynamicMessage` and
//! map it per docs/graphql.md. Nested messages are borrowed from the parent
//! (no copy); map entries become small `{key, value}` messages.

use std::borrow::Cow;

use async_graphql::dynamic::{FieldFuture, FieldValue, ResolverContext};
use prost_reflect::{DynamicMessage, EnumDescriptor, FieldDescriptor, MessageDescriptor, Value};

use super::scalars::{self, Wkt};

/// How one element of a field is converted.
pub enum Out {
    Scalar,
    Enum(EnumDescriptor),
    Wkt(Wkt),
    /// A message mapped to an object.
    Object,
    /// A map entry: built as a message of this entry type.
    Entry(MessageDescriptor),
}

/// One output field's plan.
pub struct OutField {
    pub field: FieldDescriptor,
    pub out: Out,
}

/// Resolves `plan` on the parent message. Only errors allocate a future.
pub fn resolve_field<'a>(plan: &OutField, ctx: ResolverContext<'a>) -> FieldFuture<'a> {
    let result = ctx
        .parent_value
        .downcast_ref::<DynamicMessage>()
        .ok_or_else(|| "the parent value is not a message".to_owned())
        .and_then(|parent| plan.resolve(parent));
    match result {
        Ok(value) => FieldFuture::Value(value),
        Err(message) => error(message),
    }
}

/// Resolves a oneof's union field: the parent again, typed as the wrapper
/// object of the member that is set.
pub fn resolve_oneof<'a>(
    members: &[(FieldDescriptor, String)],
    ctx: ResolverContext<'a>,
) -> FieldFuture<'a> {
    let Some(parent) = ctx.parent_value.downcast_ref::<DynamicMessage>() else {
        return error("the parent value is not a message".to_owned());
    };
    let set = members.iter().find(|(field, _)| parent.has_field(field));
    FieldFuture::Value(
        set.map(|(_, name)| FieldValue::borrowed_any(parent).with_type(name.clone())),
    )
}

fn error<'a>(message: String) -> FieldFuture<'a> {
    FieldFuture::new(async move { Err::<Option<FieldValue<'a>>, _>(message.into()) })
}

// === impl OutField ===

impl OutField {
    /// The field's value on `parent`; `None` for an unset field with presence.
    pub fn resolve<'a>(
        &self,
        parent: &'a DynamicMessage,
    ) -> Result<Option<FieldValue<'a>>, String> {
        let field = &self.field;
        if field.supports_presence() && !parent.has_field(field) {
            return Ok(None);
        }
        let value = match parent.get_field(field) {
            Cow::Borrowed(value) => self.value(value, |m| FieldValue::borrowed_any(m))?,
            Cow::Owned(value) => self.value(&value, |m| FieldValue::owned_any(m.clone()))?,
        };
        Ok(Some(value))
    }

    /// A whole field value (list, map or single), messages wrapped by `wrap`.
    fn value<'v, 'r>(
        &self,
        value: &'v Value,
        wrap: impl Fn(&'v DynamicMessage) -> FieldValue<'r>,
    ) -> Result<FieldValue<'r>, String> {
        match value {
            Value::List(items) => {
                let items = items
                    .iter()
                    .map(|item| self.element(item, &wrap))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(FieldValue::list(items))
            }
            Value::Map(map) => {
                let Out::Entry(entry) = &self.out else {
                    return Err("a map without an entry type".to_owned());
                };
                let mut entries = Vec::with_capacity(map.len());
                for (key, value) in map {
                    let mut message = DynamicMessage::new(entry.clone());
                    message
                        .try_set_field_by_number(1, Value::from(key.clone()))
                        .and_then(|()| message.try_set_field_by_number(2, value.clone()))
                        .map_err(|e| e.to_string())?;
                    entries.push(FieldValue::owned_any(message));
                }
                Ok(FieldValue::list(entries))
            }
            single => self.element(single, &wrap),
        }
    }

    /// One element.
    fn element<'v, 'r>(
        &self,
        value: &'v Value,
        wrap: &impl Fn(&'v DynamicMessage) -> FieldValue<'r>,
    ) -> Result<FieldValue<'r>, String> {
        match &self.out {
            Out::Scalar => scalars::output(value, None).map(FieldValue::value),
            Out::Enum(values) => scalars::output(value, Some(values)).map(FieldValue::value),
            Out::Wkt(wkt) => {
                let message = value
                    .as_message()
                    .ok_or("a well-known type that is not a message")?;
                wkt.output(message).map(FieldValue::value)
            }
            Out::Object | Out::Entry(_) => value
                .as_message()
                .map(wrap)
                .ok_or_else(|| "a message field without a message".to_owned()),
        }
    }
}
