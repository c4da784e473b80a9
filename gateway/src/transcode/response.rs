//! Response message → JSON, and gRPC status → the shared error body.

use base64::Engine as _;
use bytes::Bytes;
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage, SerializeOptions, Value};
use switchyard_plugins::error::{Code, ErrorResponse};

use super::binding::Binding;
use crate::config::JsonOptions;

/// Serialization options for a route, built once per config version.
pub fn serialize_options(json: &JsonOptions) -> SerializeOptions {
    SerializeOptions::new()
        .stringify_64_bit_integers(true)
        .use_proto_field_name(json.use_proto_names)
        .use_enum_numbers(json.enums_as_ints)
        .skip_default_fields(!json.emit_defaults)
}

/// The JSON body for a successful call (`response_body` applied).
pub fn render(binding: &Binding, message: &DynamicMessage) -> Result<Bytes, ErrorResponse> {
    let options = &binding.route.serialize;
    match &binding.response_body {
        None => render_message(message, options),
        Some(field) => render_field(message, field.fields(), options),
    }
}

/// The JSON of a whole reply message.
pub fn render_message(
    message: &DynamicMessage,
    options: &SerializeOptions,
) -> Result<Bytes, ErrorResponse> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::new(&mut out);
    message
        .serialize_with_options(&mut ser, options)
        .map_err(|e| {
            ErrorResponse::new(
                Code::Internal,
                format!("cannot render the response as JSON: {e}"),
            )
        })?;
    Ok(Bytes::from(out))
}

/// `response_body: "field"`: the JSON of one field. prost-reflect serializes
/// whole messages only, so the field's parent is serialized and the field's
/// entry taken from it (a default value absent from the output renders as its
/// JSON default).
fn render_field(
    message: &DynamicMessage,
    path: &[prost_reflect::FieldDescriptor],
    options: &SerializeOptions,
) -> Result<Bytes, ErrorResponse> {
    let Some((leaf, parents)) = path.split_last() else {
        return Err(ErrorResponse::new(Code::Internal, "empty response_body"));
    };
    let mut parent = message.clone();
    for field in parents {
        parent = match parent.get_field(field).as_message() {
            Some(m) => m.clone(),
            None => DynamicMessage::new(field.parent_message().clone()),
        };
    }
    let mut only = DynamicMessage::new(parent.descriptor());
    if parent.has_field(leaf) {
        only.set_field(leaf, parent.get_field(leaf).into_owned());
    }
    let json = only
        .serialize_with_options(serde_json::value::Serializer, options)
        .map_err(|e| {
            ErrorResponse::new(
                Code::Internal,
                format!("cannot render the response as JSON: {e}"),
            )
        })?;
    let value = match json {
        serde_json::Value::Object(mut map) => map
            .remove(leaf.json_name())
            .or_else(|| map.remove(leaf.name()))
            .unwrap_or_else(|| default_json(leaf)),
        other => other,
    };
    Ok(Bytes::from(serde_json::to_vec(&value).unwrap_or_default()))
}

fn default_json(field: &prost_reflect::FieldDescriptor) -> serde_json::Value {
    if field.is_list() {
        serde_json::Value::Array(Vec::new())
    } else if field.is_map() {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::Value::Null
    }
}

/// A gRPC status as the shared error body; `google.rpc.Status` details (from
/// `grpc-status-details-bin`) are decoded and rendered as JSON with `@type`,
/// with the route's JSON options (field names, enums) like any reply.
pub fn status_to_error(
    rpc_status: Option<&MessageDescriptor>,
    status: &tonic::Status,
    options: &SerializeOptions,
) -> ErrorResponse {
    let code = Code::from_i32(status.code() as i32);
    let details = rpc_status
        .map(|desc| decode_details(desc, status.details(), options))
        .unwrap_or_default();
    ErrorResponse::new(code, status.message()).with_details(details)
}

fn decode_details(
    desc: &MessageDescriptor,
    raw: &[u8],
    options: &SerializeOptions,
) -> Vec<serde_json::Value> {
    if raw.is_empty() {
        return Vec::new();
    }
    let Ok(status) = DynamicMessage::decode(desc.clone(), raw) else {
        return Vec::new();
    };
    let Some(Value::List(details)) = status.get_field_by_name("details").map(|v| v.into_owned())
    else {
        return Vec::new();
    };
    details
        .iter()
        .filter_map(Value::as_message)
        .map(|any| render_any(any, options))
        .collect()
}

/// One `google.protobuf.Any`: its JSON mapping when the type is in the pool,
/// else `{"@type", "value": base64}` so nothing is lost.
fn render_any(any: &DynamicMessage, options: &SerializeOptions) -> serde_json::Value {
    if let Ok(json) = any.serialize_with_options(serde_json::value::Serializer, options) {
        return json;
    }
    let type_url = any
        .get_field_by_name("type_url")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let value = any
        .get_field_by_name("value")
        .and_then(|v| v.as_bytes().cloned())
        .unwrap_or_default();
    serde_json::json!({
        "@type": type_url,
        "value": base64::engine::general_purpose::STANDARD.encode(value),
    })
}
