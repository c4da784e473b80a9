//! HTTP request → request message: body first, then path variables (they win
//! over the body), then query parameters for the fields neither bound.

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use prost_reflect::{DeserializeOptions, DynamicMessage, MessageDescriptor, ReflectMessage};
use switchyard_plugins::error::{Code, ErrorResponse};

use super::binding::{Binding, BodyRule};
use super::field_path::FieldPath;
use crate::config::{JsonOptions, UnknownFields};

/// Builds the request message for `binding` from the matched path values, the
/// raw query and the body.
pub fn build_message(
    binding: &Binding,
    captures: &[String],
    query: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<DynamicMessage, ErrorResponse> {
    let options = deserialize_options(&binding.route.json);
    let mut message = match &binding.body {
        BodyRule::None => DynamicMessage::new(binding.input.clone()),
        BodyRule::Whole if body.is_empty() => DynamicMessage::new(binding.input.clone()),
        BodyRule::Whole => {
            check_json_content_type(headers)?;
            parse_json(&binding.input, body, &options)?
        }
        BodyRule::Field(field) => {
            let mut message = DynamicMessage::new(binding.input.clone());
            if !body.is_empty() {
                check_json_content_type(headers)?;
                set_body_field(&mut message, field, body, &options)?;
            }
            message
        }
    };
    for (field, value) in binding.path_fields.iter().zip(captures) {
        field
            .set_from_str(&mut message, value)
            .map_err(|e| invalid(format!("path: {e}")))?;
    }
    // With `body: "*"` every field not in the path comes from the body.
    if !matches!(binding.body, BodyRule::Whole)
        && let Some(query) = query.filter(|q| !q.is_empty())
    {
        binding
            .query
            .apply(&mut message, query)
            .map_err(|e| invalid(format!("query: {e}")))?;
    }
    Ok(message)
}

/// Deserialization options for a route's JSON (`json.unknown_fields`).
pub fn deserialize_options(json: &JsonOptions) -> DeserializeOptions {
    DeserializeOptions::new().deny_unknown_fields(json.unknown_fields == UnknownFields::Reject)
}

fn invalid(message: String) -> ErrorResponse {
    ErrorResponse::new(Code::InvalidArgument, message)
}

/// A body must be JSON; a missing content type is accepted (curl -d sends
/// form encoding by default, and nothing else is meaningful here), anything
/// else is 415.
fn check_json_content_type(headers: &HeaderMap) -> Result<(), ErrorResponse> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("");
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let ok = essence == "application/json"
        || essence.ends_with("+json")
        || essence == "application/x-www-form-urlencoded";
    if ok {
        Ok(())
    } else {
        Err(ErrorResponse::with_status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::InvalidArgument,
            format!("unsupported content type {text:?}: send application/json"),
        ))
    }
}

fn parse_json(
    desc: &MessageDescriptor,
    body: &[u8],
    options: &DeserializeOptions,
) -> Result<DynamicMessage, ErrorResponse> {
    decode_json(desc, body, options).map_err(|e| invalid(format!("invalid JSON body: {e}")))
}

/// One JSON document (nothing after it, no key given twice) as a `desc` message.
pub fn decode_json(
    desc: &MessageDescriptor,
    json: &[u8],
    options: &DeserializeOptions,
) -> Result<DynamicMessage, serde_json::Error> {
    super::duplicates::check(desc, json)?;
    let mut de = serde_json::Deserializer::from_slice(json);
    let message = DynamicMessage::deserialize_with_options(desc.clone(), &mut de, options)?;
    de.end()?;
    Ok(message)
}

/// `body: "field"`: the body is the JSON of that one top-level field,
/// whatever its kind (message, list, scalar). It is parsed as
/// `{"field": BODY}` into the request type so prost-reflect's proto3 JSON rules
/// apply unchanged; only that field is taken from the result, so nothing else
/// in the body can reach the message.
fn set_body_field(
    message: &mut DynamicMessage,
    field: &FieldPath,
    body: &[u8],
    options: &DeserializeOptions,
) -> Result<(), ErrorResponse> {
    let leaf = field.leaf();
    let mut wrapped = Vec::with_capacity(body.len() + leaf.name().len() + 8);
    wrapped.extend_from_slice(b"{\"");
    wrapped.extend_from_slice(leaf.name().as_bytes());
    wrapped.extend_from_slice(b"\":");
    wrapped.extend_from_slice(body);
    wrapped.extend_from_slice(b"\n}");
    let mut parsed = parse_json(&message.descriptor(), &wrapped, options)?;
    if let Some(value) = parsed.take_field(leaf) {
        field
            .set_value(message, value)
            .map_err(|e| invalid(format!("body: {e}")))?;
    }
    Ok(())
}
