//! Templates over a call, for an event's `subject`, `destination` and
//! extension attributes: literal text with placeholders, checked against the
//! method's messages when the config loads:
//! - `{request.<field>}`, `{response.<field>}`: proto field names, `.` into
//!   nested messages (empty when the call failed, for `response`);
//! - `{header.<name>}`: a request header (the first value);
//! - `{claim.<name>}`: a top-level claim of the caller's verified JWT;
//! - `{consumer}`: the authenticated consumer.
//!
//! A missing value renders as empty text.

use std::borrow::Cow;

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};

use super::Occurrence;

/// A compiled template.
#[derive(Clone, Debug)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug)]
enum Part {
    Text(String),
    Field {
        response: bool,
        path: Vec<FieldDescriptor>,
    },
    Header(http::HeaderName),
    Claim(String),
    Consumer,
}

// === impl Template ===

impl Template {
    /// Compiles `text` for a method taking `input` and returning `output`.
    pub fn compile(
        text: &str,
        input: &MessageDescriptor,
        output: &MessageDescriptor,
    ) -> Result<Template, String> {
        let parts = segments(text)?
            .into_iter()
            .map(|segment| match segment {
                Segment::Text(text) => Ok(Part::Text(text.to_owned())),
                Segment::Placeholder(name) => {
                    placeholder(name, input, output).map_err(|e| format!("`{{{name}}}`: {e}"))
                }
            })
            .collect::<Result<_, String>>()?;
        Ok(Template { parts })
    }

    /// The text for one call.
    pub fn render(&self, call: &Occurrence<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field { response, path } => {
                    let message = if *response {
                        call.outcome.ok()
                    } else {
                        Some(call.request)
                    };
                    if let Some(message) = message {
                        out.push_str(&field_text(message, path));
                    }
                }
                Part::Header(name) => {
                    if let Some(value) = call.headers.get(name) {
                        out.push_str(&String::from_utf8_lossy(value.as_bytes()));
                    }
                }
                Part::Claim(name) => match call.claims.and_then(|c| c.get(name)) {
                    Some(serde_json::Value::String(text)) => out.push_str(text),
                    Some(serde_json::Value::Null) | None => {}
                    Some(other) => out.push_str(&other.to_string()),
                },
                Part::Consumer => out.push_str(call.consumer.unwrap_or_default()),
            }
        }
        out
    }
}

/// A piece of template text.
#[derive(Debug, PartialEq, Eq)]
pub enum Segment<'a> {
    Text(&'a str),
    /// The name between `{` and `}`.
    Placeholder(&'a str),
}

/// `text` split into literal runs and `{…}` placeholders (shared by the
/// templates of inbound webhooks, which have their own placeholders).
pub fn segments(text: &str) -> Result<Vec<Segment<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if rest[..open].contains('}') {
            return Err(format!("unopened `}}` in {text:?}"));
        }
        if open > 0 {
            out.push(Segment::Text(&rest[..open]));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("unclosed `{{` in {text:?}"))?;
        out.push(Segment::Placeholder(&rest[open + 1..open + close]));
        rest = &rest[open + close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("unopened `}}` in {text:?}"));
    }
    if !rest.is_empty() {
        out.push(Segment::Text(rest));
    }
    Ok(out)
}

/// One `{...}` placeholder.
fn placeholder(
    name: &str,
    input: &MessageDescriptor,
    output: &MessageDescriptor,
) -> Result<Part, String> {
    const EXPECTED: &str = "a placeholder is `{request.<field>}`, `{response.<field>}`, `{header.<name>}`, `{claim.<name>}` or `{consumer}`";
    if name == "consumer" {
        return Ok(Part::Consumer);
    }
    let (root, rest) = name.split_once('.').ok_or(EXPECTED)?;
    match root {
        "request" => Ok(Part::Field {
            response: false,
            path: field_path(input, rest)?,
        }),
        "response" => Ok(Part::Field {
            response: true,
            path: field_path(output, rest)?,
        }),
        "header" => http::HeaderName::try_from(rest)
            .map(Part::Header)
            .map_err(|_| format!("{rest:?} is not a header name")),
        "claim" if !rest.is_empty() => Ok(Part::Claim(rest.to_owned())),
        _ => Err(EXPECTED.to_owned()),
    }
}

/// `a.b.c` as fields, each but the last a singular message field, the last
/// a singular scalar or enum.
fn field_path(message: &MessageDescriptor, path: &str) -> Result<Vec<FieldDescriptor>, String> {
    let mut fields = Vec::new();
    let mut current = message.clone();
    let names: Vec<&str> = path.split('.').collect();
    for (i, name) in names.iter().enumerate() {
        let field = current
            .get_field_by_name(name)
            .ok_or_else(|| format!("{} has no field `{name}`", current.full_name()))?;
        if field.is_list() || field.is_map() {
            return Err(format!(
                "`{name}` is repeated; a placeholder needs a single value"
            ));
        }
        let last = i + 1 == names.len();
        match (field.kind(), last) {
            (Kind::Message(next), false) => current = next,
            (Kind::Message(_), true) => {
                return Err(format!("`{name}` is a message; name one of its fields"));
            }
            (_, false) => return Err(format!("`{name}` is not a message")),
            (_, true) => {}
        }
        fields.push(field);
    }
    Ok(fields)
}

/// The text of the field at `path`, walking the message by reference (it
/// is the call's whole request or response: never copied per event).
fn field_text(message: &DynamicMessage, path: &[FieldDescriptor]) -> String {
    let Some((last, parents)) = path.split_last() else {
        return String::new();
    };
    let mut current = message;
    for (i, field) in parents.iter().enumerate() {
        match current.get_field(field) {
            Cow::Borrowed(Value::Message(next)) => current = next,
            // An unset message field: its default, which is small.
            Cow::Owned(Value::Message(next)) => return field_text(&next, &path[i + 1..]),
            _ => return String::new(),
        }
    }
    match current.get_field(last).as_ref() {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::I32(v) => v.to_string(),
        Value::I64(v) => v.to_string(),
        Value::U32(v) => v.to_string(),
        Value::U64(v) => v.to_string(),
        Value::F32(v) => v.to_string(),
        Value::F64(v) => v.to_string(),
        Value::EnumNumber(n) => match last.kind() {
            Kind::Enum(e) => e
                .get_value(*n)
                .map_or_else(|| n.to_string(), |v| v.name().to_owned()),
            _ => n.to_string(),
        },
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_split_text_and_placeholders_and_refuse_stray_braces() {
        assert_eq!(
            segments("orders/{response.id}.x").unwrap(),
            [
                Segment::Text("orders/"),
                Segment::Placeholder("response.id"),
                Segment::Text(".x")
            ]
        );
        assert_eq!(segments("").unwrap(), []);
        assert!(segments("a{b").unwrap_err().contains("unclosed"));
        assert!(segments("a}b{c}").unwrap_err().contains("unopened"));
        assert!(segments("{c}}").unwrap_err().contains("unopened"));
    }

    #[test]
    fn nested_fields_render_from_set_and_unset_parents() {
        let pool = crate::protos::test_pool("webhooks/billing_hooks.proto");
        let event = pool
            .get_message_by_name("switchyard.test.webhooks.InvoiceEvent")
            .unwrap();
        let path = |text: &str| field_path(&event, text).unwrap();
        let mut message = DynamicMessage::new(event.clone());
        assert_eq!(field_text(&message, &path("data.invoice_id")), "");
        assert_eq!(
            field_text(&message, &path("data.amount")),
            "0",
            "unset parent: defaults"
        );
        let mut invoice = DynamicMessage::new(
            event
                .get_field_by_name("data")
                .unwrap()
                .kind()
                .as_message()
                .unwrap()
                .clone(),
        );
        invoice.set_field_by_name("invoice_id", Value::String("in_1".into()));
        invoice.set_field_by_name("amount", Value::I64(1250));
        message.set_field_by_name("data", Value::Message(invoice));
        message.set_field_by_name("type", Value::String("paid".into()));
        assert_eq!(field_text(&message, &path("data.invoice_id")), "in_1");
        assert_eq!(field_text(&message, &path("data.amount")), "1250");
        assert_eq!(field_text(&message, &path("type")), "paid");
    }
}
