use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use serde_json::json;

use super::*;

const PROTO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/protos");
const ALL_TYPES: &str = "switchyard.transcode.test.AllTypes";

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

fn all_types() -> MessageDescriptor {
    pool().get_message_by_name(ALL_TYPES).expect("AllTypes")
}

fn path(dotted: &str) -> FieldPath {
    FieldPath::resolve(&all_types(), dotted).expect(dotted)
}

fn mapper(excluded: &[&str], options: QueryOptions) -> QueryMapper {
    QueryMapper::new(
        &all_types(),
        excluded.iter().map(|p| path(p)).collect(),
        options,
    )
}

/// Apply `query` to a fresh message; the message as proto3 JSON.
fn apply(mapper: &QueryMapper, query: &str) -> Result<serde_json::Value, QueryError> {
    let mut msg = DynamicMessage::new(all_types());
    mapper.apply(&mut msg, query)?;
    Ok(serde_json::to_value(&msg).expect("serialize"))
}

#[test]
fn apply_sets_fields_by_proto_or_json_name_with_form_decoding() {
    let mapper = mapper(&[], QueryOptions::default());
    for (query, expected) in [
        ("", json!({})),
        ("page_size=10", json!({"pageSize": 10})),
        ("pageSize=10", json!({"pageSize": 10})),
        ("label=x", json!({"label": "x"})),
        ("display_name=x", json!({"label": "x"})),
        (
            "user.name=Ann&user.address.city=Paris",
            json!({"user": {"name": "Ann", "address": {"city": "Paris"}}}),
        ),
        (
            "user.address.postalCode=75001",
            json!({"user": {"address": {"postalCode": "75001"}}}),
        ),
        (
            "filter.createTime=2024-01-01T00:00:00Z",
            json!({"filter": {"createTime": "2024-01-01T00:00:00Z"}}),
        ),
        (
            "create_time=2024-01-01T05:30:00%2B05:30",
            json!({"createTime": "2024-01-01T00:00:00Z"}),
        ),
        ("f_string=a+b", json!({"fString": "a b"})),
        ("f_string=a%2Bb", json!({"fString": "a+b"})),
        ("f_string=caf%C3%A9%20%26%3D", json!({"fString": "café &="})),
        ("f_string=a=b", json!({"fString": "a=b"})),
        ("page%5Fsize=3", json!({"pageSize": 3})),
        ("&&page_size=1&", json!({"pageSize": 1})),
        ("opt_name", json!({"optName": ""})),
        ("opt_name=", json!({"optName": ""})),
        (
            "role=ROLE_ADMIN&f_bool=1&f_bytes=aGk",
            json!({"role": "ROLE_ADMIN", "fBool": true, "fBytes": "aGk="}),
        ),
        (
            "ttl=1.5s&wBool=false&w_int64=-1",
            json!({"ttl": "1.500s", "wBool": false, "wInt64": "-1"}),
        ),
        (
            "updateMask=name,createTime",
            json!({"updateMask": "name,createTime"}),
        ),
        (
            "update_mask=user.display_name%2Ccreate_time",
            json!({"updateMask": "user.displayName,createTime"}),
        ),
        ("by_id=5", json!({"byId": "5"})),
        (
            "byUser.name=a&by_user.id=b",
            json!({"byUser": {"name": "a", "id": "b"}}),
        ),
    ] {
        let actual = apply(&mapper, query).unwrap_or_else(|e| panic!("{query}: {e}"));
        assert_eq!(actual, expected, "{query}");
    }
}

#[test]
fn apply_appends_repeated_params_in_order_without_splitting_commas() {
    let mapper = mapper(&[], QueryOptions::default());
    for (query, expected) in [
        ("ids=1&ids=2&ids=3", json!({"ids": ["1", "2", "3"]})),
        ("tags=a,b", json!({"tags": ["a,b"]})),
        (
            "tags=b&page_size=1&tags=a",
            json!({"tags": ["b", "a"], "pageSize": 1}),
        ),
        (
            "roles=ROLE_USER&roles=2",
            json!({"roles": ["ROLE_USER", "ROLE_ADMIN"]}),
        ),
        (
            "times=2024-01-01T00:00:00Z&times=1970-01-01T00:00:01Z",
            json!({"times": ["2024-01-01T00:00:00Z", "1970-01-01T00:00:01Z"]}),
        ),
    ] {
        let actual = apply(&mapper, query).unwrap_or_else(|e| panic!("{query}: {e}"));
        assert_eq!(actual, expected, "{query}");
    }
}

#[test]
fn apply_rejects_bad_params_with_client_facing_messages() {
    let mapper = mapper(&[], QueryOptions::default());
    let no_field = |message: &str, field: &str| {
        format!(r#"message "switchyard.transcode.test.{message}" has no field "{field}""#)
    };
    for (query, expected) in [
        ("nope=1", format!(r#"unknown query parameter "nope": {}"#, no_field("AllTypes", "nope"))),
        ("user.nope=1", format!(r#"unknown query parameter "user.nope": {}"#, no_field("User", "nope"))),
        ("labels[k]=v", format!(r#"unknown query parameter "labels[k]": {}"#, no_field("AllTypes", "labels[k]"))),
        ("=1", r#"unknown query parameter "": field path "" is empty or has an empty segment"#.to_owned()),
        ("page_size.x=1", r#"invalid query parameter "page_size.x": cannot select "x" inside field "page_size": it is not a message"#.to_owned()),
        ("tags.x=1", r#"invalid query parameter "tags.x": cannot select "x" inside field "tags": it is a repeated or map field"#.to_owned()),
        ("page_size=1&page_size=2", r#"repeated query parameter "page_size" for a non-repeated field"#.to_owned()),
        ("page_size=1&pageSize=1", r#"repeated query parameter "pageSize" for a non-repeated field"#.to_owned()),
        ("user.name=a&user.name=b", r#"repeated query parameter "user.name" for a non-repeated field"#.to_owned()),
        ("create_time=2024-01-01T00:00:00Z&create_time.seconds=5", r#"query parameters "create_time" and "create_time.seconds" both set field "create_time""#.to_owned()),
        ("updateMask.paths=a&update_mask=b", r#"query parameters "updateMask.paths" and "update_mask" both set field "update_mask""#.to_owned()),
        ("by_name=a&by_id=1", r#"field "by_id" is in oneof "selector", whose field "by_name" is already set"#.to_owned()),
        ("page_size=abc", r#"invalid value "abc" for field "page_size": expected a 32-bit integer"#.to_owned()),
        ("f_int32=2147483648", r#"invalid value "2147483648" for field "f_int32": expected a 32-bit integer"#.to_owned()),
        ("f_uint64=-1", r#"invalid value "-1" for field "f_uint64": expected an unsigned 64-bit integer"#.to_owned()),
        ("user=x", r#"field "user" is a message; set its fields with user.sub=..."#.to_owned()),
        ("labels=x", r#"field "labels" is a map, which cannot be set from a single value"#.to_owned()),
        ("f_string=%zz", r#"query parameter "%zz" has an invalid percent-encoding"#.to_owned()),
        ("f_string=100%", r#"query parameter "100%" has an invalid percent-encoding"#.to_owned()),
        ("f_string=%4", r#"query parameter "%4" has an invalid percent-encoding"#.to_owned()),
        ("%zz=1", r#"query parameter "%zz" has an invalid percent-encoding"#.to_owned()),
        ("f_string=%FF", r#"query parameter "%FF" is not valid UTF-8 once percent-decoded"#.to_owned()),
        ("f_string=%C3", r#"query parameter "%C3" is not valid UTF-8 once percent-decoded"#.to_owned()),
    ] {
        let err = apply(&mapper, query).expect_err(query);
        assert_eq!(err.to_string(), expected, "{query}");
    }
}

#[test]
fn apply_treats_a_raw_plus_in_a_timestamp_offset_as_a_space() {
    // Clients must send `%2B`: `+` means space in query strings.
    let mapper = mapper(&[], QueryOptions::default());
    let err = apply(&mapper, "create_time=2024-01-01T05:30:00+05:30").expect_err("space");
    let shown = err.to_string();
    assert!(
        shown.starts_with(r#"invalid value "2024-01-01T05:30:00 05:30" for field "create_time""#),
        "{shown}"
    );
}

#[test]
fn apply_ignores_params_bound_by_path_or_body_and_fields_inside_them() {
    let mapper = mapper(
        &["user", "page_size", "filter.query"],
        QueryOptions::default(),
    );
    for (query, expected) in [
        (
            "user.name=x&user=oops&user.bogus=1&user.name.deeper=1&f_string=kept",
            json!({"fString": "kept"}),
        ),
        ("page_size=5&pageSize=abc&page_size.x=1", json!({})),
        (
            "filter.query=ignored&filter.createTime=2024-01-01T00:00:00Z",
            json!({"filter": {"createTime": "2024-01-01T00:00:00Z"}}),
        ),
        ("user.name=%zz", json!({})),
    ] {
        let actual = apply(&mapper, query).unwrap_or_else(|e| panic!("{query}: {e}"));
        assert_eq!(actual, expected, "{query}");
    }
}

#[test]
fn apply_keeps_values_bound_by_the_path() {
    let mapper = mapper(&["page_size", "by_name"], QueryOptions::default());
    let mut msg = DynamicMessage::new(all_types());
    path("page_size")
        .set_from_str(&mut msg, "7")
        .expect("path variable");
    path("by_name")
        .set_from_str(&mut msg, "n")
        .expect("path variable");
    mapper
        .apply(&mut msg, "page_size=9&f_int32=1")
        .expect("apply");
    let expected = json!({"pageSize": 7, "byName": "n", "fInt32": 1});
    assert_eq!(serde_json::to_value(&msg).expect("json"), expected);
    // A query parameter may not switch the oneof away from the path's member.
    let err = mapper.apply(&mut msg, "by_id=1").expect_err("oneof");
    assert_eq!(
        err.to_string(),
        r#"field "by_id" is in oneof "selector", whose field "by_name" is already set"#
    );
}

#[test]
fn apply_ignores_unknown_params_only_when_told_to() {
    let lenient = QueryOptions {
        reject_unknown: false,
        ..QueryOptions::default()
    };
    let mapper = mapper(&[], lenient);
    for (query, expected) in [
        (
            "nope=1&page_size=2&user.nope=3&utm_source=x",
            Ok(json!({"pageSize": 2})),
        ),
        ("nope=%zz&=&a..b=1", Ok(json!({}))),
        (
            "page_size.x=1",
            Err(
                r#"invalid query parameter "page_size.x": cannot select "x" inside field "page_size": it is not a message"#,
            ),
        ),
        (
            "page_size=abc",
            Err(r#"invalid value "abc" for field "page_size": expected a 32-bit integer"#),
        ),
    ] {
        let actual = apply(&mapper, query).map_err(|e| e.to_string());
        assert_eq!(actual, expected.map_err(str::to_owned), "{query}");
    }
}

#[test]
fn apply_bounds_the_number_of_params() {
    let mapper = mapper(
        &[],
        QueryOptions {
            reject_unknown: false,
            max_params: 3,
        },
    );
    for (query, ok) in [
        ("a=1&b=2&c=3", true),
        ("a=1&&&b=2&c=3&", true),
        ("a=1&b=2&c=3&d=4", false),
        ("tags=1&tags=2&tags=3&tags=4", false),
    ] {
        let result = apply(&mapper, query);
        match (ok, result) {
            (true, Ok(_)) => {}
            (false, Err(err)) => assert_eq!(
                err.to_string(),
                "too many query parameters: at most 3 are allowed"
            ),
            (_, other) => panic!("{query}: {other:?}"),
        }
    }
    let default = mapper_with_default_limit();
    let hundred = vec!["tags=x"; 100].join("&");
    assert!(apply(&default, &hundred).is_ok());
    let err = apply(&default, &format!("{hundred}&tags=y")).expect_err("101 params");
    assert_eq!(err, QueryError::TooManyParams { limit: 100 });
}

fn mapper_with_default_limit() -> QueryMapper {
    mapper(&[], QueryOptions::default())
}

#[test]
fn default_options_reject_unknown_and_allow_100_params() {
    let options = QueryOptions::default();
    assert!(options.reject_unknown);
    assert_eq!(options.max_params, 100);
    assert_eq!(mapper(&[], options).options(), &options);
}

#[test]
fn errors_echo_at_most_a_bounded_prefix_of_the_key() {
    let mapper = mapper(&[], QueryOptions::default());
    let key = "k".repeat(5_000);
    let shown = apply(&mapper, &format!("{key}=1"))
        .expect_err("unknown")
        .to_string();
    assert!(
        shown.starts_with(&format!("unknown query parameter \"{}…\"", "k".repeat(64))),
        "{shown}"
    );
    assert!(shown.len() < 300, "{shown}");
}
