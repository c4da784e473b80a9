//! Joins across services through the real gateway and the demo services:
//! the issue's aggregated query, batching proven by counting upstream calls,
//! partial failure, and join config errors.

mod common;

use common::TestGateway;
use http::StatusCode;
use serde_json::json;
use switchyard_demo::Service;

/// The demo's joins (as in config/gateway.yaml), `user` batched or not.
fn joins(user_batched: bool) -> String {
    let user = if user_batched {
        "batch: { method: demo.users.v1.UserService.BatchGetUsers, argument: ids, results: users, match: id }"
    } else {
        "call: { method: demo.users.v1.UserService.GetUser, argument: id }"
    };
    format!(
        r#"
graphql:
  joins:
    - {{ on: demo.orders.v1.Order, field: user, key: user_id, {user} }}
    - {{ on: demo.orders.v1.LineItem, field: stock, key: sku,
         call: {{ method: demo.inventory.v1.InventoryService.GetStock, argument: sku }} }}
"#
    )
}

async fn query(gw: &TestGateway, query: &str) -> serde_json::Value {
    let reply = gw
        .post_json("/graphql", &json!({ "query": query }).to_string())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()
}

#[tokio::test]
async fn one_query_joins_an_order_with_its_user_and_each_items_stock() {
    let gw = TestGateway::demo_with("", &joins(true)).await;
    let json = query(
        &gw,
        r#"{ order(id: "1") { id totalCents items { sku qty stock { available } } user { id name } } }"#,
    )
    .await;
    assert!(json.get("errors").is_none(), "{json}");
    assert_eq!(
        json["data"]["order"],
        json!({
            "id": "1",
            "totalCents": "7499",
            "items": [
                { "sku": "A-1", "qty": 2, "stock": { "available": 100 } },
                { "sku": "B-2", "qty": 1, "stock": { "available": 5 } },
            ],
            "user": { "id": "1", "name": "Ada Lovelace" },
        })
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_users_of_n_orders_are_one_batch_call_and_repeated_keys_one_call_each() {
    let gw = TestGateway::demo_with("", &joins(true)).await;
    let (users, inventory) = (
        gw.demo.calls(Service::Users),
        gw.demo.calls(Service::Inventory),
    );
    let json = query(
        &gw,
        "{ orders(pageSize: 10) { orders { id userId user { id name } items { sku stock { sku available } } } } }",
    )
    .await;
    assert!(json.get("errors").is_none(), "{json}");
    let orders = json["data"]["orders"]["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 10);
    let mut skus = std::collections::BTreeSet::new();
    for order in orders {
        assert_eq!(order["user"]["id"], order["userId"], "{order}");
        for item in order["items"].as_array().unwrap() {
            assert_eq!(item["stock"]["sku"], item["sku"], "{item}");
            skus.insert(item["sku"].as_str().unwrap().to_owned());
        }
    }
    // 10 orders of 4 users: one BatchGetUsers call, not 10 GetUser calls.
    assert_eq!(gw.demo.calls(Service::Users) - users, 1);
    // One GetStock per distinct SKU, however many items share it.
    assert_eq!(gw.demo.calls(Service::Inventory) - inventory, skus.len());
    assert!(skus.len() < orders.len() + 5, "some SKUs repeat: {skus:?}");
    gw.stop().await;
}

#[tokio::test]
async fn unbatched_joins_deduplicate_keys_within_the_request() {
    let gw = TestGateway::demo_with("", &joins(false)).await;
    let before = gw.demo.calls(Service::Users);
    let json = query(&gw, "{ orders(pageSize: 10) { orders { user { name } } } }").await;
    assert!(json.get("errors").is_none(), "{json}");
    // 10 orders, 4 distinct users: 4 GetUser calls, issued concurrently.
    assert_eq!(gw.demo.calls(Service::Users) - before, 4);
    gw.stop().await;
}

#[tokio::test]
async fn a_failing_join_nulls_only_its_field_with_an_error_and_its_path() {
    let mut gw = TestGateway::demo_with("", &joins(true)).await;
    gw.demo.stop(Service::Inventory).await;
    let json = query(
        &gw,
        r#"{ order(id: "1") { id user { name } items { sku stock { available } } } }"#,
    )
    .await;
    let order = &json["data"]["order"];
    assert_eq!(order["user"]["name"], "Ada Lovelace", "{json}");
    assert_eq!(order["items"][0]["sku"], "A-1");
    assert!(order["items"][0]["stock"].is_null(), "{json}");
    let errors = json["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "one per item: {json}");
    assert_eq!(errors[0]["extensions"]["code"], "UNAVAILABLE", "{json}");
    assert_eq!(errors[0]["path"], json!(["order", "items", 0, "stock"]));
    gw.stop().await;
}

#[tokio::test]
async fn join_config_errors_name_the_join_and_what_is_wrong() {
    for (join, says) in [
        (
            "{ on: demo.orders.v1.Order, field: user, key: owner, call: { method: demo.users.v1.UserService.GetUser, argument: id } }",
            "demo.orders.v1.Order has no field `owner`",
        ),
        (
            "{ on: demo.orders.v1.Order, field: userId, key: user_id, call: { method: demo.users.v1.UserService.GetUser, argument: id } }",
            "already a field of demo.orders.v1.Order",
        ),
        (
            "{ on: demo.orders.v1.Order, field: user, key: user_id, call: { method: demo.users.v1.UserService.GetUsr, argument: id } }",
            "no method `demo.users.v1.UserService.GetUsr`",
        ),
        (
            "{ on: demo.orders.v1.Order, field: user, key: user_id, batch: { method: demo.users.v1.UserService.BatchGetUsers, argument: ids, results: people, match: id } }",
            "no repeated message field `people`",
        ),
        (
            "{ on: demo.orders.v1.Order, field: user, key: user_id }",
            "a join needs `call` or `batch`",
        ),
    ] {
        let demo = common::spawn_demo().await;
        let yaml = format!(
            "{}\ngraphql: {{ joins: [ {join} ] }}\n",
            common::demo_config(&demo, "", "")
        );
        let text = common::config_error(&yaml).await;
        assert!(text.contains(says), "{says}: {text}");
        assert!(text.contains("joins[0]"), "{text}");
    }
}

#[tokio::test]
async fn the_read_mask_names_the_selected_fields_unless_the_query_sets_it() {
    let gw = TestGateway::demo_with("", "graphql: {}").await;
    let json = query(&gw, r#"{ user(id: "1") { name createTime __typename } }"#).await;
    assert_eq!(json["data"]["user"]["name"], "Ada Lovelace", "{json}");
    assert_eq!(gw.demo.last_read_mask(), ["create_time", "name"]);
    // An explicit mask wins, and the upstream honours it.
    let json = query(
        &gw,
        r#"{ user(id: "1", readMask: ["email"]) { name email } }"#,
    )
    .await;
    assert_eq!(gw.demo.last_read_mask(), ["email"]);
    assert_eq!(json["data"]["user"]["name"], "", "{json}");
    assert!(
        json["data"]["user"]["email"]
            .as_str()
            .unwrap()
            .contains('@')
    );
    // Turned off: no mask.
    let off = TestGateway::demo_with("", "graphql: { field_masks: [] }").await;
    query(&off, r#"{ user(id: "1") { name } }"#).await;
    assert!(off.demo.last_read_mask().is_empty());
    gw.stop().await;
    off.stop().await;
}
