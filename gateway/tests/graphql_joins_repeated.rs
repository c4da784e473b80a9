//! Joins on a repeated key (`tags` → one joined item per tag), against a
//! scripted upstream for gateway/tests/protos/graphql/graphql_mapping.proto:
//! per-key calls and one batch for every key of every parent, de-duplicated,
//! in key order, no item where a key finds nothing.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::TestGateway;
use common::scripted::{self, Handler};
use prost_reflect::{DescriptorPool, DynamicMessage, Value as PValue};
use serde_json::{Value, json};

fn proto() -> std::path::PathBuf {
    common::repo_root().join("gateway/tests/protos/graphql/graphql_mapping.proto")
}

fn pool() -> DescriptorPool {
    scripted::pool(proto())
}

fn thing(pool: &DescriptorPool, id: &str, i64: i64, tags: &[&str]) -> DynamicMessage {
    let mut thing = DynamicMessage::new(
        pool.get_message_by_name("switchyard.test.graphql.Thing")
            .unwrap(),
    );
    thing.set_field_by_name("id", PValue::String(id.to_owned()));
    thing.set_field_by_name("i64", PValue::I64(i64));
    thing.set_field_by_name(
        "tags",
        PValue::List(
            tags.iter()
                .map(|t| PValue::String((*t).to_owned()))
                .collect(),
        ),
    );
    thing
}

/// `ListThings` lists two things tagged `1 2 1` and `2 3` (or, asked for
/// `ids`, the things with those `i64`s, 3 excepted); `GetThing(id)` answers
/// a thing `got-<id>`.
async fn upstream() -> scripted::Scripted {
    let pool = pool();
    let list_pool = pool.clone();
    let list: Handler = Arc::new(move |req: &DynamicMessage| {
        let response = list_pool
            .get_message_by_name("switchyard.test.graphql.ListThingsResponse")
            .unwrap();
        let ids: Vec<i64> = match req.get_field_by_name("ids").as_deref() {
            Some(PValue::List(ids)) => ids.iter().filter_map(PValue::as_i64).collect(),
            _ => Vec::new(),
        };
        let things: Vec<PValue> = if ids.is_empty() {
            vec![
                thing(&list_pool, "a", 0, &["1", "2", "1"]),
                thing(&list_pool, "b", 0, &["2", "3"]),
            ]
        } else {
            ids.iter()
                .filter(|id| **id != 3)
                .map(|id| thing(&list_pool, &format!("thing-{id}"), *id, &[]))
                .collect()
        }
        .into_iter()
        .map(PValue::Message)
        .collect();
        let mut reply = DynamicMessage::new(response);
        reply.set_field_by_name("things", PValue::List(things));
        reply
    });
    let get_pool = pool.clone();
    let get: Handler = Arc::new(move |req: &DynamicMessage| {
        let id = req.get_field_by_name("id").unwrap();
        thing(&get_pool, &format!("got-{}", id.as_str().unwrap()), 0, &[])
    });
    scripted::start(
        pool,
        HashMap::from([("ListThings", list), ("GetThing", get)]),
    )
    .await
}

async fn gateway(upstream: &scripted::Scripted) -> TestGateway {
    let yaml = format!(
        r#"
listeners: [{{ address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
protos: {{ sources: ["{proto}"] }}
upstreams: {{ up: {{ endpoints: ["http://{addr}"] }} }}
routes: [{{ service: switchyard.test.graphql.MappingService, upstream: up }}]
graphql:
  joins:
    - {{ on: switchyard.test.graphql.Thing, field: tagged, key: tags,
        call: {{ method: switchyard.test.graphql.MappingService.GetThing, argument: id }} }}
    - {{ on: switchyard.test.graphql.Thing, field: tagBatch, key: tags,
        batch: {{ method: switchyard.test.graphql.MappingService.ListThings, argument: ids,
                 results: things, match: i64 }} }}
"#,
        proto = proto().display(),
        addr = upstream.addr,
    );
    TestGateway::start_yaml(common::spawn_demo().await, &yaml).await
}

async fn query(gw: &TestGateway, query: &str) -> Value {
    gw.post_json("/graphql", &json!({ "query": query }).to_string())
        .await
        .json()
}

#[tokio::test]
async fn a_repeated_key_joins_one_item_per_key_with_one_call_per_distinct_key() {
    let upstream = upstream().await;
    let gw = gateway(&upstream).await;
    let json = query(&gw, "{ things { things { id tagged { id } } } }").await;
    assert!(json.get("errors").is_none(), "{json}");
    let things = &json["data"]["things"]["things"];
    assert_eq!(
        things[0]["tagged"],
        json!([{"id": "got-1"}, {"id": "got-2"}, {"id": "got-1"}])
    );
    assert_eq!(
        things[1]["tagged"],
        json!([{"id": "got-2"}, {"id": "got-3"}])
    );
    let mut asked: Vec<String> = upstream
        .calls_to("GetThing")
        .iter()
        .map(|m| {
            m.get_field_by_name("id")
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    asked.sort();
    assert_eq!(asked, ["1", "2", "3"], "one call per distinct key");
}

#[tokio::test]
async fn a_repeated_key_batch_is_one_call_for_every_key_of_every_parent() {
    let upstream = upstream().await;
    let gw = gateway(&upstream).await;
    let json = query(&gw, "{ things { things { id tagBatch { id } } } }").await;
    assert!(json.get("errors").is_none(), "{json}");
    let things = &json["data"]["things"]["things"];
    assert_eq!(
        things[0]["tagBatch"],
        json!([{"id": "thing-1"}, {"id": "thing-2"}, {"id": "thing-1"}])
    );
    // Key 3 finds nothing: no item.
    assert_eq!(things[1]["tagBatch"], json!([{"id": "thing-2"}]));
    let batches = upstream.calls_to("ListThings");
    // The root call, then one batch with the distinct keys.
    assert_eq!(batches.len(), 2, "{batches:?}");
    let ids = batches[1].get_field_by_name("ids").unwrap();
    let mut ids: Vec<i64> = ids
        .as_list()
        .unwrap()
        .iter()
        .filter_map(PValue::as_i64)
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3]);
}

#[tokio::test]
async fn the_joined_list_is_typed_as_a_non_null_list_of_non_null_items() {
    let upstream = upstream().await;
    let gw = gateway(&upstream).await;
    let json = query(
        &gw,
        r#"{ __type(name: "Thing") { fields { name type { kind ofType { kind name } } } } }"#,
    )
    .await;
    let fields = json["data"]["__type"]["fields"].as_array().unwrap();
    let tagged = fields.iter().find(|f| f["name"] == "tagged").unwrap();
    assert_eq!(tagged["type"]["kind"], "NON_NULL", "{tagged}");
    assert_eq!(tagged["type"]["ofType"]["kind"], "LIST", "{tagged}");
    let json = query(
        &gw,
        r#"{ __type(name: "Thing") { fields { name type { ofType { ofType { kind } } } } } }"#,
    )
    .await;
    let fields = json["data"]["__type"]["fields"].as_array().unwrap();
    let tagged = fields.iter().find(|f| f["name"] == "tagged").unwrap();
    assert_eq!(
        tagged["type"]["ofType"]["ofType"]["kind"], "NON_NULL",
        "{tagged}"
    );
}
