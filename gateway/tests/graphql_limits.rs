//! `graphql.limits`, `graphql.introspection` and `graphql.batching` end to
//! end: each limit just under and just over, refused before any upstream
//! call (the demo services count their calls).

mod common;

use common::{Reply, TestGateway};
use http::StatusCode;
use serde_json::{Value, json};

/// GraphiQL's introspection query, exactly as the GraphiQL bundled in the
/// gateway sends it (graphql-js `getIntrospectionQuery()` with GraphiQL's
/// options: 9 levels of `ofType`).
const GRAPHIQL_INTROSPECTION: &str = r#"
    query IntrospectionQuery {
      __schema {
        
        queryType { name }
        mutationType { name }
        subscriptionType { name }
        types {
          ...FullType
        }
        directives {
          name
          description
          
          locations
          args {
            ...InputValue
          }
        }
      }
    }

    fragment FullType on __Type {
      kind
      name
      description
      
      
      fields(includeDeprecated: true) {
        name
        description
        args {
          ...InputValue
        }
        type {
          ...TypeRef
        }
        isDeprecated
        deprecationReason
      }
      inputFields {
        ...InputValue
      }
      interfaces {
        ...TypeRef
      }
      enumValues(includeDeprecated: true) {
        name
        description
        isDeprecated
        deprecationReason
      }
      possibleTypes {
        ...TypeRef
      }
    }

    fragment InputValue on __InputValue {
      name
      description
      type { ...TypeRef }
      defaultValue
      
      
    }

    fragment TypeRef on __Type {
      kind
      name
      ofType {
        kind
        name
        ofType {
          kind
          name
          ofType {
            kind
            name
            ofType {
              kind
              name
              ofType {
                kind
                name
                ofType {
                  kind
                  name
                  ofType {
                    kind
                    name
                    ofType {
                      kind
                      name
                      ofType {
                        kind
                        name
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  "#;

async fn gateway(graphql: &str) -> TestGateway {
    TestGateway::demo_with("", &format!("graphql: {graphql}")).await
}

async fn post(gw: &TestGateway, body: Value) -> Reply {
    gw.post_graphql(&body).await
}

async fn query(gw: &TestGateway, text: &str) -> Reply {
    post(gw, json!({ "query": text })).await
}

/// A 400 with one error carrying `code` and a message containing `message`.
#[track_caller]
fn assert_refused(reply: &Reply, code: &str, message: &str) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    let json = reply.json();
    assert!(json.get("data").is_none(), "{json}");
    let error = &json["errors"][0];
    assert_eq!(error["extensions"]["code"], code, "{json}");
    let text = error["message"].as_str().unwrap_or_default();
    assert!(text.contains(message), "{message:?} not in {json}");
}

#[track_caller]
fn assert_ok(reply: &Reply) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let json = reply.json();
    assert!(json.get("errors").is_none(), "{json}");
    json
}

#[tokio::test]
async fn query_size_in_bytes_is_checked_before_parsing() {
    let gw = gateway("{ limits: { max_query_bytes: 100 } }").await;
    let base = r#"{ order(id: "1") { id } }"#;
    let fits = format!("{base}{}", " ".repeat(100 - base.len()));
    assert_eq!(fits.len(), 100);
    assert_ok(&query(&gw, &fits).await);

    let before = gw.upstream_calls();
    let over = format!("{fits} ");
    assert_refused(
        &query(&gw, &over).await,
        "QUERY_TOO_LARGE",
        "query size 101 bytes exceeds limits.max_query_bytes (100)",
    );
    // Not even parsed: text that is not GraphQL at all gets the same answer.
    let garbage = "}".repeat(101);
    assert_refused(
        &query(&gw, &garbage).await,
        "QUERY_TOO_LARGE",
        "max_query_bytes",
    );
    assert_eq!(gw.upstream_calls(), before, "no upstream call");

    // With application/json the refusal is a 200 carrying the error.
    let reply = gw
        .post_json("/graphql", &json!({ "query": over }).to_string())
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(
        reply.json()["errors"][0]["extensions"]["code"],
        "QUERY_TOO_LARGE"
    );
    gw.stop().await;
}

#[tokio::test]
async fn query_tokens_are_counted_before_parsing() {
    let gw = gateway("{ limits: { max_query_tokens: 12 } }").await;
    // { order ( id : "1" ) { id } } is 11 tokens; comments and commas are none.
    let fits = "{ order(id: \"1\") { id, __typename } } # a comment { { {";
    assert_ok(&query(&gw, fits).await);
    let before = gw.upstream_calls();
    assert_refused(
        &query(&gw, "{ order(id: \"1\") { id __typename __typename } }").await,
        "QUERY_TOO_LARGE",
        "limits.max_query_tokens (12)",
    );
    assert_eq!(gw.upstream_calls(), before, "no upstream call");
    gw.stop().await;
}

#[tokio::test]
async fn depth_counts_expanded_fragments() {
    let gw = gateway("{ limits: { max_depth: 3 } }").await;
    assert_ok(&query(&gw, "{ orders { orders { id } } }").await);
    assert_ok(
        &query(
            &gw,
            "{ orders { ...Page } } fragment Page on ListOrdersResponse { orders { id } }",
        )
        .await,
    );
    let before = gw.upstream_calls();
    assert_refused(
        &query(&gw, "{ orders { orders { items { sku } } } }").await,
        "QUERY_TOO_DEEP",
        "query depth 4 exceeds limits.max_depth (3)",
    );
    assert_refused(
        &query(
            &gw,
            "{ orders { ...Page } } fragment Page on ListOrdersResponse { orders { ... on Order { items { sku } } } }",
        )
        .await,
        "QUERY_TOO_DEEP",
        "query depth 4 exceeds limits.max_depth (3)",
    );
    assert_eq!(gw.upstream_calls(), before, "no upstream call");
    gw.stop().await;
}

#[tokio::test]
async fn aliases_are_limited() {
    let gw = gateway("{ limits: { max_aliases: 2 } }").await;
    assert_ok(
        &query(
            &gw,
            r#"{ a: order(id: "1") { id } b: order(id: "2") { id } }"#,
        )
        .await,
    );
    let before = gw.upstream_calls();
    assert_refused(
        &query(
            &gw,
            r#"{ a: order(id: "1") { id } b: order(id: "2") { id } c: order(id: "3") { id } }"#,
        )
        .await,
        "TOO_MANY_ALIASES",
        "alias count 3 exceeds limits.max_aliases (2)",
    );
    // A fragment with an alias, spread twice, is two aliases (and one more).
    assert_refused(
        &query(
            &gw,
            r#"{ a: order(id: "1") { ...F } b: order(id: "2") { ...F } } fragment F on Order { i: id }"#,
        )
        .await,
        "TOO_MANY_ALIASES",
        "alias count 4 exceeds limits.max_aliases (2)",
    );
    assert_eq!(gw.upstream_calls(), before, "no upstream call");
    gw.stop().await;
}

#[tokio::test]
async fn root_fields_are_limited() {
    let gw = gateway("{ limits: { max_root_fields: 2 } }").await;
    assert_ok(
        &query(
            &gw,
            r#"{ __typename order(id: "1") { id } user(id: "1") { id } }"#,
        )
        .await,
    );
    let before = gw.upstream_calls();
    assert_refused(
        &query(
            &gw,
            r#"{ order(id: "1") { id } user(id: "1") { id } stock(sku: "A-1") { sku } }"#,
        )
        .await,
        "TOO_MANY_ROOT_FIELDS",
        "root field count 3 exceeds limits.max_root_fields (2)",
    );
    assert_refused(
        &query(
            &gw,
            r#"{ ...Two stock(sku: "A-1") { sku } } fragment Two on Query { order(id: "1") { id } user(id: "1") { id } }"#,
        )
        .await,
        "TOO_MANY_ROOT_FIELDS",
        "root field count 3",
    );
    assert_eq!(gw.upstream_calls(), before, "no upstream call");
    gw.stop().await;
}

#[tokio::test]
async fn complexity_multiplies_lists_by_their_page_size() {
    let gw = gateway("{ limits: { max_complexity: 62 } }").await;
    // orders 1 + (orders list 1 + 5 × (id 1 + items 1 + 10 × sku 1)) = 62
    let page =
        |n: &str| format!("{{ orders(pageSize: {n}) {{ orders {{ id items {{ sku }} }} }} }}");
    assert_ok(&query(&gw, &page("5")).await);
    let before = gw.upstream_calls();
    assert_refused(
        &query(&gw, &page("6")).await,
        "QUERY_TOO_COMPLEX",
        "query complexity 74 exceeds limits.max_complexity (62)",
    );
    // The size from a variable; without a size, `default_list_size` (10).
    let reply = post(
        &gw,
        json!({
            "query": "query P($n: Int) { orders(pageSize: $n) { orders { id items { sku } } } }",
            "variables": {"n": 6},
        }),
    )
    .await;
    assert_refused(&reply, "QUERY_TOO_COMPLEX", "query complexity 74");
    assert_refused(
        &query(&gw, "{ orders { orders { id items { sku } } } }").await,
        "QUERY_TOO_COMPLEX",
        "query complexity 122",
    );
    assert_eq!(gw.upstream_calls(), before, "no upstream call");
    gw.stop().await;
}

#[tokio::test]
async fn a_cached_document_is_checked_again_with_each_requests_variables() {
    let gw = gateway("{ limits: { max_complexity: 62 } }").await;
    let send = |n: u32| {
        post(
            &gw,
            json!({
                "query": "query P($n: Int) { orders(pageSize: $n) { orders { id items { sku } } } }",
                "variables": {"n": n},
            }),
        )
    };
    // The first answer caches the parsed document; the same text with a
    // larger page size is still refused, and a small one still answers.
    assert_ok(&send(5).await);
    assert_refused(&send(6).await, "QUERY_TOO_COMPLEX", "query complexity 74");
    assert_ok(&send(4).await);
    gw.stop().await;
}

#[tokio::test]
async fn per_field_costs_come_from_the_config() {
    let gw = gateway(r#"{ limits: { max_complexity: 52, costs: { "Query.order": 50 } } }"#).await;
    assert_ok(&query(&gw, r#"{ order(id: "1") { id status } }"#).await);
    let before = gw.upstream_calls();
    assert_refused(
        &query(&gw, r#"{ order(id: "1") { id status totalCents } }"#).await,
        "QUERY_TOO_COMPLEX",
        "query complexity 53 exceeds limits.max_complexity (52)",
    );
    assert_eq!(gw.upstream_calls(), before, "no upstream call");
    gw.stop().await;
}

#[tokio::test]
async fn a_cost_for_an_unknown_field_is_a_config_error() {
    let demo = common::spawn_demo().await;
    let yaml = common::demo_config(
        &demo,
        "",
        r#"graphql: { limits: { costs: { "Query.nope": 5 } } }"#,
    );
    let error = common::config_error(&yaml).await;
    assert!(error.contains("graphql.limits.costs"), "{error}");
    assert!(error.contains("`Query.nope` is not a field"), "{error}");
}

#[tokio::test]
async fn graphiql_introspection_passes_the_default_limits() {
    let gw = gateway("{}").await;
    let json = assert_ok(&query(&gw, GRAPHIQL_INTROSPECTION).await);
    let types = json["data"]["__schema"]["types"].as_array().expect("types");
    assert!(types.iter().any(|t| t["name"] == "Order"), "{json}");
    // Without subscriptionType, as GraphiQL retries.
    let sans = GRAPHIQL_INTROSPECTION.replace("subscriptionType { name }", "");
    assert_ok(&query(&gw, &sans).await);
    gw.stop().await;
}

#[tokio::test]
async fn introspection_nesting_lists_is_bounded() {
    let gw = gateway("{ limits: { max_introspection_depth: 3 } }").await;
    assert_ok(&query(&gw, "{ __schema { types { fields { args { name } } } } }").await);
    assert_refused(
        &query(
            &gw,
            "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }",
        )
        .await,
        "QUERY_TOO_DEEP",
        "introspection depth (nested list fields) 4 exceeds limits.max_introspection_depth (3)",
    );
    gw.stop().await;
}

#[tokio::test]
async fn introspection_can_be_turned_off() {
    let gw = gateway("{ introspection: false }").await;
    for text in [
        "{ __schema { queryType { name } } }",
        r#"{ __type(name: "Order") { name } }"#,
        r#"{ order(id: "1") { id } t: __type(name: "Order") { name } }"#,
        "{ ...F } fragment F on Query { __schema { types { name } } }",
        GRAPHIQL_INTROSPECTION,
    ] {
        let before = gw.upstream_calls();
        assert_refused(
            &query(&gw, text).await,
            "INTROSPECTION_DISABLED",
            "graphql.introspection: false",
        );
        assert_eq!(gw.upstream_calls(), before, "no upstream call: {text}");
    }
    // `__typename` stays allowed.
    let json = assert_ok(&query(&gw, r#"{ __typename order(id: "1") { __typename id } }"#).await);
    assert_eq!(json["data"]["order"]["__typename"], "Order");
    assert_eq!(json["data"]["__typename"], "Query");
    gw.stop().await;
}

#[tokio::test]
async fn batching_is_off_by_default() {
    let gw = gateway("{}").await;
    let batch = json!([{"query": r#"{ order(id: "1") { id } }"#}]);
    let before = gw.upstream_calls();
    let reply = post(&gw, batch.clone()).await;
    assert_refused(&reply, "BATCHING_DISABLED", "graphql.batching is off");
    let reply = gw.post_json("/graphql", &batch.to_string()).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "a 400 with application/json too"
    );
    assert_eq!(gw.upstream_calls(), before, "no upstream call");
    gw.stop().await;
}

#[tokio::test]
async fn batches_run_up_to_the_maximum() {
    let gw = gateway("{ batching: { max: 2 }, limits: { max_depth: 2 } }").await;
    let reply = post(
        &gw,
        json!([
            {"query": r#"{ order(id: "1") { id } }"#},
            {"query": "query U($id: String) { user(id: $id) { name } }", "variables": {"id": "1"}},
        ]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json[0]["data"]["order"]["id"], "1", "{json}");
    assert_eq!(json[1]["data"]["user"]["name"], "Ada Lovelace", "{json}");

    // Each operation meets the limits on its own.
    let before = gw.upstream_calls();
    let reply = post(
        &gw,
        json!([
            {"query": "{ orders { orders { items { sku } } } }"},
            {"query": r#"{ order(id: "1") { id } }"#},
        ]),
    )
    .await;
    let json = reply.json();
    assert_eq!(
        json[0]["errors"][0]["extensions"]["code"], "QUERY_TOO_DEEP",
        "{json}"
    );
    assert_eq!(json[1]["data"]["order"]["id"], "1", "{json}");
    assert_eq!(gw.upstream_calls(), before + 1, "only the second ran");

    let before = gw.upstream_calls();
    let one = json!({"query": r#"{ order(id: "1") { id } }"#});
    let reply = post(&gw, json!([one, one, one])).await;
    assert_refused(
        &reply,
        "BATCH_TOO_LARGE",
        "batch of 3 operations exceeds graphql.batching.max (2)",
    );
    assert_eq!(gw.upstream_calls(), before, "no upstream call");
    gw.stop().await;
}
