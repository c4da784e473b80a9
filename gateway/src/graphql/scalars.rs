//! Proto scalars and well-known types as GraphQL scalars, both ways
//! (docs/graphql.md, "Scalars and well-known types").

use std::sync::LazyLock;

use async_graphql::dynamic::{Scalar, TypeRef};
use async_graphql::{Name, Value as GqlValue};
use base64::Engine as _;
use prost_reflect::{
    DynamicMessage, EnumDescriptor, Kind, MessageDescriptor, ReflectMessage, SerializeOptions,
    Value,
};

/// 64-bit signed integers, as decimal strings (JSON numbers lose precision
/// above 2^53).
pub const INT64: &str = "Int64";
/// 64-bit unsigned integers, as decimal strings.
pub const UINT64: &str = "UInt64";
/// 32-bit unsigned integers (GraphQL's `Int` is signed), as numbers.
pub const UINT32: &str = "UInt32";
/// `bytes`, base64 (standard alphabet, padded).
pub const BASE64: &str = "Base64";
/// `google.protobuf.Timestamp`, RFC 3339.
pub const DATE_TIME: &str = "DateTime";
/// `google.protobuf.Duration`, proto3 JSON form (`"1.5s"`).
pub const DURATION: &str = "Duration";
/// Struct, Value, ListValue and Any, in their proto3 JSON form.
pub const JSON: &str = "JSON";

/// A message type that maps to a scalar rather than an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wkt {
    Timestamp,
    Duration,
    /// Struct, Value, ListValue, Any.
    Json,
    /// `[String!]`: the mask's paths.
    FieldMask,
    /// `Boolean`: `true` when present.
    Empty,
    /// A wrapper: the wrapped scalar, nullable.
    Wrapper(&'static str),
}

/// Options for well-known types rendered through their proto3 JSON form.
static WKT_JSON: LazyLock<SerializeOptions> =
    LazyLock::new(|| SerializeOptions::new().stringify_64_bit_integers(true));

// === impl Wkt ===

impl Wkt {
    /// The well-known type `desc` is, if it is one this mapping treats as a scalar.
    pub fn of(desc: &MessageDescriptor) -> Option<Wkt> {
        let name = desc.full_name().strip_prefix("google.protobuf.")?;
        Some(match name {
            "Timestamp" => Wkt::Timestamp,
            "Duration" => Wkt::Duration,
            "Struct" | "Value" | "ListValue" | "Any" => Wkt::Json,
            "FieldMask" => Wkt::FieldMask,
            "Empty" => Wkt::Empty,
            "DoubleValue" | "FloatValue" => Wkt::Wrapper("Float"),
            "Int64Value" => Wkt::Wrapper(INT64),
            "UInt64Value" => Wkt::Wrapper(UINT64),
            "Int32Value" => Wkt::Wrapper("Int"),
            "UInt32Value" => Wkt::Wrapper(UINT32),
            "BoolValue" => Wkt::Wrapper("Boolean"),
            "StringValue" => Wkt::Wrapper("String"),
            "BytesValue" => Wkt::Wrapper(BASE64),
            _ => return None,
        })
    }

    /// The scalar it maps to (for a FieldMask, the list's item).
    pub fn scalar(self) -> &'static str {
        match self {
            Wkt::Timestamp => DATE_TIME,
            Wkt::Duration => DURATION,
            Wkt::Json => JSON,
            Wkt::FieldMask => "String",
            Wkt::Empty => "Boolean",
            Wkt::Wrapper(scalar) => scalar,
        }
    }

    /// Its (nullable) type reference.
    pub fn type_ref(self) -> TypeRef {
        match self {
            Wkt::FieldMask => TypeRef::named_nn_list("String"),
            other => TypeRef::named(other.scalar()),
        }
    }

    /// The GraphQL value of a present message of this type.
    pub fn output(self, message: &DynamicMessage) -> Result<GqlValue, String> {
        match self {
            Wkt::Empty => Ok(GqlValue::Boolean(true)),
            Wkt::FieldMask => {
                let paths = message.get_field_by_name("paths");
                let list = paths.as_deref().and_then(Value::as_list).unwrap_or(&[]);
                Ok(GqlValue::List(
                    list.iter()
                        .filter_map(Value::as_str)
                        .map(|p| GqlValue::String(p.to_owned()))
                        .collect(),
                ))
            }
            _ => {
                let json = message
                    .serialize_with_options(serde_json::value::Serializer, &WKT_JSON)
                    .map_err(|e| format!("cannot render {}: {e}", message.descriptor().name()))?;
                GqlValue::from_json(json).map_err(|e| e.to_string())
            }
        }
    }
}

/// The GraphQL scalar of a proto scalar kind; `None` for messages and enums.
pub fn of_kind(kind: &Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::Double | Kind::Float => "Float",
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => "Int",
        Kind::Uint32 | Kind::Fixed32 => UINT32,
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => INT64,
        Kind::Uint64 | Kind::Fixed64 => UINT64,
        Kind::Bool => "Boolean",
        Kind::String => "String",
        Kind::Bytes => BASE64,
        Kind::Message(_) | Kind::Enum(_) => return None,
    })
}

/// The definition of a custom scalar by name; `None` for built-in ones.
pub fn definition(name: &str) -> Option<Scalar> {
    let (description, validator): (&str, fn(&GqlValue) -> bool) = match name {
        INT64 => (
            "A 64-bit signed integer as a decimal string (input: a string or an integer).",
            |v| integer_input(v, |s| s.parse::<i64>().is_ok()),
        ),
        UINT64 => (
            "A 64-bit unsigned integer as a decimal string (input: a string or an integer).",
            |v| integer_input(v, |s| s.parse::<u64>().is_ok()),
        ),
        UINT32 => (
            "A 32-bit unsigned integer.",
            |v| matches!(v, GqlValue::Number(n) if n.as_u64().is_some_and(|n| n <= u64::from(u32::MAX))),
        ),
        BASE64 => ("Bytes as base64 (standard alphabet).", |v| {
            matches!(v, GqlValue::String(_))
        }),
        DATE_TIME => (
            "A google.protobuf.Timestamp as an RFC 3339 string, e.g. 2024-01-01T00:00:00Z.",
            |v| matches!(v, GqlValue::String(_)),
        ),
        DURATION => (
            "A google.protobuf.Duration in its proto3 JSON form: seconds with an `s` suffix, e.g. \"1.5s\".",
            |v| matches!(v, GqlValue::String(_)),
        ),
        JSON => (
            "Any JSON value: google.protobuf.Struct, Value, ListValue or Any in their proto3 JSON form.",
            |_| true,
        ),
        _ => return None,
    };
    Some(
        Scalar::new(name)
            .description(description)
            .validator(validator),
    )
}

fn integer_input(value: &GqlValue, parses: fn(&str) -> bool) -> bool {
    match value {
        GqlValue::String(s) => parses(s),
        GqlValue::Number(n) => n.is_i64() || n.is_u64(),
        _ => false,
    }
}

/// The GraphQL value of a proto scalar or enum value (`values` names the
/// enum's values when it is one).
pub fn output(value: &Value, values: Option<&EnumDescriptor>) -> Result<GqlValue, String> {
    Ok(match value {
        Value::Bool(b) => GqlValue::Boolean(*b),
        Value::I32(n) => GqlValue::from(*n),
        Value::U32(n) => GqlValue::from(*n),
        Value::I64(n) => GqlValue::String(n.to_string()),
        Value::U64(n) => GqlValue::String(n.to_string()),
        Value::F32(f) => float(f64::from(*f))?,
        Value::F64(f) => float(*f)?,
        Value::String(s) => GqlValue::String(s.clone()),
        Value::Bytes(b) => GqlValue::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::EnumNumber(n) => {
            let name = values
                .and_then(|e| e.get_value(*n))
                .ok_or_else(|| format!("enum value {n} has no name in the proto"))?;
            GqlValue::Enum(Name::new(name.name()))
        }
        Value::Message(_) | Value::List(_) | Value::Map(_) => {
            return Err("a message, list or map is not a scalar".to_owned());
        }
    })
}

fn float(f: f64) -> Result<GqlValue, String> {
    serde_json::Number::from_f64(f)
        .map(GqlValue::Number)
        .ok_or_else(|| format!("{f} cannot be represented as a GraphQL Float"))
}
