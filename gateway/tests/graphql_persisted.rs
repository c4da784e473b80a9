//! `graphql.persisted_queries` end to end: Automatic Persisted Queries
//! (Apollo's sha256 protocol) and the safelist mode, with the demo services
//! counting upstream calls to prove refusals happen before any call.

mod common;

use bytes::Bytes;
use common::{Reply, TestGateway};
use http::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchyard_demo::Service;

const ORDER: &str = r#"{ order(id: "1") { id } }"#;

async fn gateway(graphql: &str) -> TestGateway {
    TestGateway::demo_with("", &format!("graphql: {graphql}")).await
}

/// POST with `application/json` (what Apollo clients accept).
async fn post(gw: &TestGateway, body: Value) -> Reply {
    gw.post_json("/graphql", &body.to_string()).await
}

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn persisted(hash: &str) -> Value {
    json!({"persistedQuery": {"version": 1, "sha256Hash": hash}})
}

/// The code of the first error (a 200 with `application/json`).
#[track_caller]
fn code(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let json = reply.json();
    assert!(json.get("data").is_none(), "{json}");
    json["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code in {json}"))
        .to_owned()
}

fn orders(gw: &TestGateway) -> usize {
    gw.demo.calls(Service::Orders)
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn apq_round_trip() {
    let gw = gateway("{}").await; // apq is the default mode
    let hash = sha256(ORDER);
    let start = orders(&gw);

    // 1. The hash alone: not known yet.
    let reply = post(&gw, json!({"extensions": persisted(&hash)})).await;
    assert_eq!(code(&reply), "PERSISTED_QUERY_NOT_FOUND");
    assert_eq!(
        reply.json()["errors"][0]["message"],
        "PersistedQueryNotFound"
    );
    // With the new media type it is a 400.
    let reply = gw
        .send(
            Method::POST,
            "/graphql",
            &[("accept", "application/graphql-response+json")],
            Bytes::from(json!({"extensions": persisted(&hash)}).to_string()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    // 2. A wrong hash with the query: refused, not stored.
    let wrong = sha256("something else");
    let reply = post(
        &gw,
        json!({"query": ORDER, "extensions": persisted(&wrong)}),
    )
    .await;
    assert_eq!(code(&reply), "PERSISTED_QUERY_HASH_MISMATCH");
    let reply = post(&gw, json!({"extensions": persisted(&wrong)})).await;
    assert_eq!(code(&reply), "PERSISTED_QUERY_NOT_FOUND");
    assert_eq!(orders(&gw), start, "no upstream call so far");

    // 3. Hash and query: runs and is stored.
    let reply = post(&gw, json!({"query": ORDER, "extensions": persisted(&hash)})).await;
    assert_eq!(reply.json()["data"]["order"]["id"], "1", "{}", reply.text());
    assert_eq!(orders(&gw), start + 1);

    // 4. The hash alone now runs (upper-case hex too), over POST and GET.
    let reply = post(
        &gw,
        json!({"extensions": persisted(&hash.to_ascii_uppercase())}),
    )
    .await;
    assert_eq!(reply.json()["data"]["order"]["id"], "1", "{}", reply.text());
    let ext = percent(&persisted(&hash).to_string());
    let reply = gw.get(&format!("/graphql?extensions={ext}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["data"]["order"]["id"], "1", "{}", reply.text());
    assert_eq!(orders(&gw), start + 3);

    // 5. Registering over GET works too (queries only).
    let other = r#"{ order(id: "2") { id } }"#;
    let reply = gw
        .get(&format!(
            "/graphql?query={}&extensions={}",
            percent(other),
            percent(&persisted(&sha256(other)).to_string())
        ))
        .await;
    assert_eq!(reply.json()["data"]["order"]["id"], "2", "{}", reply.text());
    let reply = post(&gw, json!({"extensions": persisted(&sha256(other))})).await;
    assert_eq!(reply.json()["data"]["order"]["id"], "2", "{}", reply.text());

    // An unsupported version.
    let reply = post(
        &gw,
        json!({"extensions": {"persistedQuery": {"version": 2, "sha256Hash": hash}}}),
    )
    .await;
    assert_eq!(code(&reply), "PERSISTED_QUERY_NOT_SUPPORTED");
    gw.stop().await;
}

#[tokio::test]
async fn the_apq_cache_is_bounded_and_keeps_only_queries_within_the_limits() {
    let gw = gateway("{ persisted_queries: { max_entries: 1 }, limits: { max_depth: 2 } }").await;
    let (a, b) = (ORDER, r#"{ order(id: "2") { id } }"#);
    for q in [a, b] {
        let reply = post(
            &gw,
            json!({"query": q, "extensions": persisted(&sha256(q))}),
        )
        .await;
        assert!(
            reply.json()["data"]["order"].is_object(),
            "{}",
            reply.text()
        );
    }
    // `a` was dropped for `b`.
    let reply = post(&gw, json!({"extensions": persisted(&sha256(a))})).await;
    assert_eq!(code(&reply), "PERSISTED_QUERY_NOT_FOUND");
    let reply = post(&gw, json!({"extensions": persisted(&sha256(b))})).await;
    assert!(
        reply.json()["data"]["order"].is_object(),
        "{}",
        reply.text()
    );

    // A query over the limits is refused and not stored.
    let deep = "{ orders { orders { id } } }";
    let before = orders(&gw);
    let reply = post(
        &gw,
        json!({"query": deep, "extensions": persisted(&sha256(deep))}),
    )
    .await;
    assert_eq!(code(&reply), "QUERY_TOO_DEEP");
    let reply = post(&gw, json!({"extensions": persisted(&sha256(deep))})).await;
    assert_eq!(code(&reply), "PERSISTED_QUERY_NOT_FOUND");
    assert_eq!(orders(&gw), before, "no upstream call");
    gw.stop().await;
}

#[tokio::test]
async fn persisted_queries_can_be_off() {
    let gw = gateway("{ persisted_queries: { mode: off } }").await;
    let reply = post(
        &gw,
        json!({"query": ORDER, "extensions": persisted(&sha256(ORDER))}),
    )
    .await;
    assert_eq!(code(&reply), "PERSISTED_QUERY_NOT_SUPPORTED");
    assert_eq!(
        reply.json()["errors"][0]["message"],
        "PersistedQueryNotSupported"
    );
    let reply = post(&gw, json!({"query": ORDER})).await;
    assert_eq!(reply.json()["data"]["order"]["id"], "1");
    gw.stop().await;
}

const SAFELIST: &str =
    "{ persisted_queries: { mode: safelist, file: gateway/tests/graphql/safelist.json } }";

#[tokio::test]
async fn the_safelist_runs_registered_operations_by_hash_or_exact_text() {
    let gw = gateway(SAFELIST).await;
    let users = gw.demo.calls(Service::Users);
    // By sha256, by the file's own id, by exact text.
    let reply = post(&gw, json!({"extensions": persisted(&sha256(ORDER))})).await;
    assert_eq!(reply.json()["data"]["order"]["id"], "1", "{}", reply.text());
    let reply = post(&gw, json!({"extensions": persisted("ada-v1")})).await;
    assert_eq!(
        reply.json()["data"]["user"]["name"],
        "Ada Lovelace",
        "{}",
        reply.text()
    );
    let reply = post(&gw, json!({"query": ORDER})).await;
    assert_eq!(reply.json()["data"]["order"]["id"], "1", "{}", reply.text());
    let reply = post(
        &gw,
        json!({"query": "query Ada { user(id: \"1\") { name } }", "operationName": "Ada"}),
    )
    .await;
    assert_eq!(
        reply.json()["data"]["user"]["name"],
        "Ada Lovelace",
        "{}",
        reply.text()
    );
    assert_eq!(gw.demo.calls(Service::Users), users + 2);
    gw.stop().await;
}

#[tokio::test]
async fn the_safelist_refuses_anything_else_before_any_call() {
    let gw = gateway(SAFELIST).await;
    let before = orders(&gw) + gw.demo.calls(Service::Users);
    let other = r#"{ order(id: "2") { id } }"#;
    for body in [
        json!({"query": other}),
        // Not the exact text: one more space.
        json!({"query": r#"{ order(id: "1")  { id } }"#}),
        json!({"extensions": persisted(&sha256(other))}),
        // A registered hash with another query: the text decides.
        json!({"query": other, "extensions": persisted(&sha256(ORDER))}),
        json!({"query": "{ __schema { queryType { name } } }"}),
    ] {
        let reply = post(&gw, body.clone()).await;
        assert_eq!(code(&reply), "PERSISTED_QUERY_NOT_IN_SAFELIST", "{body}");
    }
    assert_eq!(orders(&gw) + gw.demo.calls(Service::Users), before);
    gw.stop().await;
}

#[tokio::test]
async fn a_missing_safelist_file_is_a_config_error() {
    let demo = common::spawn_demo().await;
    for (graphql, expected) in [
        (
            "{ persisted_queries: { mode: safelist, file: nope.json } }",
            "cannot read",
        ),
        (
            "{ persisted_queries: { mode: safelist } }",
            "needs a `file`",
        ),
    ] {
        let yaml = common::demo_config(&demo, "", &format!("graphql: {graphql}"));
        let error = common::config_error(&yaml).await;
        assert!(error.contains("graphql.persisted_queries.file"), "{error}");
        assert!(error.contains(expected), "{error}");
    }
}
