//! Path templates, bodies, verbs, bindings.

use http::Method;
use serde_json::json;

use crate::cases::{Case, Want, echo, echo_mask, get, run_cases, with_body};

#[tokio::test]
async fn http_rule_mapping() {
    let cases = [
        get(
            "single path variable",
            "/v1/items/abc",
            echo("GetItem", "item", json!({"id": "abc"})),
        ),
        get(
            "single-segment variable is fully percent-decoded",
            "/v1/items/a%20b%2Fc%C3%A9",
            echo("GetItem", "item", json!({"id": "a b/cé"})),
        ),
        get(
            "additional binding (GET)",
            "/v1/legacy/items/x7?name=old",
            echo("GetItem", "item", json!({"id": "x7", "name": "old"})),
        ),
        with_body(
            "body \"*\"",
            Method::POST,
            "/v1/items",
            r#"{"id":"c1","name":"created","count":3}"#,
            echo(
                "CreateItem",
                "item",
                json!({"id": "c1", "name": "created", "count": 3}),
            ),
        ),
        Case {
            name: "body \"*\" with an empty body is the empty message",
            method: Method::POST,
            path: "/v1/items",
            headers: &[],
            body: None,
            want: echo("CreateItem", "item", json!({})),
        },
        Case {
            name: "body \"*\" and a query string: the query is ignored (all fields come from the body)",
            method: Method::POST,
            path: "/v1/items?name=from-query",
            headers: &[],
            body: Some(r#"{"id":"c2"}"#),
            want: echo("CreateItem", "item", json!({"id": "c2"})),
        },
        Case {
            name: "a body that is not JSON by content type is 415",
            method: Method::POST,
            path: "/v1/items",
            headers: &[("content-type", "text/plain")],
            body: Some(r#"{"id":"c3"}"#),
            want: Want::Rejected(415, 3, "content type"),
        },
        with_body(
            "additional binding with body \"*\": the path variable wins over the body",
            Method::PUT,
            "/v1/items/p1",
            r#"{"id":"from-body","name":"put"}"#,
            echo("CreateItem", "item", json!({"id": "p1", "name": "put"})),
        ),
        with_body(
            "body \"item\" with nested path variable {item.id}; query fills update_mask, \
             a query naming a field inside the body field is ignored",
            Method::PATCH,
            "/v1/items/u1?updateMask=name,filter.query&item.count=99",
            r#"{"id":"other","name":"renamed","filter":{"query":"q"}}"#,
            echo_mask(
                "UpdateItem",
                "update",
                json!({"item": {"id": "u1", "name": "renamed", "filter": {"query": "q"}}, "updateMask": "name,filter.query"}),
                &["name", "filter.query"],
            ),
        ),
        with_body(
            "body naming a repeated field takes a JSON list; query fills the rest",
            Method::PUT,
            "/v1/items/t1/tags?name=via-query&tags=ignored",
            r#"["red", "green"]"#,
            echo(
                "SetTags",
                "item",
                json!({"id": "t1", "name": "via-query", "tags": ["red", "green"]}),
            ),
        ),
        with_body(
            "custom verb :archive",
            Method::POST,
            "/v1/items/z9:archive",
            r#"{"name":"old"}"#,
            echo("ArchiveItem", "item", json!({"id": "z9", "name": "old"})),
        ),
        with_body(
            "custom verb on an id containing a colon (%3A is data, not a verb separator)",
            Method::POST,
            "/v1/items/ns%3Az9:archive",
            "{}",
            echo("ArchiveItem", "item", json!({"id": "ns:z9"})),
        ),
        get(
            "response_body gives the bare Item",
            "/v1/items/v1/view?name=viewed&big=5",
            Want::Exact(200, json!({"id": "v1", "name": "viewed", "big": "5"})),
        ),
        get(
            "multi-segment variable {name=shelves/*/books/*}",
            "/v1/shelves/s1/books/b2?view=FULL",
            echo(
                "GetBook",
                "book",
                json!({"name": "shelves/s1/books/b2", "view": "FULL"}),
            ),
        ),
        get(
            "multi-segment variable keeps %2F encoded, decodes the rest",
            "/v1/shelves/s%2F1/books/b%20two",
            echo(
                "GetBook",
                "book",
                json!({"name": "shelves/s%2F1/books/b two"}),
            ),
        ),
        get(
            "open-ended variable {name=**}: several segments, %2F kept",
            "/v1/archive/a/b%2Fc/d%20e",
            echo("GetBook", "book", json!({"name": "a/b%2Fc/d e"})),
        ),
        get(
            "open-ended variable {name=**} matches zero segments",
            "/v1/archive",
            echo("GetBook", "book", json!({})),
        ),
        with_body(
            "multi-segment variable then a custom verb, body \"*\" (the path wins)",
            Method::POST,
            "/v1/shelves/s1/books/b2:publish",
            r#"{"view":"v","name":"ignored"}"#,
            echo(
                "GetBook",
                "book",
                json!({"name": "shelves/s1/books/b2", "view": "v"}),
            ),
        ),
        get(
            "without a verb in the template, a colon is data",
            "/v1/shelves/s1/books/b2:publish",
            echo(
                "GetBook",
                "book",
                json!({"name": "shelves/s1/books/b2:publish"}),
            ),
        ),
        get(
            "path variables of int32, int64, enum, bool, nested int32 and double",
            "/v1/typed/-5/-9223372036854775808/COLOR_RED/true/7/1.5",
            echo(
                "GetItem",
                "item",
                json!({"count": -5, "big": "-9223372036854775808", "color": "COLOR_RED", "flag": true, "filter": {"min": 7}, "ratio": 1.5}),
            ),
        ),
        get(
            "typed path variables: enum by number, false, NaN; {filter.min}=0 still creates filter",
            "/v1/typed/0/18/3/false/0/NaN",
            echo(
                "GetItem",
                "item",
                json!({"big": "18", "color": "COLOR_BLUE", "ratio": "NaN", "filter": {}}),
            ),
        ),
        get(
            "a path variable that does not parse as its field's type is 400",
            "/v1/typed/x/1/2/0/-1/0",
            Want::Rejected(400, 3, "count"),
        ),
        Case {
            name: "a method the path does not allow is 405",
            method: Method::DELETE,
            path: "/v1/shelves/s1/books/b2",
            headers: &[],
            body: None,
            want: Want::Rejected(405, 12, "allowed: GET"),
        },
        get(
            "a path the template does not match is 404",
            "/v1/shelves/s1/books",
            Want::Rejected(404, 5, ""),
        ),
        with_body(
            "unknown body field is 400 by default",
            Method::POST,
            "/v1/items",
            r#"{"id":"c1","bogus":1}"#,
            Want::Rejected(400, 3, "bogus"),
        ),
    ];
    run_cases(&cases).await;
}

// ============================================================================
// Query parameters of every kind.
// ============================================================================

#[tokio::test]
async fn query_parameters() {
    let cases = [
        get(
            "scalars, enums, repeated and nested fields",
            "/v1/items/q1?count=-7&big=-9007199254740993&ubig=18446744073709551615&flag=true\
             &ratio=0.25&ratio32=1.5&color=COLOR_GREEN&tags=a&tags=b+c&ids=1&ids=-2\
             &colors=COLOR_RED&colors=3&filter.query=x%26y&filter.color=2&filter.min=5\
             &label=Disp&text=hello%20w%C3%B6rld",
            echo(
                "GetItem",
                "item",
                json!({
                    "id": "q1", "count": -7, "big": "-9007199254740993",
                    "ubig": "18446744073709551615", "flag": true, "ratio": 0.25,
                    "ratio32": 1.5, "color": "COLOR_GREEN", "tags": ["a", "b c"],
                    "ids": ["1", "-2"], "colors": ["COLOR_RED", "COLOR_BLUE"],
                    "filter": {"query": "x&y", "color": "COLOR_GREEN", "min": 5},
                    "label": "Disp", "text": "hello wörld"
                }),
            ),
        ),
        get(
            "proto (snake_case) names and json_name",
            "/v1/items/q2?display_name=snake&w_int64=3&create_time=2024-05-06T07:08:09Z&flag=0",
            echo(
                "GetItem",
                "item",
                json!({"id": "q2", "label": "snake", "wInt64": "3", "createTime": "2024-05-06T07:08:09Z"}),
            ),
        ),
        get(
            "well-known types from the query",
            "/v1/items/q3?createTime=2024-05-06T07:08:09.500Z&ttl=1.5s&mask=displayName,filter.query\
             &wInt64=-5&wString=&wBool=false&data=AAEC_w&number=42",
            echo_mask(
                "GetItem",
                "item",
                json!({
                    "id": "q3", "createTime": "2024-05-06T07:08:09.500Z", "ttl": "1.500s",
                    "mask": "displayName,filter.query", "wInt64": "-5", "wString": "",
                    "wBool": false, "data": "AAEC/w==", "number": "42"
                }),
                &["display_name", "filter.query"],
            ),
        ),
        get(
            "Timestamp with an offset is normalized to UTC",
            "/v1/items/q4?createTime=2024-05-06T09:08:09.123456789%2B02:00",
            echo(
                "GetItem",
                "item",
                json!({"id": "q4", "createTime": "2024-05-06T07:08:09.123456789Z"}),
            ),
        ),
        get(
            "double specials and uint64 max",
            "/v1/items/q5?ratio=-Infinity&ubig=18446744073709551615&ratio32=NaN",
            echo(
                "GetItem",
                "item",
                json!({"id": "q5", "ratio": "-Infinity", "ubig": "18446744073709551615", "ratio32": "NaN"}),
            ),
        ),
        get(
            "oneof member that is a message, set field by field",
            "/v1/items/q6?tag.key=k&tag.value=v",
            echo(
                "GetItem",
                "item",
                json!({"id": "q6", "tag": {"key": "k", "value": "v"}}),
            ),
        ),
        get(
            "a query parameter naming a path-bound field is ignored",
            "/v1/items/q7?id=other",
            echo("GetItem", "item", json!({"id": "q7"})),
        ),
        get(
            "unknown query parameter is 400",
            "/v1/items/q8?bogus=1",
            Want::Rejected(400, 3, "bogus"),
        ),
        get(
            "int32 out of range is 400",
            "/v1/items/q9?count=2147483648",
            Want::Rejected(400, 3, "count"),
        ),
        get(
            "undefined enum number is 400",
            "/v1/items/q10?color=7",
            Want::Rejected(400, 3, "color"),
        ),
        get(
            "two members of one oneof is 400",
            "/v1/items/q11?text=a&number=1",
            Want::Rejected(400, 3, "oneof"),
        ),
        get(
            "a non-repeated field set twice is 400",
            "/v1/items/q12?name=a&name=b",
            Want::Rejected(400, 3, "name"),
        ),
        get(
            "a Struct has no one-string form",
            "/v1/items/q13?attrs=x",
            Want::Rejected(400, 3, "attrs"),
        ),
    ];
    run_cases(&cases).await;
}
