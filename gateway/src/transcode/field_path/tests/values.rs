//! Text → value cases: every scalar kind and well-known type, valid and not.

use prost_reflect::{DynamicMessage, Value};
use serde_json::json;

use super::{all_types, path, set_one};

#[test]
fn set_from_str_parses_every_scalar_kind() {
    let bytes = |b: &[u8]| Value::Bytes(b.to_vec().into());
    for (field, text, expected) in [
        ("f_int32", "-2147483648", Value::I32(i32::MIN)),
        ("f_int32", "+2147483647", Value::I32(i32::MAX)),
        ("f_int64", "-9223372036854775808", Value::I64(i64::MIN)),
        ("f_uint32", "4294967295", Value::U32(u32::MAX)),
        ("f_uint64", "18446744073709551615", Value::U64(u64::MAX)),
        ("f_sint32", "-5", Value::I32(-5)),
        ("f_sint64", "-5", Value::I64(-5)),
        ("f_fixed32", "7", Value::U32(7)),
        ("f_fixed64", "7", Value::U64(7)),
        ("f_sfixed32", "-7", Value::I32(-7)),
        ("f_sfixed64", "-7", Value::I64(-7)),
        ("f_double", "1.5", Value::F64(1.5)),
        ("f_double", "-2e-3", Value::F64(-0.002)),
        ("f_double", "Infinity", Value::F64(f64::INFINITY)),
        ("f_double", "-Infinity", Value::F64(f64::NEG_INFINITY)),
        ("f_float", "3.25", Value::F32(3.25)),
        ("f_float", "-Infinity", Value::F32(f32::NEG_INFINITY)),
        ("f_bool", "true", Value::Bool(true)),
        ("f_bool", "1", Value::Bool(true)),
        ("f_bool", "false", Value::Bool(false)),
        ("f_bool", "0", Value::Bool(false)),
        (
            "f_string",
            "héllo wörld",
            Value::String("héllo wörld".into()),
        ),
        ("f_string", "", Value::String(String::new())),
        // Path variables and query values arrive decoded: no second decoding.
        ("f_string", "a+b%20", Value::String("a+b%20".into())),
        ("f_bytes", "aGVsbG8=", bytes(b"hello")),
        ("f_bytes", "aGVsbG8", bytes(b"hello")),
        ("f_bytes", "+/8=", bytes(&[0xfb, 0xff])),
        ("f_bytes", "-_8", bytes(&[0xfb, 0xff])),
        ("f_bytes", "", bytes(b"")),
        ("role", "ROLE_ADMIN", Value::EnumNumber(2)),
        ("role", "1", Value::EnumNumber(1)),
        ("page_size", "25", Value::I32(25)),
        ("opt_name", "x", Value::String("x".into())),
    ] {
        let mut msg = DynamicMessage::new(all_types());
        let field_path = path(field);
        field_path
            .set_from_str(&mut msg, text)
            .unwrap_or_else(|e| panic!("{field}={text}: {e}"));
        assert_eq!(
            *msg.get_field(field_path.leaf()),
            expected,
            "{field}={text}"
        );
    }
}

#[test]
fn set_from_str_accepts_nan_for_floats() {
    for (field, text) in [("f_double", "NaN"), ("f_float", "NaN"), ("f_double", "nan")] {
        let mut msg = DynamicMessage::new(all_types());
        path(field).set_from_str(&mut msg, text).expect(text);
        let value = msg.get_field(path(field).leaf()).into_owned();
        let is_nan = value
            .as_f64()
            .map(f64::is_nan)
            .or(value.as_f32().map(f32::is_nan));
        assert_eq!(is_nan, Some(true), "{field}={text}");
    }
}

#[test]
fn set_from_str_accepts_non_finite_floats_in_wrappers() {
    for (field, text) in [
        ("w_double", "-Infinity"),
        ("w_float", "Infinity"),
        ("w_double", "NaN"),
    ] {
        let mut msg = DynamicMessage::new(all_types());
        path(field).set_from_str(&mut msg, text).expect(text);
        let wrapper = msg.get_field(path(field).leaf()).into_owned();
        let inner = wrapper
            .as_message()
            .expect("wrapper")
            .get_field_by_number(1)
            .expect("value");
        let shown = inner
            .as_f64()
            .map(|v| v.to_string())
            .or(inner.as_f32().map(|v| v.to_string()));
        let expected = text.replace("Infinity", "inf");
        assert_eq!(shown.as_deref(), Some(expected.as_str()), "{field}={text}");
    }
}

#[test]
fn set_from_str_rejects_invalid_scalars_naming_field_and_expectation() {
    let invalid = |value: &str, field: &str, expected: &str| {
        format!(r#"invalid value "{value}" for field "{field}": expected {expected}"#)
    };
    let role = "a value of enum switchyard.transcode.test.Role (a value name or a defined number)";
    let float = "a number, NaN, Infinity or -Infinity";
    let base64 = "base64 (standard or URL-safe, padding optional)";
    for (field, text, expected) in [
        (
            "page_size",
            "abc",
            invalid("abc", "page_size", "a 32-bit integer"),
        ),
        (
            "f_int32",
            "2147483648",
            invalid("2147483648", "f_int32", "a 32-bit integer"),
        ),
        (
            "f_int32",
            "1.0",
            invalid("1.0", "f_int32", "a 32-bit integer"),
        ),
        (
            "f_int32",
            " 1",
            invalid(" 1", "f_int32", "a 32-bit integer"),
        ),
        ("f_int32", "", invalid("", "f_int32", "a 32-bit integer")),
        (
            "f_sint32",
            "-2147483649",
            invalid("-2147483649", "f_sint32", "a 32-bit integer"),
        ),
        (
            "f_int64",
            "9223372036854775808",
            invalid("9223372036854775808", "f_int64", "a 64-bit integer"),
        ),
        (
            "f_uint32",
            "-1",
            invalid("-1", "f_uint32", "an unsigned 32-bit integer"),
        ),
        (
            "f_fixed32",
            "4294967296",
            invalid("4294967296", "f_fixed32", "an unsigned 32-bit integer"),
        ),
        (
            "f_uint64",
            "-1",
            invalid("-1", "f_uint64", "an unsigned 64-bit integer"),
        ),
        ("f_float", "1e39", invalid("1e39", "f_float", float)),
        ("f_double", "1e999", invalid("1e999", "f_double", float)),
        ("f_double", "1,5", invalid("1,5", "f_double", float)),
        (
            "f_bool",
            "yes",
            invalid("yes", "f_bool", "true, false, 1 or 0"),
        ),
        (
            "f_bool",
            "TRUE",
            invalid("TRUE", "f_bool", "true, false, 1 or 0"),
        ),
        ("f_bytes", "a", invalid("a", "f_bytes", base64)),
        ("f_bytes", "!!!!", invalid("!!!!", "f_bytes", base64)),
        ("role", "ROLE_NOPE", invalid("ROLE_NOPE", "role", role)),
        ("role", "role_admin", invalid("role_admin", "role", role)),
        ("role", "7", invalid("7", "role", role)),
        ("roles", "9", invalid("9", "roles", role)),
        ("user.role", "x", invalid("x", "user.role", role)),
        ("w_int32", "x", invalid("x", "w_int32", "a 32-bit integer")),
        (
            "w_bool",
            "yes",
            invalid("yes", "w_bool", "true, false, 1 or 0"),
        ),
        (
            "w_uint64",
            "-1",
            invalid("-1", "w_uint64", "an unsigned 64-bit integer"),
        ),
    ] {
        let err = set_one(field, text).expect_err(&format!("{field}={text}"));
        assert_eq!(err.to_string(), expected, "{field}={text}");
    }
}

#[test]
fn set_from_str_parses_well_known_types() {
    for (field, text, expected) in [
        (
            "create_time",
            "2024-01-01T00:00:00Z",
            json!({"createTime": "2024-01-01T00:00:00Z"}),
        ),
        (
            "create_time",
            "2024-01-01T05:30:00+05:30",
            json!({"createTime": "2024-01-01T00:00:00Z"}),
        ),
        (
            "create_time",
            "2024-01-01T00:00:00.25-01:00",
            json!({"createTime": "2024-01-01T01:00:00.250Z"}),
        ),
        (
            "filter.create_time",
            "1970-01-01T00:00:00.000000001Z",
            json!({"filter": {"createTime": "1970-01-01T00:00:00.000000001Z"}}),
        ),
        ("ttl", "1.5s", json!({"ttl": "1.500s"})),
        ("ttl", "-3s", json!({"ttl": "-3s"})),
        ("ttl", "0.000001s", json!({"ttl": "0.000001s"})),
        (
            "update_mask",
            "name,createTime",
            json!({"updateMask": "name,createTime"}),
        ),
        ("w_int32", "-5", json!({"wInt32": -5})),
        ("w_int32", "0", json!({"wInt32": 0})),
        (
            "w_int64",
            "9007199254740993",
            json!({"wInt64": "9007199254740993"}),
        ),
        ("w_uint32", "5", json!({"wUint32": 5})),
        (
            "w_uint64",
            "18446744073709551615",
            json!({"wUint64": "18446744073709551615"}),
        ),
        ("w_float", "1.5", json!({"wFloat": 1.5})),
        ("w_double", "-2.5", json!({"wDouble": -2.5})),
        ("w_bool", "1", json!({"wBool": true})),
        ("w_bool", "false", json!({"wBool": false})),
        ("w_string", "", json!({"wString": ""})),
        ("w_bytes", "aGk", json!({"wBytes": "aGk="})),
    ] {
        let actual = set_one(field, text).unwrap_or_else(|e| panic!("{field}={text}: {e}"));
        assert_eq!(actual, expected, "{field}={text}");
    }
}

#[test]
fn set_from_str_normalises_field_mask_paths_to_snake_case() {
    for (text, expected) in [
        ("name,createTime", vec!["name", "create_time"]),
        ("name,create_time", vec!["name", "create_time"]),
        (
            "user.displayName, user.address.postal_code",
            vec!["user.display_name", "user.address.postal_code"],
        ),
        ("a,,b,", vec!["a", "b"]),
        ("", vec![]),
    ] {
        let mut msg = DynamicMessage::new(all_types());
        path("update_mask")
            .set_from_str(&mut msg, text)
            .expect(text);
        let mask: prost_types::FieldMask = msg
            .get_field(path("update_mask").leaf())
            .as_message()
            .expect("message")
            .transcode_to()
            .expect("FieldMask");
        assert_eq!(mask.paths, expected, "{text}");
    }
}

#[test]
fn set_from_str_rejects_invalid_well_known_values() {
    for (field, text, expected_prefix) in [
        (
            "create_time",
            "2024-01-01",
            "expected an RFC 3339 timestamp such as 2024-01-01T00:00:00Z (",
        ),
        (
            "create_time",
            "2024-01-01 00:00:00Z",
            "expected an RFC 3339 timestamp",
        ),
        (
            "create_time",
            "10000-01-01T00:00:00Z",
            "expected an RFC 3339 timestamp",
        ),
        ("ttl", "5", "expected a duration in seconds such as 1.5s ("),
        ("ttl", "1m", "expected a duration in seconds"),
        ("ttl", "315576000001s", "expected a duration in seconds"),
        (
            "update_mask",
            "a..b",
            "expected comma-separated field paths such as name,createTime",
        ),
        (
            "update_mask",
            "na-me",
            "expected comma-separated field paths",
        ),
    ] {
        let err = set_one(field, text).expect_err(&format!("{field}={text}"));
        let shown = err.to_string();
        let head = format!(r#"invalid value "{text}" for field "{field}": "#);
        assert!(shown.starts_with(&head), "{shown}");
        assert!(shown[head.len()..].starts_with(expected_prefix), "{shown}");
    }
}
