//! CloudEvents 1.0: events are built and stored in structured JSON mode
//! (`application/cloudevents+json`); sinks that send binary mode read the
//! parts back with [`binary`].

use prost::Message as _;
use prost_reflect::{MessageDescriptor, ReflectMessage, SerializeOptions};

use super::data::Data;
use crate::config::events::DataFormat;

/// The attributes of one event.
pub struct Attributes<'a> {
    pub id: &'a str,
    pub source: &'a str,
    pub event_type: &'a str,
    pub subject: Option<&'a str>,
    /// RFC 3339.
    pub time: &'a str,
    /// Extension attributes (names checked when the config loads).
    pub extensions: &'a [(String, String)],
}

/// The event as JSON.
pub fn structured(
    attributes: &Attributes<'_>,
    data: &Data<'_>,
    options: &SerializeOptions,
) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    // Strings are escaped straight into the event (writing to a Vec cannot
    // fail), and the event sized once, for the common case.
    let text = |out: &mut Vec<u8>, s: &str| {
        let _ = serde_json::to_writer(&mut *out, s);
    };
    let data_len = match data {
        Data::Json(json) => json.len(),
        Data::Rendered { json, .. } => json.len(),
        _ => 256,
    };
    let extensions: usize = attributes
        .extensions
        .iter()
        .map(|(n, v)| n.len() + v.len() + 6)
        .sum();
    let mut out = Vec::with_capacity(
        200 + attributes.id.len()
            + attributes.source.len()
            + attributes.event_type.len()
            + attributes.subject.map_or(0, str::len)
            + extensions
            + data_len,
    );
    out.extend_from_slice(br#"{"specversion":"1.0","id":"#);
    text(&mut out, attributes.id);
    out.extend_from_slice(br#","source":"#);
    text(&mut out, attributes.source);
    out.extend_from_slice(br#","type":"#);
    text(&mut out, attributes.event_type);
    if let Some(subject) = attributes.subject {
        out.extend_from_slice(br#","subject":"#);
        text(&mut out, subject);
    }
    out.extend_from_slice(br#","time":"#);
    text(&mut out, attributes.time);
    for (name, value) in attributes.extensions {
        out.push(b',');
        text(&mut out, name);
        out.push(b':');
        text(&mut out, value);
    }
    let schema = |out: &mut Vec<u8>, message: &MessageDescriptor| {
        out.extend_from_slice(b"\"proto:");
        // A full name is letters, digits, `_` and `.`: nothing to escape.
        out.extend_from_slice(message.full_name().as_bytes());
        out.push(b'"');
    };
    match data {
        Data::Message(message, DataFormat::Json) => {
            out.extend_from_slice(br#","datacontenttype":"application/json","dataschema":"#);
            schema(&mut out, &message.descriptor());
            out.extend_from_slice(br#","data":"#);
            let mut serializer = serde_json::Serializer::new(&mut out);
            message
                .serialize_with_options(&mut serializer, options)
                .map_err(|e| format!("cannot render the event data: {e}"))?;
        }
        Data::Rendered { json, message } => {
            out.extend_from_slice(br#","datacontenttype":"application/json","dataschema":"#);
            schema(&mut out, message);
            out.extend_from_slice(br#","data":"#);
            out.extend_from_slice(json);
        }
        Data::Message(message, DataFormat::Protobuf) => {
            out.extend_from_slice(br#","datacontenttype":"application/protobuf","dataschema":"#);
            schema(&mut out, &message.descriptor());
            out.extend_from_slice(br#","data_base64":""#);
            let encoded = message.encode_to_vec();
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(encoded)
                    .as_bytes(),
            );
            out.push(b'"');
        }
        Data::Json(json) => {
            out.extend_from_slice(br#","datacontenttype":"application/json","data":"#);
            out.extend_from_slice(json);
        }
        Data::None => {}
    }
    out.push(b'}');
    Ok(out)
}

/// An event in binary content mode: its attributes go in the transport's
/// headers (each sink adds its binding's prefix: `ce-` for HTTP and NATS,
/// `ce_` for Kafka, `cloudEvents:` for AMQP) and the body is the data alone.
#[derive(Debug, PartialEq, Eq)]
pub struct Binary {
    /// Attribute names (without prefix) and values, as text.
    pub attributes: Vec<(String, String)>,
    /// The data's media type (`datacontenttype`).
    pub content_type: String,
    pub data: Vec<u8>,
}

/// How a sink sends events: the whole CloudEvent as the body (structured,
/// `application/cloudevents+json`), or attributes as headers and the data as
/// the body (binary).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContentMode {
    #[default]
    Structured,
    Binary,
}

/// The media type of a structured event.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";

/// Reads a stored (structured) event as its binary-mode parts.
pub fn binary(structured: &[u8]) -> Result<Binary, String> {
    use base64::Engine as _;
    let serde_json::Value::Object(event) = serde_json::from_slice(structured)
        .map_err(|e| format!("the stored event is not JSON: {e}"))?
    else {
        return Err("the stored event is not a JSON object".to_owned());
    };
    let content_type = match event.get("datacontenttype") {
        Some(serde_json::Value::String(t)) => t.clone(),
        _ => "application/json".to_owned(),
    };
    let mut attributes = Vec::with_capacity(event.len());
    let mut data = Vec::new();
    for (name, value) in event {
        match (name.as_str(), value) {
            ("datacontenttype", _) => {}
            ("data_base64", serde_json::Value::String(b64)) => {
                data = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| format!("the stored event's data_base64 is not base64: {e}"))?;
            }
            ("data", serde_json::Value::String(text)) if !is_json(&content_type) => {
                data = text.into_bytes();
            }
            ("data", value) => data = serde_json::to_vec(&value).unwrap_or_default(),
            (_, serde_json::Value::String(text)) => attributes.push((name, text)),
            (_, value) => attributes.push((name, value.to_string())),
        }
    }
    Ok(Binary {
        attributes,
        content_type,
        data,
    })
}

/// Whether a media type is JSON (`application/json`, `…+json`).
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")
}

/// An attribute value as a `ce-` header value in binary mode, per the
/// CloudEvents HTTP and NATS bindings (§3.1.3.2 in both): space, `"`, `%`
/// and everything outside printable ASCII percent-encoded.
pub fn header_value(value: &str) -> String {
    const ENCODE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'%')
        .add(0x7f);
    percent_encoding::utf8_percent_encode(value, ENCODE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_mode_splits_attributes_from_json_data() {
        let stored = br#"{"specversion":"1.0","id":"e1","source":"/s","type":"t","subject":"orders/7","time":"2026-11-27T00:00:00Z","datacontenttype":"application/json","dataschema":"proto:x.Order","traceparent":"00-ab-cd-01","data":{"id":"7","qty":2}}"#;
        let parts = binary(stored).expect("binary");
        assert_eq!(parts.content_type, "application/json");
        assert_eq!(parts.data, br#"{"id":"7","qty":2}"#);
        let names: Vec<&str> = parts.attributes.iter().map(|(n, _)| n.as_str()).collect();
        for name in [
            "specversion",
            "id",
            "source",
            "type",
            "subject",
            "time",
            "dataschema",
            "traceparent",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        assert!(!names.contains(&"data") && !names.contains(&"datacontenttype"));
    }

    #[test]
    fn binary_mode_decodes_base64_data() {
        let stored = br#"{"specversion":"1.0","id":"e1","source":"/s","type":"t","datacontenttype":"application/protobuf","data_base64":"CgE3"}"#;
        let parts = binary(stored).expect("binary");
        assert_eq!(parts.content_type, "application/protobuf");
        assert_eq!(parts.data, b"\x0a\x017");
        assert!(binary(b"[1]").is_err());
        assert!(binary(br#"{"data_base64":"%%"}"#).is_err());
    }

    #[test]
    fn header_values_are_percent_encoded_outside_printable_ascii() {
        assert_eq!(header_value("orders/7"), "orders/7");
        assert_eq!(
            header_value("caf\u{e9} \"x\" 100%"),
            "caf%C3%A9%20%22x%22%20100%25"
        );
    }

    #[test]
    fn a_reused_rendering_gives_the_same_event_as_rendering_the_message() {
        use std::borrow::Cow;

        use prost_reflect::{DynamicMessage, Value};

        let pool = crate::protos::test_pool("webhooks/billing_hooks.proto");
        let envelope = pool
            .get_message_by_name("switchyard.test.webhooks.Envelope")
            .unwrap();
        let mut message = DynamicMessage::new(envelope.clone());
        message.set_field_by_name("delivery_id", Value::String("d \"1\"".into()));
        message.set_field_by_name(
            "tags",
            Value::List(vec![Value::String("a".into()), Value::String("é".into())]),
        );
        let options = SerializeOptions::new().skip_default_fields(false);
        let mut json = serde_json::Serializer::new(Vec::new());
        message.serialize_with_options(&mut json, &options).unwrap();
        let json = json.into_inner();
        let extensions = [("consumer".to_owned(), "acme \u{1}".to_owned())];
        let attributes = Attributes {
            id: "e1",
            source: "/s",
            event_type: "t",
            subject: Some("orders/\"7\""),
            time: "2026-11-27T00:00:00.000Z",
            extensions: &extensions,
        };
        let rendered = structured(
            &attributes,
            &Data::Message(Cow::Borrowed(&message), DataFormat::Json),
            &options,
        )
        .unwrap();
        let reused = structured(
            &attributes,
            &Data::Rendered {
                json: &json,
                message: envelope,
            },
            &options,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(reused).unwrap(),
            String::from_utf8(rendered.clone()).unwrap()
        );
        let event: serde_json::Value = serde_json::from_slice(&rendered).unwrap();
        assert_eq!(event["subject"], "orders/\"7\"");
        assert_eq!(event["consumer"], "acme \u{1}");
        assert_eq!(
            event["dataschema"],
            "proto:switchyard.test.webhooks.Envelope"
        );
        assert_eq!(event["data"]["deliveryId"], "d \"1\"");
        assert_eq!(event["data"]["raw"], "", "the options apply");
    }
}
