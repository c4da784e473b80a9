//! GraphQL over HTTP end to end: the real gateway with `graphql:` on, in
//! front of the real demo services.

mod common;

use bytes::Bytes;
use common::TestGateway;
use http::{Method, StatusCode};
use serde_json::json;

async fn gateway() -> TestGateway {
    TestGateway::demo_with("", "graphql: {}\nplugins: [{ request_id: {} }]").await
}

async fn post(gw: &TestGateway, body: serde_json::Value) -> common::Reply {
    gw.post_json("/graphql", &body.to_string()).await
}

#[tokio::test]
async fn a_query_returns_data_from_the_upstream() {
    let gw = gateway().await;
    let reply = post(
        &gw,
        json!({"query": r#"{ order(id: "1") { id totalCents status createTime items { sku qty unitPriceCents } } }"#}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.headers["content-type"], "application/json");
    assert!(
        reply.headers.contains_key("x-request-id"),
        "top-level plugins run"
    );
    let json = reply.json();
    assert!(json.get("errors").is_none(), "{json}");
    let order = &json["data"]["order"];
    assert_eq!(order["id"], "1");
    assert!(
        order["totalCents"].is_string(),
        "int64 as a string: {order}"
    );
    assert!(
        order["status"]
            .as_str()
            .unwrap()
            .starts_with("ORDER_STATUS_")
    );
    assert!(
        order["createTime"].as_str().unwrap().ends_with('Z'),
        "{order}"
    );
    assert_eq!(order["items"][0]["sku"], "A-1");
    assert_eq!(order["items"][0]["qty"], 2);
    gw.stop().await;
}

#[tokio::test]
async fn a_failed_call_is_a_field_error_and_the_other_fields_still_return() {
    let gw = gateway().await;
    let reply = post(
        &gw,
        json!({
            "query": r#"query Two($id: String) { missing: user(id: $id) { id } ada: user(id: "1") { name role } }"#,
            "variables": {"id": "999"},
        }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let json = reply.json();
    assert_eq!(json["data"]["ada"]["name"], "Ada Lovelace", "{json}");
    assert_eq!(json["data"]["ada"]["role"], "ROLE_ADMIN");
    assert_eq!(json["data"].get("missing"), Some(&json!(null)), "{json}");
    let error = &json["errors"][0];
    assert_eq!(error["path"], json!(["missing"]), "{json}");
    assert_eq!(error["extensions"]["code"], "NOT_FOUND", "{json}");
    assert!(error["message"].as_str().unwrap().contains("999"));
    let details = error["extensions"]["details"].as_array().expect("details");
    assert!(
        details.iter().any(|d| d["@type"]
            .as_str()
            .is_some_and(|t| t.ends_with("google.rpc.ErrorInfo"))),
        "{json}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn mutations_lists_and_get_requests() {
    let gw = gateway().await;
    let reply = post(
        &gw,
        json!({"query": r#"mutation { createOrder(userId: "2", items: [{sku: "A-1", qty: 3}]) { userId totalCents items { qty } } }"#}),
    )
    .await;
    let json = reply.json();
    assert_eq!(json["data"]["createOrder"]["userId"], "2", "{json}");
    assert_eq!(json["data"]["createOrder"]["items"][0]["qty"], 3);

    let reply = gw
        .get("/graphql?query=%7B%20batchGetUsers(ids%3A%5B%221%22%2C%223%22%5D)%20%7B%20users%20%7B%20id%20%7D%20%7D%20%7D")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json()["data"]["batchGetUsers"]["users"],
        json!([{"id": "1"}, {"id": "3"}])
    );

    // An anonymous mutation, and a named one that is the document's only
    // operation, without `operationName`.
    for query in [
        "mutation%20%7B%20cancelOrder(id%3A%222%22)%20%7B%20id%20%7D%20%7D",
        "mutation%20Cancel%20%7B%20cancelOrder(id%3A%222%22)%20%7B%20id%20%7D%20%7D",
    ] {
        let reply = gw.get(&format!("/graphql?query={query}")).await;
        assert_eq!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{query}: {}",
            reply.text()
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn malformed_requests_are_400_with_a_json_body() {
    let gw = gateway().await;
    for (body, expected) in [
        ("{not json", "not valid JSON"),
        (r#"{"variables": {}}"#, "`query` is required"),
        (r#"[{"query": "{ __typename }"}]"#, "batched"),
        (
            r#"{"query": "{ order(id: \"1\") { id } }", "variables": 3}"#,
            "`variables` must be an object",
        ),
    ] {
        let reply = gw.post_json("/graphql", body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        let json = reply.json();
        let message = json["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{body}: {json}");
    }
    let reply = gw
        .send(
            Method::POST,
            "/graphql",
            &[("content-type", "text/plain")],
            Bytes::from_static(b"{}"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    gw.stop().await;
}

#[tokio::test]
async fn graphql_response_media_type_and_validation_errors() {
    let gw = gateway().await;
    let accept = [
        ("content-type", "application/json"),
        ("accept", "application/graphql-response+json"),
    ];
    let reply = gw
        .send(
            Method::POST,
            "/graphql",
            &accept,
            Bytes::from(json!({"query": "{ order(id: \"1\") { nope } }"}).to_string()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert_eq!(
        reply.headers["content-type"],
        "application/graphql-response+json"
    );
    assert!(reply.json()["errors"][0]["message"].is_string());
    // With application/json the same request is a 200 carrying the errors.
    let reply = post(&gw, json!({"query": "{ order(id: \"1\") { nope } }"})).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.json()["errors"].is_array());
    gw.stop().await;
}

#[tokio::test]
async fn browsers_get_graphiql_with_its_assets_served_by_the_gateway() {
    let gw = gateway().await;
    let page = gw
        .send(
            Method::GET,
            "/graphql",
            &[("accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
            Bytes::new(),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text();
    assert!(!html.contains("https://"), "no CDN: {html}");
    // Every script and stylesheet the page names is served, gzip when accepted.
    let assets: Vec<&str> = html
        .split(['"'])
        .filter(|s| s.starts_with("/graphql/graphiql/"))
        .collect();
    assert_eq!(assets.len(), 5, "{html}");
    for asset in assets {
        let reply = gw
            .send(
                Method::GET,
                asset,
                &[("accept-encoding", "gzip")],
                Bytes::new(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{asset}");
        assert!(!reply.body.is_empty(), "{asset}");
    }
    let missing = gw.get("/graphql/graphiql/nope.js").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // A GET with a query is GraphQL, whatever the Accept header.
    let query = gw
        .send(
            Method::GET,
            "/graphql?query=%7B__typename%7D",
            &[("accept", "text/html, application/json")],
            Bytes::new(),
        )
        .await;
    assert_eq!(query.json()["data"]["__typename"], "Query");
    gw.stop().await;
}

#[tokio::test]
async fn graphiql_can_be_turned_off() {
    let gw = TestGateway::demo_with("", "graphql: { graphiql: false }").await;
    let reply = gw
        .send(
            Method::GET,
            "/graphql",
            &[("accept", "text/html")],
            Bytes::new(),
        )
        .await;
    assert_ne!(reply.status, StatusCode::OK);
    assert!(!reply.text().contains("<html"));
    let asset = gw.get("/graphql/graphiql/init.js").await;
    assert_eq!(asset.status, StatusCode::NOT_FOUND);
    gw.stop().await;
}

#[tokio::test]
async fn response_fields_come_in_the_order_of_the_selection() {
    let gw = gateway().await;
    let reply = post(
        &gw,
        json!({"query": r#"{ order(id: "1") { totalCents items { sku qty } id } }"#}),
    )
    .await;
    assert_eq!(
        reply.text(),
        r#"{"data":{"order":{"totalCents":"7499","items":[{"sku":"A-1","qty":2},{"sku":"B-2","qty":1}],"id":"1"}}}"#
    );
    gw.stop().await;
}

#[tokio::test]
async fn operations_are_counted_by_name_type_and_outcome_with_their_cost() {
    let gw = TestGateway::demo_with("", "graphql: { limits: { max_depth: 3 } }").await;
    let named = json!({"query": r#"query OrderOne { order(id: "1") { id } }"#});
    assert_eq!(post(&gw, named).await.status, StatusCode::OK);
    let failed = json!({"query": r#"query Missing { order(id: "999") { id } }"#});
    assert_eq!(post(&gw, failed).await.status, StatusCode::OK);
    let deep = json!({"query": r#"query Deep { order(id: "1") { user { orders { items { sku } } } } }"#, "operationName": "Deep"});
    post(&gw, deep).await;
    let anonymous = json!({"query": r#"{ order(id: "1") { id } }"#});
    post(&gw, anonymous).await;
    let count = |line: &'static str| {
        let gw = &gw;
        async move { gw.metric(line).await }
    };
    let ops = "switchyard_graphql_operations_total";
    assert_eq!(
        count(
            r#"switchyard_graphql_operations_total{operation="OrderOne",outcome="ok",type="query"}"#
        )
        .await,
        Some(1.0)
    );
    assert_eq!(
        count(r#"switchyard_graphql_operations_total{operation="Missing",outcome="errors",type="query"}"#).await,
        Some(1.0)
    );
    assert_eq!(
        count(
            r#"switchyard_graphql_operations_total{operation="Deep",outcome="refused",type="-"}"#
        )
        .await,
        Some(1.0),
        "{}",
        gw.admin_get("/metrics")
            .await
            .text()
            .lines()
            .filter(|l| l.starts_with(ops))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        count(r#"switchyard_graphql_operations_total{operation="-",outcome="ok",type="query"}"#)
            .await,
        Some(1.0)
    );
    // The three that were checked in full have a cost.
    assert_eq!(
        count("switchyard_graphql_query_cost_count").await,
        Some(3.0)
    );
    gw.stop().await;
}
