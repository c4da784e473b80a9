//! HTTP request → request message: body first, then path variables (they win
//! over the body), then query parameters for the fields neither bound.

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use prost_reflect::{DeserializeOptions, DynamicMessage, FieldDescriptor, MessageDescriptor};
use switchyard_plugins::error::{Code, ErrorResponse};

use super::binding::{Binding, BodyRule};
use super::field_path::FieldPath;
use crate::config::UnknownFields;

/// Builds the request message for `binding` from the matched path values, the
/// raw query and the body.
pub fn build_message(
    binding: &Binding,
    captures: &[String],
    query: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<DynamicMessage, ErrorResponse> {
    let options = deserialize_options(binding);
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
    if !matches!(binding.body, BodyRule::Whole) {
        if let Some(query) = query.filter(|q| !q.is_empty()) {
            binding
                .query
                .apply(&mut message, query)
                .map_err(|e| invalid(format!("query: {e}")))?;
        }
    }
    Ok(message)
}

fn deserialize_options(binding: &Binding) -> DeserializeOptions {
    DeserializeOptions::new()
        .deny_unknown_fields(binding.route.json.unknown_fields == UnknownFields::Reject)
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
    let mut de = serde_json::Deserializer::from_slice(body);
    let message = DynamicMessage::deserialize_with_options(desc.clone(), &mut de, options)
        .map_err(|e| invalid(format!("invalid JSON body: {e}")))?;
    de.end()
        .map_err(|e| invalid(format!("invalid JSON body: {e}")))?;
    Ok(message)
}

/// `body: "field"`: the body is the JSON of that one field, whatever its kind
/// (message, list, scalar). It is parsed as `{"field": BODY}` into the field's
/// parent message so prost-reflect's proto3 JSON rules apply unchanged.
fn set_body_field(
    message: &mut DynamicMessage,
    field: &FieldPath,
    body: &[u8],
    options: &DeserializeOptions,
) -> Result<(), ErrorResponse> {
    let fields = field.fields();
    let (leaf, parents) = fields
        .split_last()
        .ok_or_else(|| invalid("empty body field".into()))?;
    let parent_desc = leaf.parent_message().clone();
    let mut wrapped = Vec::with_capacity(body.len() + leaf.name().len() + 8);
    wrapped.extend_from_slice(b"{\"");
    wrapped.extend_from_slice(leaf.name().as_bytes());
    wrapped.extend_from_slice(b"\":");
    wrapped.extend_from_slice(body);
    wrapped.extend_from_slice(b"\n}");
    let mut parsed = parse_json(&parent_desc, &wrapped, options)?;
    let parent = message_at_mut(message, parents).ok_or_else(|| {
        ErrorResponse::new(
            Code::Internal,
            "body field path crosses a non-message field",
        )
    })?;
    if let Some(value) = parsed.take_field(leaf) {
        parent.set_field(leaf, value);
    }
    Ok(())
}

/// The nested message at `path`, created (empty) where missing. `None` only
/// if the path crosses a non-message field, which `FieldPath::resolve` rejects.
fn message_at_mut<'a>(
    message: &'a mut DynamicMessage,
    path: &[FieldDescriptor],
) -> Option<&'a mut DynamicMessage> {
    let mut current = message;
    for field in path {
        current = current.get_field_mut(field).as_message_mut()?;
    }
    Some(current)
}
