//! An accepted delivery as a CloudEvent for its sink: `publish.type`,
//! `subject` and `destination` rendered from the provider's JSON body, the
//! body itself as `data` (byte for byte), and the webhook id as the event
//! id, so a redelivery that got past the dedupe store (expired, or a
//! `local` store emptied by a restart) still carries the same id and
//! brokers that deduplicate (JetStream's `Nats-Msg-Id`) drop it.

use std::borrow::Cow;
use std::time::SystemTime;

use prost_reflect::SerializeOptions;
use serde_json::Value;

use crate::events::SinkHandle;
use crate::events::cloudevent;
use crate::events::data::Data;
use crate::events::outbox::AppendError;
use crate::events::sinks::Outgoing;
use crate::events::template::{Segment, segments};

/// A `publish` text: literal parts and `{id}`, `{body.<field>…}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    /// The webhook id.
    Id,
    /// A field of the JSON body, by path.
    Body(Vec<String>),
}

/// Where accepted deliveries go.
pub struct Publisher {
    pub sink: SinkHandle,
    pub event_type: Template,
    pub source: String,
    pub subject: Option<Template>,
    pub destination: Template,
}

/// Why a delivery could not be published.
#[derive(Debug)]
pub enum PublishError {
    /// The body lacks what a template needs (400: it will not get better).
    Render(String),
    /// The outbox refused the event.
    Append(AppendError),
}

// === impl Template ===

impl Template {
    pub fn compile(text: &str) -> Result<Template, String> {
        let parts: Vec<Part> = segments(text)?
            .into_iter()
            .map(|segment| match segment {
                Segment::Text(text) => Ok(Part::Text(text.to_owned())),
                Segment::Placeholder(name) => placeholder(name),
            })
            .collect::<Result<_, String>>()?;
        if parts.is_empty() {
            return Err("empty: write a value".to_owned());
        }
        Ok(Template { parts })
    }

    /// The text for one delivery. With `strict`, values taken from the
    /// delivery may only hold letters, digits and `.`, `_`, `-`, `:` (they
    /// become a broker address).
    pub fn render(&self, id: &str, body: &Value, strict: bool) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            let value = match part {
                Part::Text(text) => {
                    out.push_str(text);
                    continue;
                }
                Part::Id => id.to_owned(),
                Part::Body(path) => field(body, path)?,
            };
            if strict && !value.bytes().all(address_byte) {
                return Err(format!(
                    "{value:?} cannot be part of the destination (letters, digits, `.`, `_`, `-`, `:` only)"
                ));
            }
            out.push_str(&value);
        }
        Ok(out)
    }
}

fn placeholder(name: &str) -> Result<Part, String> {
    if name == "id" {
        return Ok(Part::Id);
    }
    let path = name.strip_prefix("body.").ok_or_else(|| {
        format!("unknown placeholder `{{{name}}}`: use `{{id}}` or `{{body.<field>}}`")
    })?;
    let path: Vec<String> = path.split('.').map(str::to_owned).collect();
    if path.iter().any(String::is_empty) {
        return Err(format!("`{{{name}}}`: empty field name"));
    }
    Ok(Part::Body(path))
}

/// A string, number or boolean at `path` in `body`, as text.
fn field(body: &Value, path: &[String]) -> Result<String, String> {
    let at = || format!("`body.{}`", path.join("."));
    let value = path
        .iter()
        .try_fold(body, |v, name| v.get(name.as_str()))
        .ok_or_else(|| format!("the webhook body has no {}", at()))?;
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return Err(format!("{} is not a string, number or boolean", at())),
    };
    if text.is_empty() {
        return Err(format!("{} is empty", at()));
    }
    Ok(text)
}

fn address_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':')
}

// === impl Publisher ===

impl Publisher {
    /// Appends the event for delivery `id` (`raw`: the body as received,
    /// `body`: the same parsed).
    pub fn publish(&self, id: &str, body: &Value, raw: &[u8]) -> Result<(), PublishError> {
        let event = self.event(id, body, raw).map_err(PublishError::Render)?;
        self.sink.append(event).map_err(PublishError::Append)
    }

    fn event(&self, id: &str, body: &Value, raw: &[u8]) -> Result<Outgoing, String> {
        let event_type = self.event_type.render(id, body, false)?;
        let subject = self
            .subject
            .as_ref()
            .map(|t| t.render(id, body, false))
            .transpose()?;
        let destination = self.destination.render(id, body, true)?;
        let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let body = structured(
            id,
            &self.source,
            &event_type,
            subject.as_deref(),
            &time,
            raw,
        );
        Ok(Outgoing {
            id: id.to_owned(),
            event_type,
            subject,
            destination,
            body,
        })
    }
}

/// The CloudEvent in structured JSON mode, `data` being `raw` (valid JSON)
/// as it was received.
pub fn structured(
    id: &str,
    source: &str,
    event_type: &str,
    subject: Option<&str>,
    time: &str,
    raw: &[u8],
) -> Vec<u8> {
    let attributes = cloudevent::Attributes {
        id,
        source,
        event_type,
        subject,
        time,
        extensions: &[],
    };
    let data = Data::Json(Cow::Borrowed(raw.trim_ascii()));
    // Only a message's rendering can fail; raw JSON is copied as it is.
    cloudevent::structured(&attributes, &data, &SerializeOptions::default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_render_the_id_and_body_fields() {
        let body = json!({"type": "invoice.paid", "data": {"object": {"id": "in_1", "n": 7}}});
        let t = Template::compile("stripe.{body.type}").unwrap();
        assert_eq!(
            t.render("evt_1", &body, false).unwrap(),
            "stripe.invoice.paid"
        );
        let t = Template::compile("invoices/{body.data.object.id}/{id}").unwrap();
        assert_eq!(
            t.render("evt_1", &body, false).unwrap(),
            "invoices/in_1/evt_1"
        );
        let t = Template::compile("n{body.data.object.n}").unwrap();
        assert_eq!(t.render("x", &body, true).unwrap(), "n7");
        assert_eq!(
            Template::compile("fixed")
                .unwrap()
                .render("x", &body, true)
                .unwrap(),
            "fixed"
        );
    }

    #[test]
    fn missing_or_unusable_values_are_errors() {
        let body = json!({"type": "a b", "obj": {}, "empty": ""});
        let render =
            |text: &str, strict| Template::compile(text).unwrap().render("x", &body, strict);
        assert!(
            render("{body.nope}", false)
                .unwrap_err()
                .contains("no `body.nope`")
        );
        assert!(
            render("{body.obj}", false)
                .unwrap_err()
                .contains("not a string")
        );
        assert!(
            render("{body.empty}", false)
                .unwrap_err()
                .contains("is empty")
        );
        assert_eq!(render("{body.type}", false).unwrap(), "a b");
        assert!(
            render("{body.type}", true)
                .unwrap_err()
                .contains("destination")
        );
    }

    #[test]
    fn bad_templates_are_refused() {
        for (text, error) in [
            ("{body.type", "unclosed"),
            ("a}", "unopened"),
            ("{request.id}", "unknown placeholder"),
            ("{body.}", "empty field name"),
            ("", "empty"),
        ] {
            let e = Template::compile(text).unwrap_err();
            assert!(e.contains(error), "{text}: {e}");
        }
    }

    #[test]
    fn the_cloudevent_carries_the_body_as_data() {
        let raw = b" {\"id\": \"evt_1\", \"amount\": 12.50}\n";
        let event = structured(
            "evt_1",
            "/s",
            "t",
            Some("x/1"),
            "2026-01-01T00:00:00.000Z",
            raw,
        );
        let json: Value = serde_json::from_slice(&event).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["id"], "evt_1");
        assert_eq!(json["subject"], "x/1");
        assert_eq!(json["datacontenttype"], "application/json");
        assert_eq!(json["data"]["amount"], 12.5);
        let text = String::from_utf8(event).unwrap();
        assert!(
            text.ends_with(r#""data":{"id": "evt_1", "amount": 12.50}}"#),
            "{text}"
        );
        let no_subject = structured("i", "/s", "t", None, "now", b"{}");
        assert!(!String::from_utf8(no_subject).unwrap().contains("subject"));
    }
}
