//! Text → value rules, shared by path variables and query parameters:
//! - integers: decimal only, range-checked for the field's width (`int32`
//!   rejects 2^31, unsigned kinds reject negatives);
//! - `float`/`double`: decimal or exponent notation, plus `NaN`, `Infinity`,
//!   `-Infinity` (any case, `inf` too); finite values that overflow the type
//!   are rejected rather than rounded to infinity;
//! - `bool`: exactly `true`, `false`, `1` or `0`;
//! - `string`: taken as is; `bytes`: standard or URL-safe base64, padding
//!   optional (the proto3 JSON rules, decoded by prost-reflect);
//! - enums: a value name (`ROLE_ADMIN`) or the number of a *defined* value
//!   (`2`); undefined numbers are rejected even for open enums, so typos in a
//!   URL do not reach the backend as unknown values;
//! - well-known types: `Timestamp` (RFC 3339), `Duration` (`1.5s`) and the
//!   wrappers (`Int32Value`, … from their scalar text) reuse the rules above or
//!   prost-reflect's JSON parsing; `FieldMask` takes comma-separated paths in
//!   lowerCamelCase or snake_case and stores them in snake_case;
//! - other message types (`Struct`, `Any`, user messages) have no one-string
//!   form.

use std::borrow::Cow;
use std::sync::OnceLock;

use prost_reflect::{
    DynamicMessage, EnumDescriptor, Kind, MessageDescriptor, ReflectMessage, Value,
};

const EXPECTED_FLOAT: &str = "a number, NaN, Infinity or -Infinity";

/// Errors are the "expected …" half of the message.
pub(super) type Parsed = Result<Value, Cow<'static, str>>;

/// Parse one item of `kind` (one element for repeated fields); `None` if
/// `kind` is a message type with no one-string form.
pub(super) fn parse_item(kind: &Kind, text: &str) -> Option<Parsed> {
    match kind {
        Kind::Message(desc) => parse_well_known(desc, text),
        scalar => Some(parse_scalar(scalar, text)),
    }
}

fn parse_scalar(kind: &Kind, text: &str) -> Parsed {
    match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            parse_int(text, Value::I32, "a 32-bit integer")
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            parse_int(text, Value::I64, "a 64-bit integer")
        }
        Kind::Uint32 | Kind::Fixed32 => parse_int(text, Value::U32, "an unsigned 32-bit integer"),
        Kind::Uint64 | Kind::Fixed64 => parse_int(text, Value::U64, "an unsigned 64-bit integer"),
        Kind::Double => parse_f64(text)
            .map(Value::F64)
            .ok_or(Cow::Borrowed(EXPECTED_FLOAT)),
        Kind::Float => parse_f32(text)
            .map(Value::F32)
            .ok_or(Cow::Borrowed(EXPECTED_FLOAT)),
        Kind::Bool => match text {
            "true" | "1" => Ok(Value::Bool(true)),
            "false" | "0" => Ok(Value::Bool(false)),
            _ => Err(Cow::Borrowed("true, false, 1 or 0")),
        },
        Kind::String => Ok(Value::String(text.to_owned())),
        Kind::Bytes => parse_bytes(text),
        Kind::Enum(desc) => parse_enum(desc, text),
        Kind::Message(_) => Err(Cow::Borrowed("a scalar value")),
    }
}

fn parse_int<T: std::str::FromStr>(
    text: &str,
    wrap: fn(T) -> Value,
    expected: &'static str,
) -> Parsed {
    text.parse().map(wrap).map_err(|_| Cow::Borrowed(expected))
}

fn parse_f64(text: &str) -> Option<f64> {
    let value: f64 = text.parse().ok()?;
    // Rust rounds overflowing literals such as `1e999` to infinity; only an
    // infinity the client spelled out is one.
    let unsigned = text.trim_start_matches(['+', '-']);
    let spelled_infinity =
        unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity");
    (!value.is_infinite() || spelled_infinity).then_some(value)
}

fn parse_f32(text: &str) -> Option<f32> {
    let value = parse_f64(text)?;
    // A finite double beyond f32's range would become infinity when narrowed.
    (!value.is_finite() || value.abs() <= f64::from(f32::MAX)).then_some(value as f32)
}

fn parse_enum(desc: &EnumDescriptor, text: &str) -> Parsed {
    if let Some(value) = desc.get_value_by_name(text) {
        return Ok(Value::EnumNumber(value.number()));
    }
    match text.parse::<i32>() {
        Ok(number) if desc.get_value(number).is_some() => Ok(Value::EnumNumber(number)),
        _ => Err(Cow::Owned(format!(
            "a value of enum {} (a value name or a defined number)",
            desc.full_name()
        ))),
    }
}

/// Base64 via prost-reflect's proto3 JSON decoder for `BytesValue`, which
/// accepts both alphabets with or without padding; this avoids a second
/// base64 implementation with subtly different rules.
fn parse_bytes(text: &str) -> Parsed {
    static BYTES_VALUE: OnceLock<MessageDescriptor> = OnceLock::new();
    let desc = BYTES_VALUE.get_or_init(|| Vec::<u8>::new().descriptor());
    let expected = || Cow::Borrowed("base64 (standard or URL-safe, padding optional)");
    let message = deserialize_json_string(desc, text).map_err(|_| expected())?;
    match message.get_field_by_number(1).as_deref() {
        Some(Value::Bytes(bytes)) => Ok(Value::Bytes(bytes.clone())),
        _ => Err(expected()),
    }
}

/// `None` if `desc` is not a well-known type that has a one-string form here.
fn parse_well_known(desc: &MessageDescriptor, text: &str) -> Option<Parsed> {
    let parsed = match desc.full_name() {
        "google.protobuf.Timestamp" => parse_via_json(
            desc,
            text,
            "an RFC 3339 timestamp such as 2024-01-01T00:00:00Z",
        ),
        "google.protobuf.Duration" => {
            parse_via_json(desc, text, "a duration in seconds such as 1.5s")
        }
        "google.protobuf.FieldMask" => parse_field_mask(desc, text),
        "google.protobuf.DoubleValue"
        | "google.protobuf.FloatValue"
        | "google.protobuf.Int64Value"
        | "google.protobuf.UInt64Value"
        | "google.protobuf.Int32Value"
        | "google.protobuf.UInt32Value"
        | "google.protobuf.BoolValue"
        | "google.protobuf.StringValue"
        | "google.protobuf.BytesValue" => parse_wrapper(desc, text),
        _ => return None,
    };
    Some(parsed)
}

fn deserialize_json_string(
    desc: &MessageDescriptor,
    text: &str,
) -> Result<DynamicMessage, serde_json::Error> {
    DynamicMessage::deserialize(desc.clone(), serde_json::Value::String(text.to_owned()))
}

/// Timestamp and Duration: prost-reflect's JSON mapping already implements
/// strict RFC 3339 and `<seconds>s` parsing with the proto range checks.
fn parse_via_json(desc: &MessageDescriptor, text: &str, expected: &str) -> Parsed {
    deserialize_json_string(desc, text)
        .map(Value::Message)
        .map_err(|err| Cow::Owned(format!("{expected} ({err})")))
}

/// Wrappers take the text form of their `value` field, so `?w_bool=1` works
/// like `?f_bool=1` (the JSON mapping would reject the string "1").
fn parse_wrapper(desc: &MessageDescriptor, text: &str) -> Parsed {
    let Some(inner) = desc.get_field(1) else {
        return Err(Cow::Borrowed("a wrapper type with a `value` field"));
    };
    let value = parse_scalar(&inner.kind(), text)?;
    let mut message = DynamicMessage::new(desc.clone());
    message
        .try_set_field(&inner, value)
        .map_err(|_| Cow::Borrowed("a scalar value"))?;
    Ok(Value::Message(message))
}

/// prost-reflect's JSON FieldMask parser rejects snake_case, which clients
/// copy from proto files, so paths are normalised here.
fn parse_field_mask(desc: &MessageDescriptor, text: &str) -> Parsed {
    let expected = || Cow::Borrowed("comma-separated field paths such as name,createTime");
    let paths_field = desc.get_field_by_name("paths").ok_or_else(expected)?;
    let mut paths = Vec::new();
    for path in text
        .split(',')
        .map(str::trim)
        .filter(|path| !path.is_empty())
    {
        paths.push(Value::String(
            mask_path_to_snake_case(path).ok_or_else(expected)?,
        ));
    }
    let mut message = DynamicMessage::new(desc.clone());
    message
        .try_set_field(&paths_field, Value::List(paths))
        .map_err(|_| expected())?;
    Ok(Value::Message(message))
}

/// `user.displayName` → `user.display_name`; snake_case passes unchanged.
fn mask_path_to_snake_case(path: &str) -> Option<String> {
    let mut out = String::with_capacity(path.len() + 4);
    for (index, segment) in path.split('.').enumerate() {
        let valid = segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if segment.is_empty() || !valid {
            return None;
        }
        if index > 0 {
            out.push('.');
        }
        for ch in segment.chars() {
            if ch.is_ascii_uppercase() {
                out.push('_');
                out.push(ch.to_ascii_lowercase());
            } else {
                out.push(ch);
            }
        }
    }
    Some(out)
}
