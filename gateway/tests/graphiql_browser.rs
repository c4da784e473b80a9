//! The GraphiQL page proven in a real browser: headless Chromium, driven by
//! playwright-core (`tests/browser/graphiql.mjs`), opens `GET /graphql` on a
//! gateway in front of the demo services, types a query that crosses all
//! three services (the `graphql.joins` of `config/gateway.yaml`), runs it
//! with the execute button and reads the result pane. The script fails on
//! any console error, uncaught exception, CSP violation, failed or non-2xx
//! request, or request to a host other than 127.0.0.1 (no CDN).
//!
//! See `common::browser` for what it needs.

mod common;

use common::{TestGateway, browser};

/// The `graphql:` section of `config/gateway.yaml`.
const GRAPHQL: &str = r#"
graphql:
  joins:
    - on: demo.orders.v1.Order
      field: user
      key: user_id
      batch:
        method: demo.users.v1.UserService.BatchGetUsers
        argument: ids
        results: users
        match: id
    - on: demo.orders.v1.LineItem
      field: stock
      key: sku
      call:
        method: demo.inventory.v1.InventoryService.GetStock
        argument: sku
"#;

#[tokio::test]
async fn graphiql_runs_a_joined_query_in_headless_chromium() {
    let gw = TestGateway::demo_with("", GRAPHQL).await;
    let url = format!("http://{}/graphql", gw.addr);
    let stdout = browser::run("graphiql.mjs", &[&url]).await;
    assert!(
        stdout.contains("Ada Lovelace"),
        "the joined user is not in the result:\n{stdout}"
    );
    assert!(
        stdout.contains(r#""available""#),
        "the joined stock is not in the result:\n{stdout}"
    );
    gw.stop().await;
}
