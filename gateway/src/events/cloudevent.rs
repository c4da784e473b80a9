//! CloudEvents 1.0 in structured JSON mode (`application/cloudevents+json`).

use prost_reflect::{DynamicMessage, ReflectMessage, SerializeOptions};

/// The attributes of one event.
pub struct Attributes<'a> {
    pub id: &'a str,
    pub source: &'a str,
    pub event_type: &'a str,
    pub subject: Option<&'a str>,
    /// RFC 3339.
    pub time: &'a str,
}

/// The event as JSON, `data` being `message` in proto3 JSON.
pub fn structured(
    attributes: &Attributes<'_>,
    message: &DynamicMessage,
    options: &SerializeOptions,
) -> Result<Vec<u8>, String> {
    let text = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(br#"{"specversion":"1.0","id":"#);
    out.extend_from_slice(text(attributes.id).as_bytes());
    out.extend_from_slice(br#","source":"#);
    out.extend_from_slice(text(attributes.source).as_bytes());
    out.extend_from_slice(br#","type":"#);
    out.extend_from_slice(text(attributes.event_type).as_bytes());
    if let Some(subject) = attributes.subject {
        out.extend_from_slice(br#","subject":"#);
        out.extend_from_slice(text(subject).as_bytes());
    }
    out.extend_from_slice(br#","time":"#);
    out.extend_from_slice(text(attributes.time).as_bytes());
    out.extend_from_slice(br#","datacontenttype":"application/json","dataschema":"#);
    out.extend_from_slice(text(&format!("proto:{}", message.descriptor().full_name())).as_bytes());
    out.extend_from_slice(br#","data":"#);
    let mut serializer = serde_json::Serializer::new(&mut out);
    message
        .serialize_with_options(&mut serializer, options)
        .map_err(|e| format!("cannot render the event data: {e}"))?;
    out.push(b'}');
    Ok(out)
}
