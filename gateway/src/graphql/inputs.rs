//! Input side: input objects for request messages (and what they contain),
//! arguments, and GraphQL argument values → the proto3 JSON form of the
//! request, which prost-reflect then deserializes like a REST body.

use async_graphql::dynamic::{InputObject, InputValue, Type, TypeRef};
use async_graphql::{Name, Value as GqlValue};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value as Json};

use super::naming::{Names, lower_camel};
use super::scalars::Wkt;
use super::types::{Comments, Shape, non_null, oneof_field_name, real_oneof, shape};

/// The placeholder field of an input object for a message without fields.
const EMPTY: &str = "_empty";

/// The input values (arguments, or fields of an input object) for the fields
/// of `message`: one per field outside a oneof, one `@oneOf` object per oneof.
pub fn input_values(
    names: &Names,
    comments: &Comments,
    message: &MessageDescriptor,
) -> Vec<InputValue> {
    let mut out = Vec::new();
    for field in message.fields().filter(|f| real_oneof(f).is_none()) {
        let mut value = InputValue::new(field.json_name(), input_type(names, &field));
        if let Some(text) = comments.field(&field) {
            value = value.description(text);
        }
        out.push(value);
    }
    for oneof in message.oneofs().filter(|o| !o.is_synthetic()) {
        let ty = oneof_input_name(names, message, oneof.name());
        out.push(
            InputValue::new(oneof_field_name(message, &oneof), TypeRef::named(ty))
                .description(format!("Sets one member of oneof `{}`.", oneof.name())),
        );
    }
    out
}

fn oneof_input_name(names: &Names, message: &MessageDescriptor, oneof: &str) -> String {
    names.input(&names.join(&names.of(message.full_name()), oneof))
}

/// A field's input type: always nullable (proto3 fields are optional),
/// `[T!]` for lists and maps.
fn input_type(names: &Names, field: &FieldDescriptor) -> TypeRef {
    let item = match shape(field) {
        Shape::Scalar(s) => TypeRef::named(s),
        Shape::Enum(e) => TypeRef::named(names.of(e.full_name())),
        Shape::Wkt(w) => w.type_ref(),
        Shape::Object(m) | Shape::Map(m) => TypeRef::named(names.input(&names.of(m.full_name()))),
    };
    if field.is_list() || field.is_map() {
        TypeRef::List(Box::new(non_null(item, true)))
    } else {
        item
    }
}

/// The input object for `message` and the `@oneOf` objects of its oneofs.
pub fn input_objects(names: &Names, comments: &Comments, message: &MessageDescriptor) -> Vec<Type> {
    let mut out = Vec::new();
    let mut object = InputObject::new(names.input(&names.of(message.full_name())));
    if let Some(text) = comments.message(message) {
        object = object.description(text);
    }
    let values = input_values(names, comments, message);
    if values.is_empty() {
        object = object.field(
            InputValue::new(EMPTY, TypeRef::named(TypeRef::BOOLEAN))
                .description("Placeholder: the proto message has no fields. Ignored."),
        );
    }
    for value in values {
        object = object.field(value);
    }
    out.push(Type::InputObject(object));
    out.extend(oneof_objects(names, message));
    out
}

/// The `@oneOf` input objects of the oneofs of `message`.
pub fn oneof_objects(names: &Names, message: &MessageDescriptor) -> Vec<Type> {
    let mut out = Vec::new();
    for oneof in message.oneofs().filter(|o| !o.is_synthetic()) {
        let mut object = InputObject::new(oneof_input_name(names, message, oneof.name())).oneof();
        for field in oneof.fields() {
            object = object.field(InputValue::new(
                field.json_name(),
                input_type(names, &field),
            ));
        }
        out.push(Type::InputObject(object));
    }
    out
}

/// GraphQL input values for the fields of `message` → its proto3 JSON
/// object. The values were validated against the schema; what is still
/// wrong is reported, never assumed.
pub fn message_json<'a>(
    message: &MessageDescriptor,
    values: impl IntoIterator<Item = (&'a Name, &'a GqlValue)>,
) -> Result<Map<String, Json>, String> {
    let mut out = Map::new();
    for (name, value) in values {
        if matches!(value, GqlValue::Null) || name.as_str() == EMPTY {
            continue;
        }
        let field = message
            .fields()
            .find(|f| f.json_name() == name.as_str() && real_oneof(f).is_none());
        if let Some(field) = field {
            if let Some(json) = field_json(&field, value)? {
                out.insert(field.json_name().to_owned(), json);
            }
            continue;
        }
        let oneof = message
            .oneofs()
            .filter(|o| !o.is_synthetic())
            .find(|o| oneof_field_name(message, o) == name.as_str())
            .ok_or_else(|| format!("`{name}` is not a field of {}", message.full_name()))?;
        let GqlValue::Object(members) = value else {
            return Err(format!("`{name}` must be an object"));
        };
        for (member, value) in members.iter().filter(|(_, v)| !matches!(v, GqlValue::Null)) {
            let field = oneof
                .fields()
                .find(|f| f.json_name() == member.as_str())
                .ok_or_else(|| format!("`{member}` is not a member of `{name}`"))?;
            if let Some(json) = field_json(&field, value)? {
                out.insert(field.json_name().to_owned(), json);
            }
        }
    }
    Ok(out)
}

/// One field's JSON; `None` to leave it out (an `Empty` given as `false`).
fn field_json(field: &FieldDescriptor, value: &GqlValue) -> Result<Option<Json>, String> {
    if field.is_map() {
        return map_json(field, value).map(Some);
    }
    if field.is_list() {
        let items = match value {
            GqlValue::List(items) => items.as_slice(),
            single => std::slice::from_ref(single),
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.extend(element_json(&field.kind(), item)?);
        }
        return Ok(Some(Json::Array(out)));
    }
    element_json(&field.kind(), value)
}

/// A list of `{key, value}` entries → a JSON object.
fn map_json(field: &FieldDescriptor, value: &GqlValue) -> Result<Json, String> {
    let Kind::Message(entry) = field.kind() else {
        return Err(format!(
            "map field `{}` without an entry type",
            field.name()
        ));
    };
    let value_field = entry
        .get_field(2)
        .ok_or_else(|| format!("map field `{}` without a value field", field.name()))?;
    let entries = match value {
        GqlValue::List(items) => items.as_slice(),
        single => std::slice::from_ref(single),
    };
    let mut out = Map::new();
    for item in entries {
        let GqlValue::Object(item) = item else {
            return Err(format!(
                "an entry of `{}` must be an object",
                field.json_name()
            ));
        };
        let key = match item.get("key") {
            Some(GqlValue::String(s)) => s.clone(),
            Some(GqlValue::Number(n)) => n.to_string(),
            Some(GqlValue::Boolean(b)) => b.to_string(),
            _ => return Err(format!("an entry of `{}` has no key", field.json_name())),
        };
        let json = match item.get("value") {
            None | Some(GqlValue::Null) => None,
            Some(v) => element_json(&value_field.kind(), v)?,
        };
        out.insert(key, json.unwrap_or(Json::Null));
    }
    Ok(Json::Object(out))
}

/// One element by the field's kind.
fn element_json(kind: &Kind, value: &GqlValue) -> Result<Option<Json>, String> {
    let Kind::Message(message) = kind else {
        return Ok(Some(match value {
            GqlValue::Enum(name) => Json::String(name.to_string()),
            other => other.clone().into_json().map_err(|e| e.to_string())?,
        }));
    };
    match Wkt::of(message) {
        Some(Wkt::Empty) => {
            Ok(matches!(value, GqlValue::Boolean(true)).then(|| Json::Object(Map::new())))
        }
        Some(Wkt::FieldMask) => {
            let paths = match value {
                GqlValue::List(items) => items.as_slice(),
                single => std::slice::from_ref(single),
            };
            // Proto paths (`create_time`) or JSON ones (`createTime`): the
            // JSON form is lowerCamelCase.
            let paths: Vec<String> = paths
                .iter()
                .map(|p| match p {
                    GqlValue::String(s) => Ok(lower_camel(s)),
                    _ => Err("a field mask path must be a string".to_owned()),
                })
                .collect::<Result<_, _>>()?;
            Ok(Some(Json::String(paths.join(","))))
        }
        Some(_) => value
            .clone()
            .into_json()
            .map(Some)
            .map_err(|e| e.to_string()),
        None => match value {
            GqlValue::Object(fields) => {
                message_json(message, fields.iter()).map(|m| Some(Json::Object(m)))
            }
            _ => Err(format!("{} must be an object", message.full_name())),
        },
    }
}
