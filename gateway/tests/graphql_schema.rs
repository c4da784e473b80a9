//! The GraphQL schema generated for the demo protos (config/gateway.yaml),
//! as SDL: a snapshot (`cargo insta review` after an intended change).

mod common;

use switchyard::config;
use switchyard::runtime::Runtime;

/// The SDL of `config/gateway.yaml` (its `graphql:` section, joins included).
async fn demo_sdl() -> String {
    let mut loaded = config::load(&common::repo_root().join("config/gateway.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    loaded.config.graphql.get_or_insert_with(Default::default);
    let runtime = Runtime::check(loaded)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.graphql.expect("graphql endpoint").schema.sdl()
}

#[tokio::test]
async fn demo_sdl_snapshot() {
    insta::assert_snapshot!("demo_sdl", demo_sdl().await);
}

#[tokio::test]
async fn the_issue_query_fields_exist_on_the_demo() {
    let sdl = demo_sdl().await;
    for expected in [
        "order(id: String): Order",
        "orders(userId: String, pageSize: Int, pageToken: String): ListOrdersResponse",
        "stock(sku: String): Stock",
        "readMask: [String!]\n\t): User",
        "batchGetUsers(ids: [String!]): BatchGetUsersResponse",
        "createOrder(userId: String, items: [LineItemInput!]): Order",
        "watchOrders(userId: String): Order",
        "totalCents: Int64!",
        "items: [LineItem!]!",
        "createTime: DateTime",
        "status: OrderStatus!",
    ] {
        assert!(sdl.contains(expected), "missing {expected:?} in\n{sdl}");
    }
}

#[test]
fn the_graphql_schema_command_prints_the_sdl() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["graphql", "schema", "--config", "config/gateway.yaml"])
        .current_dir(common::repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("type Query {"), "{stdout}");
    assert!(stdout.contains("order(id: String): Order"), "{stdout}");
}
