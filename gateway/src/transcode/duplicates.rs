//! Refuses JSON that names one thing twice: a key repeated in an object, or
//! one field of a message written under both its names (`userId` and
//! `user_id`). prost-reflect, like most parsers, keeps the last value; a
//! check in front of the gateway (a WAF, a signature over selected fields)
//! may have read the first, and the two would disagree about what the
//! upstream got. ProtoJSON (Go's protojson, the spec's conformance tests)
//! refuses duplicates too.
//!
//! A pass of its own over the bytes, before the message is built: it keeps
//! no values, borrows the keys, and shares serde_json's nesting limit (128),
//! so a 10 000-deep document is refused here even where the field it sits
//! in would be ignored.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// `Err` naming the first key given twice in `json`, read as a `desc`.
pub fn check(desc: &MessageDescriptor, json: &[u8]) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(json);
    Shape::of_message(desc).deserialize(&mut de)
}

/// What a JSON value stands for, as far as telling its keys apart goes.
#[derive(Clone)]
enum Shape {
    /// A message: keys are field names (either spelling) or unknown keys.
    Message(MessageDescriptor),
    /// A map field: keys are map keys, values have the map's value shape.
    Map(Box<Shape>),
    /// Anything else (scalars, `Struct`, `Any`, unknown fields): keys are
    /// compared as written.
    Raw,
}

impl Shape {
    fn of_message(desc: &MessageDescriptor) -> Shape {
        // The well-known types have JSON forms of their own (`Struct` is
        // any object, `Any` carries `@type`): compare their keys as written.
        if desc.full_name().starts_with("google.protobuf.") {
            Shape::Raw
        } else {
            Shape::Message(desc.clone())
        }
    }

    /// The shape of a field's value (of each element, for a list).
    fn of_field(field: &FieldDescriptor) -> Shape {
        match field.kind() {
            Kind::Message(desc) if field.is_map() => {
                let value = desc.map_entry_value_field();
                Shape::Map(Box::new(Shape::of_field(&value)))
            }
            Kind::Message(desc) => Shape::of_message(&desc),
            _ => Shape::Raw,
        }
    }
}

/// How a key is told apart from the others of its object.
#[derive(PartialEq, Eq, Hash)]
enum Identity<'de> {
    Field(u32),
    /// A member of a oneof: one per object, whichever it is.
    Oneof(u32),
    Key(Cow<'de, str>),
}

/// The keys of one object so far: a list while it is short (most objects,
/// no allocation past the list's), a set past [`Seen::LIST`], so an object
/// of a million keys costs no million-squared comparisons.
#[derive(Default)]
struct Seen<'de> {
    few: Vec<Identity<'de>>,
    many: HashSet<Identity<'de>>,
}

impl<'de> Seen<'de> {
    const LIST: usize = 16;

    /// `false` when `identity` was there already.
    fn insert(&mut self, identity: Identity<'de>) -> bool {
        if self.many.is_empty() {
            if self.few.contains(&identity) {
                return false;
            }
            if self.few.len() < Self::LIST {
                self.few.push(identity);
                return true;
            }
            self.many.extend(self.few.drain(..));
        }
        self.many.insert(identity)
    }
}

impl<'de> DeserializeSeed<'de> for Shape {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Shape {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = Seen::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let (identity, value) = match &self {
                Shape::Message(desc) => match desc
                    .get_field_by_json_name(&key)
                    .or_else(|| desc.get_field_by_name(&key))
                {
                    Some(field) => (identity(&field), Shape::of_field(&field)),
                    None => (Identity::Key(key.clone()), Shape::Raw),
                },
                Shape::Map(value) => (Identity::Key(key.clone()), (**value).clone()),
                Shape::Raw => (Identity::Key(key.clone()), Shape::Raw),
            };
            let what = match identity {
                Identity::Oneof(_) => "a second member of its oneof",
                _ => "a field may be given once",
            };
            if !seen.insert(identity) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key {key:?} ({what})"
                )));
            }
            map.next_value_seed(value)?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // A list field's elements have the field's shape.
        while seq.next_element_seed(self.clone())?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// A field is told apart by its number, a oneof member by its oneof (the
/// synthetic oneof of a proto3 `optional` field has one member anyway).
fn identity<'de>(field: &FieldDescriptor) -> Identity<'de> {
    match field.containing_oneof() {
        // A oneof is named by its first member's number.
        Some(oneof) => Identity::Oneof(oneof.fields().map(|f| f.number()).min().unwrap_or(0)),
        None => Identity::Field(field.number()),
    }
}

/// A key, borrowed from the input unless it had escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Cow<'de, str>, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E>(self, key: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_types() -> MessageDescriptor {
        crate::protos::test_pool("transcode_test.proto")
            .get_message_by_name("switchyard.transcode.test.AllTypes")
            .unwrap()
    }

    fn refused(json: &str) -> Option<String> {
        check(&all_types(), json.as_bytes())
            .err()
            .map(|e| e.to_string())
    }

    #[test]
    fn a_key_or_a_field_given_twice_is_refused() {
        for json in [
            r#"{"fString":"1","fString":"2"}"#,
            r#"{"fString":"1","f_string":"2"}"#,
            r#"{"label":"1","display_name":"2"}"#,
            r#"{"f\u0053tring":"1","fString":"2"}"#,
            r#"{"users":[{"id":"a"},{"id":"b","name":"x","name":"y"}]}"#,
            r#"{"user":{"address":{},"address":{}}}"#,
            r#"{"labels":{"a":"1","a":"2"}}"#,
            r#"{"attrs":{"a":1,"b":{"c":1,"c":2}}}"#,
            r#"{"unknown":{"a":1,"a":2}}"#,
            r#"{"byName":"a","byId":"1"}"#,
        ] {
            let error = refused(json).unwrap_or_else(|| panic!("accepted {json}"));
            assert!(error.starts_with("duplicate key"), "{json}: {error}");
        }
    }

    #[test]
    fn the_same_key_in_different_objects_is_fine() {
        for json in [
            r#"{"fString":"1","users":[{"id":"a","name":"x"},{"id":"b","name":"y"}]}"#,
            r#"{"labels":{"fString":"1"},"fString":"2"}"#,
            r#"{"attrs":{"a":{"a":1}},"optName":"x"}"#,
        ] {
            assert_eq!(refused(json), None, "{json}");
        }
    }

    #[test]
    fn a_key_repeated_far_apart_in_a_large_object_is_found() {
        let keys: String = (0..100_000).map(|i| format!(r#""k{i}":1,"#)).collect();
        assert_eq!(
            refused(&format!(r#"{{"unknown":{{{keys}"end":1}}}}"#)),
            None
        );
        let error = refused(&format!(r#"{{"unknown":{{{keys}"k7":2}}}}"#)).expect("refused");
        assert!(error.starts_with(r#"duplicate key "k7""#), "{error}");
        // Past the short list, a oneof is still one field.
        let many: String = (0..20).map(|i| format!(r#""u{i}":1,"#)).collect();
        let error = refused(&format!(r#"{{{many}"byName":"a","byId":"1"}}"#)).expect("refused");
        assert!(error.contains("oneof"), "{error}");
    }

    #[test]
    fn nesting_past_the_limit_is_refused_even_in_unknown_fields() {
        let deep = format!(r#"{{"x":{}{}}}"#, "[".repeat(10_000), "]".repeat(10_000));
        let error = refused(&deep).expect("refused");
        assert!(error.contains("recursion limit"), "{error}");
    }
}
