//! Route guards: a route's own plugins run before each call the GraphQL
//! endpoint makes on that route (root fields, joins, subscriptions), and a
//! refusal is that field's error while the other fields still answer.

mod common;

use common::TestGateway;
use http::Method;
use serde_json::{Value, json};
use switchyard_demo::Service;

/// sha256("demo-key-123").
const DEMO_KEY_SHA: &str = "a52782e3a2d4dd2f95f640b9abfb3b2a6b8e722c65f55be830f6e5f619f7f873";

const USER_JOIN: &str = "joins: [{ on: demo.orders.v1.Order, field: user, key: user_id, batch: { method: demo.users.v1.UserService.BatchGetUsers, argument: ids, results: users, match: id } }]";

/// The demo routes with `plugins` on the users route only.
async fn gateway(users_plugins: &str) -> TestGateway {
    let demo = common::spawn_demo().await;
    let yaml = common::demo_config(&demo, "", &format!("graphql: {{ {USER_JOIN} }}")).replace(
        "upstream: users ",
        &format!("upstream: users, plugins: [{users_plugins}] "),
    );
    TestGateway::start_yaml(demo, &yaml).await
}

async fn query(gw: &TestGateway, query: &str, headers: &[(&str, &str)]) -> Value {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    gw.send(
        Method::POST,
        "/graphql",
        &all,
        json!({ "query": query }).to_string().into(),
    )
    .await
    .json()
}

fn api_key() -> String {
    format!(
        "{{ auth: {{ methods: [ {{ api_key: {{ header: x-api-key, keys: [ {{ consumer: web, sha256: {DEMO_KEY_SHA} }} ] }} }} ] }} }}"
    )
}

#[tokio::test]
async fn a_routes_own_auth_guards_its_fields_and_joins_while_other_fields_answer() {
    let gw = gateway(&api_key()).await;
    let json = query(
        &gw,
        r#"{ order(id: "1") { id user { name } } user(id: "2") { name } }"#,
        &[],
    )
    .await;
    // The orders route has no guard: the order answers.
    assert_eq!(json["data"]["order"]["id"], "1", "{json}");
    // The users route refuses both the join and the root field.
    assert_eq!(json["data"]["order"]["user"], Value::Null, "{json}");
    assert_eq!(json["data"]["user"], Value::Null, "{json}");
    let errors = json["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "{json}");
    for error in errors {
        assert_eq!(error["extensions"]["code"], "UNAUTHENTICATED", "{json}");
    }
    assert_eq!(gw.demo.calls(Service::Users), 0, "no call passed the guard");
    // With the key, the same query answers in full.
    let json = query(
        &gw,
        r#"{ order(id: "1") { id user { name } } user(id: "2") { name } }"#,
        &[("x-api-key", "demo-key-123")],
    )
    .await;
    assert!(json.get("errors").is_none(), "{json}");
    assert_eq!(json["data"]["order"]["user"]["name"], "Ada Lovelace");
    assert_eq!(json["data"]["user"]["name"], "Grace Hopper");
}

#[tokio::test]
async fn a_routes_own_rate_limit_counts_each_call_graphql_makes_on_it() {
    let gw = gateway("{ rate_limit: { rate: 2/min, key: [client_ip] } }").await;
    let mut codes = Vec::new();
    for _ in 0..3 {
        let json = query(&gw, r#"{ user(id: "1") { name } }"#, &[]).await;
        codes.push(
            json["errors"][0]["extensions"]["code"]
                .as_str()
                .unwrap_or("OK")
                .to_owned(),
        );
    }
    assert_eq!(codes, ["OK", "OK", "RESOURCE_EXHAUSTED"]);
    // Other routes are not limited by it.
    let json = query(&gw, r#"{ order(id: "1") { id } }"#, &[]).await;
    assert_eq!(json["data"]["order"]["id"], "1", "{json}");
    let metrics = gw.admin_get("/metrics").await.text();
    assert!(
        metrics.contains(r#"switchyard_rate_limit_decisions_total{decision="limited",policy="default",route="users"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_idempotency_plugin_on_the_route_is_not_part_of_its_guard() {
    // An Idempotency-Key belongs to one HTTP request, not to the calls a
    // GraphQL query makes: the same key on two queries must not replay or
    // refuse them.
    let gw = gateway("{ idempotency: { store: { local: {} }, methods: [POST] } }").await;
    for _ in 0..2 {
        let json = query(
            &gw,
            r#"{ user(id: "2") { name } }"#,
            &[("idempotency-key", "same-key-1")],
        )
        .await;
        assert!(json.get("errors").is_none(), "{json}");
        assert!(json["data"]["user"]["name"].is_string(), "{json}");
    }
}
