use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value};
use serde_json::json;

use super::*;

mod values;

const PROTO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/protos");

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        protox::Compiler::new([PROTO_DIR])
            .expect("include path")
            .include_imports(true)
            .open_file("transcode_test.proto")
            .expect("compile transcode_test.proto")
            .descriptor_pool()
    })
}

fn message(name: &str) -> MessageDescriptor {
    let full = format!("switchyard.transcode.test.{name}");
    pool().get_message_by_name(&full).expect("test message")
}

fn all_types() -> MessageDescriptor {
    message("AllTypes")
}

fn path(dotted: &str) -> FieldPath {
    FieldPath::resolve(&all_types(), dotted).expect(dotted)
}

/// Set `field` from `text` on a fresh message; the message as proto3 JSON.
fn set_one(field: &str, text: &str) -> Result<serde_json::Value, ValueError> {
    let mut msg = DynamicMessage::new(all_types());
    path(field).set_from_str(&mut msg, text)?;
    Ok(serde_json::to_value(&msg).expect("serialize"))
}

#[test]
fn resolve_accepts_proto_names_at_any_depth() {
    for (dotted, leaf) in [
        ("f_int32", "f_int32"),
        ("user.address.city", "city"),
        ("filter.create_time", "create_time"),
        ("by_user.name", "name"),
        ("create_time.seconds", "seconds"),
        ("tags", "tags"),
        ("labels", "labels"),
    ] {
        let resolved = FieldPath::resolve(&all_types(), dotted).expect(dotted);
        assert_eq!(resolved.to_dotted(), dotted);
        assert_eq!(resolved.leaf().name(), leaf, "{dotted}");
        assert_eq!(
            resolved.fields().len(),
            dotted.split('.').count(),
            "{dotted}"
        );
        assert_eq!(resolved.root(), &all_types());
    }
}

#[test]
fn resolve_rejects_bad_paths_naming_message_and_field() {
    let all = "switchyard.transcode.test.AllTypes";
    for (dotted, expected) in [
        (
            "",
            r#"field path "" is empty or has an empty segment"#.to_owned(),
        ),
        (
            "user..name",
            r#"field path "user..name" is empty or has an empty segment"#.to_owned(),
        ),
        (
            "user.",
            r#"field path "user." is empty or has an empty segment"#.to_owned(),
        ),
        ("nope", format!(r#"message "{all}" has no field "nope""#)),
        (
            "pageSize",
            format!(r#"message "{all}" has no field "pageSize""#),
        ),
        (
            "user.nope",
            r#"message "switchyard.transcode.test.User" has no field "nope""#.to_owned(),
        ),
        (
            "page_size.x",
            r#"cannot select "x" inside field "page_size": it is not a message"#.to_owned(),
        ),
        (
            "user.name.x",
            r#"cannot select "x" inside field "user.name": it is not a message"#.to_owned(),
        ),
        (
            "users.name",
            r#"cannot select "name" inside field "users": it is a repeated or map field"#
                .to_owned(),
        ),
        (
            "tags.x",
            r#"cannot select "x" inside field "tags": it is a repeated or map field"#.to_owned(),
        ),
        (
            "labels.key",
            r#"cannot select "key" inside field "labels": it is a repeated or map field"#
                .to_owned(),
        ),
    ] {
        let err = FieldPath::resolve(&all_types(), dotted).expect_err(dotted);
        assert_eq!(err.to_string(), expected, "{dotted}");
    }
}

#[test]
fn resolve_query_key_accepts_json_names_per_segment() {
    for (key, dotted) in [
        ("pageSize", "page_size"),
        ("page_size", "page_size"),
        ("label", "display_name"),
        ("display_name", "display_name"),
        ("filter.createTime", "filter.create_time"),
        ("user.address.postalCode", "user.address.postal_code"),
        ("byUser.address.postal_code", "by_user.address.postal_code"),
    ] {
        let resolved = FieldPath::resolve_query_key(&all_types(), key).expect(key);
        assert_eq!(resolved.to_dotted(), dotted, "{key}");
    }
}

#[test]
fn starts_with_compares_whole_fields() {
    assert!(path("user.address.city").starts_with(&path("user")));
    assert!(path("user.address.city").starts_with(&path("user.address.city")));
    assert!(!path("user").starts_with(&path("user.address")));
    assert!(!path("by_user.name").starts_with(&path("user")));
}

#[test]
fn set_from_str_rejects_message_and_map_leaves() {
    let message = |f: &str| format!(r#"field "{f}" is a message; set its fields with {f}.sub=..."#);
    let unsettable = |f: &str, what: &str| {
        format!(r#"field "{f}" is {what}, which cannot be set from a single value"#)
    };
    for (field, expected) in [
        ("user", message("user")),
        ("user.address", message("user.address")),
        ("by_user", message("by_user")),
        ("users", unsettable("users", "a repeated message field")),
        (
            "attrs",
            unsettable("attrs", "of type google.protobuf.Struct"),
        ),
        ("labels", unsettable("labels", "a map")),
    ] {
        let err = set_one(field, "x").expect_err(field);
        assert_eq!(err.to_string(), expected, "{field}");
    }
}

#[test]
fn set_from_str_appends_to_repeated_fields_in_order() {
    for (field, texts, expected) in [
        (
            "tags",
            vec!["b", "a", "b"],
            json!({"tags": ["b", "a", "b"]}),
        ),
        ("tags", vec!["a,b"], json!({"tags": ["a,b"]})),
        (
            "roles",
            vec!["ROLE_USER", "2"],
            json!({"roles": ["ROLE_USER", "ROLE_ADMIN"]}),
        ),
        ("ids", vec!["1", "-2"], json!({"ids": ["1", "-2"]})),
        (
            "times",
            vec!["2024-01-01T00:00:00Z"],
            json!({"times": ["2024-01-01T00:00:00Z"]}),
        ),
    ] {
        let mut msg = DynamicMessage::new(all_types());
        for text in texts {
            path(field).set_from_str(&mut msg, text).expect(text);
        }
        assert_eq!(
            serde_json::to_value(&msg).expect("json"),
            expected,
            "{field}"
        );
    }
}

#[test]
fn set_from_str_creates_and_shares_intermediate_messages() {
    let mut msg = DynamicMessage::new(all_types());
    path("user.address.city")
        .set_from_str(&mut msg, "Paris")
        .expect("city");
    path("user.name")
        .set_from_str(&mut msg, "Ann")
        .expect("name");
    let expected = json!({"user": {"name": "Ann", "address": {"city": "Paris"}}});
    assert_eq!(serde_json::to_value(&msg).expect("json"), expected);
}

#[test]
fn set_from_str_leaves_message_unchanged_on_invalid_value() {
    let mut msg = DynamicMessage::new(all_types());
    path("user.address.postal_code")
        .set_from_str(&mut msg, "75001")
        .expect("ok");
    let before = msg.clone();
    assert!(path("user.role").set_from_str(&mut msg, "NOPE").is_err());
    assert!(
        path("filter.create_time")
            .set_from_str(&mut msg, "yesterday")
            .is_err()
    );
    assert_eq!(msg, before);
    assert!(!msg.has_field(path("filter").leaf()));
}

#[test]
fn set_from_str_refuses_to_switch_a_set_oneof() {
    for (first, second, expected) in [
        (
            ("by_name", "a"),
            ("by_id", "1"),
            Some(r#"field "by_id" is in oneof "selector", whose field "by_name" is already set"#),
        ),
        (
            ("by_user.name", "a"),
            ("by_name", "b"),
            Some(r#"field "by_name" is in oneof "selector", whose field "by_user" is already set"#),
        ),
        (
            ("by_id", "0"),
            ("by_user.name", "b"),
            Some(r#"field "by_user" is in oneof "selector", whose field "by_id" is already set"#),
        ),
        (("by_name", "a"), ("by_name", "b"), None),
        (("by_user.name", "a"), ("by_user.id", "b"), None),
    ] {
        let mut msg = DynamicMessage::new(all_types());
        path(first.0)
            .set_from_str(&mut msg, first.1)
            .expect("first");
        let result = path(second.0).set_from_str(&mut msg, second.1);
        assert_eq!(
            result.err().map(|e| e.to_string()).as_deref(),
            expected,
            "{first:?} then {second:?}"
        );
    }
}

#[test]
fn get_or_create_mut_binds_a_body_field() {
    let mut msg = DynamicMessage::new(all_types());
    path("f_string")
        .set_from_str(&mut msg, "kept")
        .expect("f_string");
    let mut user = DynamicMessage::new(message("User"));
    user.set_field_by_name("name", Value::String("Ann".into()));
    *path("user").get_or_create_mut(&mut msg).expect("slot") = Value::Message(user);
    let slot = path("filter.create_time")
        .get_or_create_mut(&mut msg)
        .expect("nested slot");
    assert!(slot.as_message().is_some(), "leaf created with its default");
    let expected = json!({"fString": "kept", "user": {"name": "Ann"}, "filter": {"createTime": "1970-01-01T00:00:00Z"}});
    assert_eq!(serde_json::to_value(&msg).expect("json"), expected);
}

#[test]
fn set_value_checks_the_value_type() {
    let mut msg = DynamicMessage::new(all_types());
    let tags = Value::List(vec![Value::String("a".into()), Value::String("b".into())]);
    path("tags")
        .set_value(&mut msg, tags)
        .expect("list for repeated");
    path("user.id")
        .set_value(&mut msg, Value::String("42".into()))
        .expect("string");
    assert_eq!(
        serde_json::to_value(&msg).expect("json"),
        json!({"tags": ["a", "b"], "user": {"id": "42"}})
    );
    let filter = Value::Message(DynamicMessage::new(message("Filter")));
    for (field, value) in [
        ("tags", Value::String("a".into())),
        ("tags", Value::List(vec![Value::I32(1)])),
        ("page_size", Value::I64(1)),
        ("user", Value::I32(1)),
        ("user", filter),
    ] {
        let err = path(field).set_value(&mut msg, value).expect_err(field);
        assert_eq!(
            err.to_string(),
            format!(r#"value of the wrong type for field "{field}""#)
        );
    }
}

#[test]
fn paths_refuse_a_message_of_another_type() {
    let mut user = DynamicMessage::new(message("User"));
    let err = path("user.name")
        .set_from_str(&mut user, "x")
        .expect_err("wrong root");
    let expected = r#"field path "user.name" belongs to message "switchyard.transcode.test.AllTypes", not "switchyard.transcode.test.User""#;
    assert_eq!(err.to_string(), expected);
    assert!(path("user").get_or_create_mut(&mut user).is_err());
}

#[test]
fn errors_echo_at_most_a_bounded_prefix_of_the_value() {
    let long = "9".repeat(10_000);
    let shown = set_one("f_int32", &long).expect_err("too long").to_string();
    assert!(shown.len() < 200, "{shown}");
    assert!(
        shown.contains(&format!("\"{}…\"", "9".repeat(64))),
        "{shown}"
    );
}
