//! Proto3 JSON of every kind, through a body, both directions.

use http::Method;
use serde_json::json;

use crate::cases::{Want, echo, echo_mask, run_cases, with_body};

const FULL_ITEM: &str = r#"{
  "id": "w1", "name": "full", "count": 3, "big": 123, "ubig": "18446744073709551615",
  "flag": true, "ratio": "Infinity", "ratio32": 0.5, "color": 2, "tags": ["x", "y"],
  "ids": [1, "-2", "9007199254740993"], "colors": ["COLOR_RED", 2],
  "filter": {"query": "q", "color": "COLOR_BLUE", "min": -1},
  "data": "AAEC/w==", "counters": {"a": 1, "b": "-2", "big": "9223372036854775807"},
  "tag": {"key": "k", "value": "v"}, "display_name": "D",
  "createTime": "2024-05-06T07:08:09.500Z", "ttl": "1.5s",
  "mask": "displayName,filter.query,createTime",
  "attrs": {"a": 1, "b": [true, null, "x"], "c": {"d": 1.5, "e": {}}},
  "value": {"k": [1, 2]}, "list": [1, "a", {"b": false}, null, []],
  "wInt64": "9007199254740993", "wString": "s", "wBool": false,
  "extra": {"@type": "type.googleapis.com/peer.v1.Tag", "key": "k2", "value": "v2"}
}"#;

#[tokio::test]
async fn proto3_json_and_well_known_types() {
    let cases = [
        with_body(
            "every field kind in one body",
            Method::POST,
            "/v1/items",
            FULL_ITEM,
            echo_mask(
                "CreateItem",
                "item",
                json!({
                    "id": "w1", "name": "full", "count": 3, "big": "123",
                    "ubig": "18446744073709551615", "flag": true, "ratio": "Infinity",
                    "ratio32": 0.5, "color": "COLOR_GREEN", "tags": ["x", "y"],
                    "ids": ["1", "-2", "9007199254740993"], "colors": ["COLOR_RED", "COLOR_GREEN"],
                    "filter": {"query": "q", "color": "COLOR_BLUE", "min": -1},
                    "data": "AAEC/w==", "counters": {"a": "1", "b": "-2", "big": "9223372036854775807"},
                    "tag": {"key": "k", "value": "v"}, "label": "D",
                    "createTime": "2024-05-06T07:08:09.500Z", "ttl": "1.500s",
                    "mask": "displayName,filter.query,createTime",
                    "attrs": {"a": 1, "b": [true, null, "x"], "c": {"d": 1.5, "e": {}}},
                    "value": {"k": [1, 2]}, "list": [1, "a", {"b": false}, null, []],
                    "wInt64": "9007199254740993", "wString": "s", "wBool": false,
                    "extra": {"@type": "type.googleapis.com/peer.v1.Tag", "key": "k2", "value": "v2"}
                }),
                &["display_name", "filter.query", "create_time"],
            ),
        ),
        with_body(
            "int64 extremes as JSON numbers (no float rounding) and strings",
            Method::POST,
            "/v1/items",
            r#"{"big":"-9223372036854775808","ubig":0,"number":9223372036854775807,"ids":["9223372036854775807",-1]}"#,
            echo(
                "CreateItem",
                "item",
                json!({"big": "-9223372036854775808", "number": "9223372036854775807", "ids": ["9223372036854775807", "-1"]}),
            ),
        ),
        with_body(
            "wrappers: null means unset, default values are kept",
            Method::POST,
            "/v1/items",
            r#"{"id":"w2","wInt64":null,"wString":"","wBool":false,"createTime":null,"attrs":null}"#,
            echo(
                "CreateItem",
                "item",
                json!({"id": "w2", "wString": "", "wBool": false}),
            ),
        ),
        with_body(
            "wrappers accept a number for Int64Value",
            Method::POST,
            "/v1/items",
            r#"{"wInt64":-42,"wBool":true}"#,
            echo(
                "CreateItem",
                "item",
                json!({"wInt64": "-42", "wBool": true}),
            ),
        ),
        with_body(
            "google.protobuf.Value: null is NULL_VALUE, scalars, lists",
            Method::POST,
            "/v1/items",
            r#"{"id":"v0","value":null}"#,
            echo("CreateItem", "item", json!({"id": "v0", "value": null})),
        ),
        with_body(
            "google.protobuf.Value holding a string",
            Method::POST,
            "/v1/items",
            r#"{"value":"text"}"#,
            echo("CreateItem", "item", json!({"value": "text"})),
        ),
        with_body(
            "google.protobuf.Value holding a number and ListValue empty",
            Method::POST,
            "/v1/items",
            r#"{"value":-2.5,"list":[]}"#,
            echo("CreateItem", "item", json!({"value": -2.5, "list": []})),
        ),
        with_body(
            "Timestamp and Duration forms",
            Method::POST,
            "/v1/items",
            r#"{"createTime":"2024-05-06T09:08:09.12+02:00","ttl":"-0.000001s"}"#,
            echo(
                "CreateItem",
                "item",
                json!({"createTime": "2024-05-06T07:08:09.120Z", "ttl": "-0.000001s"}),
            ),
        ),
        with_body(
            "Duration with whole seconds and nanos",
            Method::POST,
            "/v1/items",
            r#"{"ttl":"3600.000000001s"}"#,
            echo("CreateItem", "item", json!({"ttl": "3600.000000001s"})),
        ),
        with_body(
            "bytes: URL-safe unpadded base64 in, standard padded out",
            Method::POST,
            "/v1/items",
            r#"{"data":"-_8"}"#,
            echo("CreateItem", "item", json!({"data": "+/8="})),
        ),
        with_body(
            "enum: undefined number in a body is kept (proto3 enums are open)",
            Method::POST,
            "/v1/items",
            r#"{"color":7}"#,
            echo("CreateItem", "item", json!({"color": 7})),
        ),
        with_body(
            "enum: default value by name is omitted on output",
            Method::POST,
            "/v1/items",
            r#"{"id":"e0","color":"COLOR_UNSPECIFIED","count":0,"flag":false,"name":""}"#,
            echo("CreateItem", "item", json!({"id": "e0"})),
        ),
        with_body(
            "Any holding a well-known type uses \"value\"",
            Method::POST,
            "/v1/items",
            r#"{"extra":{"@type":"type.googleapis.com/google.protobuf.Duration","value":"2s"}}"#,
            echo(
                "CreateItem",
                "item",
                json!({"extra": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "2s"}}),
            ),
        ),
        with_body(
            "Any holding a Struct",
            Method::POST,
            "/v1/items",
            r#"{"extra":{"@type":"type.googleapis.com/google.protobuf.Struct","value":{"a":[1,"b"]}}}"#,
            echo(
                "CreateItem",
                "item",
                json!({"extra": {"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"a": [1, "b"]}}}),
            ),
        ),
        with_body(
            "Any holding a message with an Any inside",
            Method::POST,
            "/v1/items",
            r#"{"extra":{"@type":"type.googleapis.com/peer.v1.Item","id":"inner","extra":{"@type":"type.googleapis.com/peer.v1.Tag","key":"deep"}}}"#,
            echo(
                "CreateItem",
                "item",
                json!({"extra": {"@type": "type.googleapis.com/peer.v1.Item", "id": "inner", "extra": {"@type": "type.googleapis.com/peer.v1.Tag", "key": "deep"}}}),
            ),
        ),
        with_body(
            "oneof: two members in one body is 400",
            Method::POST,
            "/v1/items",
            r#"{"text":"a","number":1}"#,
            Want::Rejected(400, 3, ""),
        ),
        with_body(
            "int32 overflow in a body is 400",
            Method::POST,
            "/v1/items",
            r#"{"count":2147483648}"#,
            Want::Rejected(400, 3, ""),
        ),
        with_body(
            "unknown enum name in a body is 400",
            Method::POST,
            "/v1/items",
            r#"{"color":"COLOR_PURPLE"}"#,
            Want::Rejected(400, 3, ""),
        ),
        with_body(
            "Any with a type not in the descriptor pool is 400",
            Method::POST,
            "/v1/items",
            r#"{"extra":{"@type":"type.googleapis.com/nowhere.Missing","x":1}}"#,
            Want::Rejected(400, 3, ""),
        ),
    ];
    run_cases(&cases).await;
}
