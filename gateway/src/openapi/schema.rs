//! JSON Schemas (OpenAPI 3.1 is JSON Schema 2020-12) for protobuf messages
//! as proto3's JSON mapping writes them: 64-bit integers as decimal
//! strings, bytes as base64, enums by name, the well-known types in their
//! special forms. Each message is one component, referenced by `$ref`;
//! proto comments become descriptions.

use std::collections::BTreeMap;

use prost_reflect::{EnumDescriptor, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

/// How field names and enums are written (a route's `json:` options).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Naming {
    pub proto_names: bool,
    pub enums_as_ints: bool,
}

/// The message schemas referenced so far, by component name.
#[derive(Default)]
pub struct Components {
    pub schemas: BTreeMap<String, Value>,
}

// === impl Components ===

impl Components {
    /// A schema for a value of `field`'s kind (not counting repetition).
    fn kind(&mut self, kind: &Kind, naming: Naming) -> Value {
        match kind {
            Kind::Double | Kind::Float => json!({
                "oneOf": [{"type": "number"}, {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}]
            }),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                json!({"type": "integer", "format": "int32"})
            }
            Kind::Uint32 | Kind::Fixed32 => {
                json!({"type": "integer", "format": "int32", "minimum": 0})
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                json!({"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"})
            }
            Kind::Uint64 | Kind::Fixed64 => {
                json!({"type": "string", "format": "uint64", "pattern": "^[0-9]+$"})
            }
            Kind::Bool => json!({"type": "boolean"}),
            Kind::String => json!({"type": "string"}),
            Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
            Kind::Enum(e) => enum_schema(e, naming),
            Kind::Message(m) => self.message_ref(m, naming),
        }
    }

    /// The schema of one field, repetition and maps included.
    pub fn field(&mut self, field: &FieldDescriptor, naming: Naming) -> Value {
        let mut schema = if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                unreachable!("a map field's kind is its entry message")
            };
            let value = entry.map_entry_value_field();
            json!({"type": "object", "additionalProperties": self.kind(&value.kind(), naming)})
        } else if field.is_list() {
            json!({"type": "array", "items": self.kind(&field.kind(), naming)})
        } else {
            self.kind(&field.kind(), naming)
        };
        if let Some(text) = comment(&field.parent_file(), field.path())
            && let Some(object) = schema.as_object_mut()
        {
            if object.contains_key("$ref") {
                // Siblings of `$ref` are allowed in 3.1; keep the ref clean anyway.
                schema = json!({"allOf": [schema], "description": text});
            } else {
                object.insert("description".into(), Value::String(text));
            }
        }
        schema
    }

    /// `$ref` to `message`'s component (added on first use), or the inline
    /// form of a well-known type.
    pub fn message_ref(&mut self, message: &MessageDescriptor, naming: Naming) -> Value {
        if let Some(schema) = well_known(message, naming, self) {
            return schema;
        }
        let name = component_name(message, naming);
        if !self.schemas.contains_key(&name) {
            // Placeholder first: recursive messages refer to themselves.
            self.schemas.insert(name.clone(), Value::Null);
            let schema = self.message(message, naming);
            self.schemas.insert(name.clone(), schema);
        }
        json!({"$ref": format!("#/components/schemas/{name}")})
    }

    /// A message's own schema: an object with one property per field.
    fn message(&mut self, message: &MessageDescriptor, naming: Naming) -> Value {
        let mut properties = Map::new();
        for field in message.fields() {
            let name = if naming.proto_names {
                field.name().to_owned()
            } else {
                field.json_name().to_owned()
            };
            properties.insert(name, self.field(&field, naming));
        }
        let mut schema = json!({"type": "object", "properties": properties});
        if let Some(text) = comment(&message.parent_file(), message.path()) {
            schema["description"] = Value::String(text);
        }
        schema
    }
}

/// The component name of `message` under `naming` (the default naming
/// keeps the bare full name).
fn component_name(message: &MessageDescriptor, naming: Naming) -> String {
    let mut name = message.full_name().to_owned();
    if naming.proto_names {
        name.push_str(".proto_names");
    }
    if naming.enums_as_ints {
        name.push_str(".enums_as_ints");
    }
    name
}

fn enum_schema(e: &EnumDescriptor, naming: Naming) -> Value {
    if e.full_name() == "google.protobuf.NullValue" {
        return json!({"type": "null"});
    }
    let mut schema = if naming.enums_as_ints {
        let values: Vec<i32> = e.values().map(|v| v.number()).collect();
        json!({"type": "integer", "enum": values})
    } else {
        let values: Vec<String> = e.values().map(|v| v.name().to_owned()).collect();
        json!({"type": "string", "enum": values})
    };
    if let Some(text) = comment(&e.parent_file(), e.path()) {
        schema["description"] = Value::String(text);
    }
    schema
}

/// The JSON forms of the well-known types (proto3 JSON mapping).
fn well_known(message: &MessageDescriptor, naming: Naming, c: &mut Components) -> Option<Value> {
    let wrapped = |kind: Kind, c: &mut Components| {
        let mut inner = c.kind(&kind, naming);
        inner["type"] = match inner.get("type") {
            Some(Value::String(t)) => json!([t, "null"]),
            _ => return json!({"oneOf": [inner, {"type": "null"}]}),
        };
        inner
    };
    Some(match message.full_name() {
        "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
        "google.protobuf.Duration" => {
            json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$"})
        }
        "google.protobuf.FieldMask" => {
            json!({"type": "string", "description": "Comma-separated field paths."})
        }
        "google.protobuf.Empty" => json!({"type": "object"}),
        "google.protobuf.Struct" => json!({"type": "object"}),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({"type": "array"}),
        "google.protobuf.Any" => json!({
            "type": "object",
            "properties": {"@type": {"type": "string"}},
            "required": ["@type"]
        }),
        "google.protobuf.StringValue" => wrapped(Kind::String, c),
        "google.protobuf.BytesValue" => wrapped(Kind::Bytes, c),
        "google.protobuf.BoolValue" => wrapped(Kind::Bool, c),
        "google.protobuf.Int32Value" => wrapped(Kind::Int32, c),
        "google.protobuf.UInt32Value" => wrapped(Kind::Uint32, c),
        "google.protobuf.Int64Value" => wrapped(Kind::Int64, c),
        "google.protobuf.UInt64Value" => wrapped(Kind::Uint64, c),
        "google.protobuf.FloatValue" => wrapped(Kind::Float, c),
        "google.protobuf.DoubleValue" => wrapped(Kind::Double, c),
        _ => return None,
    })
}

/// The leading comment of the element at `path` in `file`, trimmed; `None`
/// without one.
pub fn comment(file: &FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let location = info.location.iter().find(|l| l.path == path)?;
    let text = location.leading_comments.as_deref()?;
    let text = text
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned();
    (!text.is_empty()).then_some(text)
}
