//! GraphQL bombs at the sizes an attacker picks: a query nested 10 000
//! deep, 10 000 aliases, a fragment cycle, a 1 MB query, a batch of 1 000
//! operations, and introspection when it is off. The per-query limits are
//! raised far above their defaults where needed so that each bomb meets the
//! limit made for it, not the size limit in front of it; each is a 400
//! naming its limit, before any upstream call.

use http::StatusCode;
use serde_json::{Value, json};

use crate::common::{Reply, TestGateway};

async fn post(gw: &TestGateway, body: &Value) -> Reply {
    gw.post_graphql(body).await
}

/// The first 300 characters of a reply (bombs make long error messages).
fn head(reply: &Reply) -> String {
    reply.text().chars().take(300).collect()
}

#[track_caller]
fn assert_refused(reply: &Reply, code: &str) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", head(reply));
    let json = reply.json();
    assert_eq!(
        json["errors"][0]["extensions"]["code"],
        code,
        "{}",
        head(reply)
    );
}

/// `{ order(id: "1") { a { a { … } } } }`, `depth` levels of `a`.
fn nested(depth: usize) -> String {
    format!(
        "{{ order(id: \"1\") {{ {}__typename{} }} }}",
        "a { ".repeat(depth),
        " }".repeat(depth)
    )
}

/// Size and token limits lifted out of the way of the others.
const ROOMY: &str = "graphql: { introspection: false, batching: { max: 10 }, limits: { max_query_bytes: 4MiB, max_query_tokens: 1000000 } }";

#[tokio::test]
async fn each_bomb_meets_its_own_limit_before_any_upstream_call() {
    let gw = TestGateway::demo_with(
        ", max_request_body: 8MiB",
        // Admission control off: each bomb costs a debug build tens of
        // milliseconds of its worker, which on a busy machine can make the
        // next request wait past the shedding target and get a 503 instead
        // of the refusal this test is about (seen in CI).
        &format!(
            "{ROOMY}\nlimits: {{ max_request_body: 8MiB, load_shedding: {{ enabled: false }} }}"
        ),
    )
    .await;
    let aliases: String = (0..10_000).map(|i| format!("a{i}: __typename ")).collect();
    let cases = [
        (json!({ "query": nested(20) }), "QUERY_TOO_DEEP"),
        // Past the parser's own recursion limit (about 30).
        (json!({ "query": nested(100) }), "GRAPHQL_PARSE_FAILED"),
        (
            json!({ "query": format!("{{ {aliases} }}") }),
            "TOO_MANY_ALIASES",
        ),
        (
            json!({ "query": "{ __schema { types { name } } }" }),
            "INTROSPECTION_DISABLED",
        ),
    ];
    for (body, code) in &cases {
        assert_refused(&post(&gw, body).await, code);
    }
    // A fragment cycle is refused by the executor's validation (its errors
    // carry no code).
    let cycle =
        json!({ "query": "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }" });
    let reply = post(&gw, &cycle).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", head(&reply));
    assert!(reply.json()["data"].is_null(), "{}", head(&reply));
    assert!(reply.text().contains("recursion depth"), "{}", head(&reply));
    // 10 000 deep stops the parser at its stack limit, and the error does
    // not quote the query back.
    let reply = post(&gw, &json!({ "query": nested(10_000) })).await;
    assert_refused(&reply, "GRAPHQL_PARSE_FAILED");
    assert!(reply.body.len() < 1024, "{}", head(&reply));
    let batch: Vec<Value> = (0..1_000)
        .map(|_| json!({ "query": "{ __typename }" }))
        .collect();
    assert_refused(&post(&gw, &Value::Array(batch)).await, "BATCH_TOO_LARGE");
    assert_eq!(gw.upstream_calls(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_one_megabyte_query_is_refused_on_its_size_by_default() {
    let gw = TestGateway::demo_with("", "graphql: {}").await;
    let query = format!("{{ __typename }} #{}", "x".repeat(1024 * 1024));
    assert_refused(
        &post(&gw, &json!({ "query": query })).await,
        "QUERY_TOO_LARGE",
    );
    assert_eq!(gw.upstream_calls(), 0);
    gw.stop().await;
}
