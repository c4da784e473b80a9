//! One event as one Kafka record, per the CloudEvents Kafka protocol
//! binding: the key, the headers and the value in structured or binary
//! content mode; and the topic-name rules checked before anything is sent.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use rskafka::chrono::{DateTime, Utc};
use rskafka::record::Record;

use super::super::Outgoing;
use crate::events::cloudevent::{self, ContentMode, STRUCTURED_CONTENT_TYPE};

/// The header carrying the media type (the binding's `content-type`).
pub const CONTENT_TYPE: &str = "content-type";

/// The prefix of a CloudEvents attribute header (`ce_id`, `ce_type`…).
pub const ATTRIBUTE_PREFIX: &str = "ce_";

/// The longest topic name Kafka accepts.
const MAX_TOPIC_LEN: usize = 249;

/// The record key: the event's subject, or its id when it has none.
///
/// Kafka orders records per partition and partitions by key, so the subject
/// (`orders/42`) keeps one entity's events in order. An event without a
/// subject has no such order to keep; its id still gives a stable partition
/// (a retried event lands where its first attempt did) and a key that
/// compacted topics accept (they refuse records without one).
pub fn key(event: &Outgoing) -> &[u8] {
    event.subject.as_deref().unwrap_or(&event.id).as_bytes()
}

/// The record for `event` in `mode`, stamped now. Errors (a binary-mode event
/// whose stored form cannot be read back) are the event's own: retrying
/// cannot help.
pub fn build(event: &Outgoing, mode: ContentMode) -> Result<Record, String> {
    let mut headers = BTreeMap::new();
    let value = match mode {
        ContentMode::Structured => {
            headers.insert(
                CONTENT_TYPE.to_owned(),
                STRUCTURED_CONTENT_TYPE.as_bytes().to_vec(),
            );
            // Consumers can filter and deduplicate without parsing the value.
            headers.insert(
                format!("{ATTRIBUTE_PREFIX}id"),
                event.id.as_bytes().to_vec(),
            );
            Some(event.body.clone())
        }
        ContentMode::Binary => {
            let parts = cloudevent::binary(&event.body)?;
            for (name, value) in parts.attributes {
                // Kafka header values are bytes; the binding sends attribute
                // values as UTF-8 text, unencoded.
                headers.insert(format!("{ATTRIBUTE_PREFIX}{name}"), value.into_bytes());
            }
            if parts.data.is_empty() {
                // An event without data: a null value and no media type.
                None
            } else {
                headers.insert(CONTENT_TYPE.to_owned(), parts.content_type.into_bytes());
                Some(parts.data)
            }
        }
    };
    Ok(Record {
        key: Some(key(event).to_vec()),
        value,
        headers,
        timestamp: now(),
    })
}

/// The record timestamp (`CreateTime`): when it is produced. (rskafka's
/// chrono comes without its clock feature.)
fn now() -> DateTime<Utc> {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Checks that `topic` is a name Kafka accepts: 1 to 249 of ASCII letters,
/// digits, `.`, `_` and `-`, and not `.` or `..`.
pub fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("the topic (the event's destination) is empty".to_owned());
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(format!(
            "topic {topic:?} is longer than Kafka's {MAX_TOPIC_LEN} characters"
        ));
    }
    if topic == "." || topic == ".." {
        return Err(format!("{topic:?} is not a valid Kafka topic name"));
    }
    if let Some(bad) = topic
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic {topic:?} has {bad:?}: Kafka topic names are ASCII letters, digits, `.`, `_` and `-`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORED: &[u8] = br#"{"specversion":"1.0","id":"e1","source":"/s","type":"t","subject":"orders/7","time":"2026-11-27T00:00:00Z","datacontenttype":"application/json","dataschema":"proto:x.Order","data":{"id":"7"}}"#;

    fn event(subject: Option<&str>) -> Outgoing {
        Outgoing {
            id: "e1".to_owned(),
            event_type: "t".to_owned(),
            subject: subject.map(str::to_owned),
            destination: "orders.created".to_owned(),
            body: STORED.to_vec(),
        }
    }

    fn header<'r>(record: &'r Record, name: &str) -> Option<&'r str> {
        record
            .headers
            .get(name)
            .map(|v| std::str::from_utf8(v).expect("UTF-8 header"))
    }

    #[test]
    fn the_key_is_the_subject_or_else_the_id() {
        assert_eq!(key(&event(Some("orders/7"))), b"orders/7");
        assert_eq!(key(&event(None)), b"e1");
    }

    #[test]
    fn structured_mode_sends_the_whole_event_with_its_media_type_and_id() {
        let record = build(&event(Some("orders/7")), ContentMode::Structured).expect("record");
        assert_eq!(record.key.as_deref(), Some(&b"orders/7"[..]));
        assert_eq!(record.value.as_deref(), Some(STORED));
        assert_eq!(
            header(&record, "content-type"),
            Some("application/cloudevents+json")
        );
        assert_eq!(header(&record, "ce_id"), Some("e1"));
        assert_eq!(record.headers.len(), 2, "{:?}", record.headers);
    }

    #[test]
    fn binary_mode_sends_attributes_as_ce_headers_and_the_data_as_value() {
        let record = build(&event(Some("orders/7")), ContentMode::Binary).expect("record");
        assert_eq!(record.key.as_deref(), Some(&b"orders/7"[..]));
        assert_eq!(record.value.as_deref(), Some(&br#"{"id":"7"}"#[..]));
        for (name, value) in [
            ("content-type", "application/json"),
            ("ce_specversion", "1.0"),
            ("ce_id", "e1"),
            ("ce_source", "/s"),
            ("ce_type", "t"),
            ("ce_subject", "orders/7"),
            ("ce_time", "2026-11-27T00:00:00Z"),
            ("ce_dataschema", "proto:x.Order"),
        ] {
            assert_eq!(header(&record, name), Some(value), "{name}");
        }
        assert!(!record.headers.contains_key("ce_data"));
        assert!(!record.headers.contains_key("ce_datacontenttype"));
    }

    #[test]
    fn binary_mode_without_data_has_a_null_value() {
        let mut event = event(None);
        event.body = br#"{"specversion":"1.0","id":"e1","source":"/s","type":"t"}"#.to_vec();
        let record = build(&event, ContentMode::Binary).expect("record");
        assert_eq!(record.value, None);
        assert_eq!(header(&record, "content-type"), None);
        assert_eq!(record.key.as_deref(), Some(&b"e1"[..]));
    }

    #[test]
    fn binary_mode_refuses_an_unreadable_stored_event() {
        let mut event = event(None);
        event.body = b"not json".to_vec();
        assert!(build(&event, ContentMode::Binary).is_err());
        // Structured mode sends the body as it is.
        assert!(build(&event, ContentMode::Structured).is_ok());
    }

    #[test]
    fn topic_names_follow_kafkas_rules() {
        for ok in ["orders", "orders.created", "a_b-c.1", &"x".repeat(249)] {
            assert!(check_topic(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "orders created",
            "orders/created",
            "caf\u{e9}",
            &"x".repeat(250),
        ] {
            assert!(check_topic(bad).is_err(), "{bad:?}");
        }
    }
}
