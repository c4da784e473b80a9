//! Native gRPC clients through the gateway (`routes[].grpc.passthrough`):
//! real tonic clients (the demo's generated ones) call the demo services
//! via the gateway's edge in all four kinds of method, with the route's
//! plugins applied per call and refusals as gRPC statuses.

mod common;

use std::time::Duration;

use common::TestGateway;
use switchyard_demo::pb::inventory::GetStockRequest;
use switchyard_demo::pb::inventory::inventory_service_client::InventoryServiceClient;
use switchyard_demo::pb::orders::WatchOrdersRequest;
use switchyard_demo::pb::orders::order_service_client::OrderServiceClient;
use switchyard_demo::pb::users::GetUserRequest;
use switchyard_demo::pb::users::user_service_client::UserServiceClient;
use tokio_stream::StreamExt as _;
use tonic::Code;

/// sha256("demo-key-123") → consumer `gold`.
const GOLD_SHA: &str = "a52782e3a2d4dd2f95f640b9abfb3b2a6b8e722c65f55be830f6e5f619f7f873";

fn get_user(id: &str) -> GetUserRequest {
    GetUserRequest {
        id: id.into(),
        read_mask: None,
    }
}

fn sku(sku: &str) -> GetStockRequest {
    GetStockRequest { sku: sku.into() }
}

#[tokio::test]
async fn native_clients_call_unary_and_every_streaming_kind_through_the_gateway() {
    let gw = TestGateway::demo_with(", grpc: { passthrough: true }", "").await;
    let channel = gw.grpc_channel().await;

    // Unary.
    let user = UserServiceClient::new(channel.clone())
        .get_user(get_user("2"))
        .await
        .expect("GetUser")
        .into_inner();
    assert_eq!(user.name, "Grace Hopper");

    // Server streaming: the snapshot of user 1's orders arrives.
    let mut orders = OrderServiceClient::new(channel.clone())
        .watch_orders(WatchOrdersRequest {
            user_id: String::new(),
        })
        .await
        .expect("WatchOrders")
        .into_inner();
    let first = orders
        .message()
        .await
        .expect("a message")
        .expect("an order");
    assert!(!first.id.is_empty());

    // Client streaming: A-1 (100) + A-9 (20) + A-1 again.
    let mut inventory = InventoryServiceClient::new(channel.clone());
    let requests = tokio_stream::iter(vec![sku("A-1"), sku("A-9"), sku("A-1")]);
    let total = inventory
        .sum_stock(requests)
        .await
        .expect("SumStock")
        .into_inner();
    assert_eq!((total.skus, total.available), (3, 220));

    // Bidirectional: each answer comes back before the next SKU is sent.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut answers = inventory
        .lookup_stock(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("LookupStock")
        .into_inner();
    for (name, available) in [("B-9", 40), ("A-2", 90)] {
        tx.send(sku(name)).await.expect("send");
        let stock = answers.message().await.expect("answer").expect("a stock");
        assert_eq!((stock.sku.as_str(), stock.available), (name, available));
    }
    // An unknown SKU ends the stream with the upstream's NOT_FOUND.
    tx.send(sku("Z-1")).await.expect("send");
    let status = answers.message().await.expect_err("NOT_FOUND");
    assert_eq!(status.code(), Code::NotFound);
    drop(orders);

    let ok = gw
        .metric(r#"switchyard_grpc_calls_total{code="OK",protocol="grpc",route="inventory"}"#)
        .await;
    assert_eq!(ok, Some(1.0), "SumStock counted OK");
    gw.stop().await;
}

#[tokio::test]
async fn upstream_errors_metadata_and_details_pass_through_untouched() {
    let gw = TestGateway::demo_with(", grpc: { passthrough: true }", "").await;
    let mut users = UserServiceClient::new(gw.grpc_channel().await);
    let status = users
        .get_user(get_user("999"))
        .await
        .expect_err("NOT_FOUND");
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("999"), "{}", status.message());
    // The google.rpc.Status details the demo attaches arrive as sent.
    assert!(
        switchyard_demo::find_detail::<switchyard_demo::pb::google::rpc::ErrorInfo>(&status)
            .is_some(),
        "ErrorInfo detail passed through"
    );
    let status = users
        .get_user(get_user(""))
        .await
        .expect_err("INVALID_ARGUMENT");
    assert_eq!(status.code(), Code::InvalidArgument);
    gw.stop().await;
}

#[tokio::test]
async fn the_routes_plugins_run_per_call_and_their_refusals_are_grpc_statuses() {
    let route = format!(
        ", grpc: {{ passthrough: true }}, plugins: [ {{ auth: {{ methods: [ {{ api_key: {{ header: x-api-key, keys: [ \
         {{ consumer: gold, sha256: {GOLD_SHA} }} ] }} }} ] }} }}, \
         {{ rate_limit: {{ rate: 2/min, key: [consumer] }} }} ]"
    );
    let gw = TestGateway::demo_with(&route, "").await;
    let mut users = UserServiceClient::new(gw.grpc_channel().await);

    let status = users.get_user(get_user("1")).await.expect_err("no key");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    let with_key = || {
        let mut req = tonic::Request::new(get_user("1"));
        req.metadata_mut()
            .insert("x-api-key", "demo-key-123".parse().unwrap());
        req
    };
    users.get_user(with_key()).await.expect("first call");
    users.get_user(with_key()).await.expect("second call");
    let status = users.get_user(with_key()).await.expect_err("over 2/min");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    let refused = gw
        .metric(
            r#"switchyard_grpc_calls_total{code="UNAUTHENTICATED",protocol="grpc",route="users"}"#,
        )
        .await;
    assert_eq!(refused, Some(1.0));
    gw.stop().await;
}

#[tokio::test]
async fn methods_not_exposed_to_grpc_clients_are_unimplemented() {
    // The demo routes without `grpc`: REST only.
    let gw = TestGateway::demo_with("", "").await;
    let channel = gw.grpc_channel().await;
    let status = UserServiceClient::new(channel.clone())
        .get_user(get_user("1"))
        .await
        .expect_err("routes without grpc.passthrough");
    assert_eq!(status.code(), Code::Unimplemented);
    assert!(status.message().contains("GetUser"), "{}", status.message());
    // REST still works on the same port.
    assert_eq!(gw.get("/v1/users/1").await.status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn a_message_over_the_routes_body_limit_is_resource_exhausted() {
    let gw =
        TestGateway::demo_with(", grpc: { passthrough: true }, max_request_body: 64", "").await;
    let mut inventory = InventoryServiceClient::new(gw.grpc_channel().await);
    let requests = tokio_stream::iter(vec![sku("A-1"), sku(&"A".repeat(200))]);
    let status = inventory.sum_stock(requests).await.expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("64 bytes"),
        "{}",
        status.message()
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_upstream_stream() {
    let gw = TestGateway::demo_with(", grpc: { passthrough: true }", "").await;
    let open = r#"switchyard_streams_open{protocol="grpc"}"#;
    let channel = gw.grpc_channel().await;
    let mut orders = OrderServiceClient::new(channel)
        .watch_orders(WatchOrdersRequest {
            user_id: "1".into(),
        })
        .await
        .expect("WatchOrders")
        .into_inner();
    orders.next().await.expect("a message").expect("an order");
    assert_eq!(gw.demo.open_watches(), 1);
    assert_eq!(gw.metric(open).await, Some(1.0));

    drop(orders);
    let mut waited = Duration::ZERO;
    while gw.demo.open_watches() > 0 || gw.metric(open).await != Some(0.0) {
        assert!(
            waited < Duration::from_secs(5),
            "the upstream watch is still open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    gw.stop().await;
}

/// A client we did not write: Python's grpcio (tests/peers/python,
/// `$SWITCHYARD_PYTHON` from scripts/test.sh, else python3) calls every kind
/// of method through the gateway, with stubs generated from the demo protos.
#[tokio::test]
async fn a_python_grpcio_client_calls_every_kind_of_method_through_the_gateway() {
    let gw = TestGateway::demo_with(", grpc: { passthrough: true }", "").await;
    let python = std::env::var("SWITCHYARD_PYTHON").unwrap_or_else(|_| "python3".into());
    let root = common::repo_root();
    let output = tokio::process::Command::new(&python)
        .arg(root.join("gateway/tests/peers/python/passthrough_client.py"))
        .arg(gw.addr.to_string())
        .arg(root.join("proto"))
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {python:?}: {e} (run scripts/test.sh)"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the grpcio client failed (needs grpcio and grpcio-tools: run scripts/test.sh):\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let calls: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    let call = |name: &str| {
        calls
            .iter()
            .find(|c| c["call"] == name)
            .unwrap_or_else(|| panic!("no {name} call in {stdout}"))
            .clone()
    };
    assert_eq!(call("unary")["name"], "Grace Hopper");
    assert_eq!(call("server_streaming")["user_id"], "1");
    let total = call("client_streaming");
    assert_eq!(
        (total["skus"].as_i64(), total["available"].as_i64()),
        (Some(3), Some(220))
    );
    assert_eq!(
        call("bidi_streaming")["answers"],
        serde_json::json!([["B-9", 40], ["A-2", 90]])
    );
    let error = call("error");
    assert_eq!(error["code"], "NOT_FOUND", "{error}");
    assert!(
        error["details"].as_str().unwrap().contains("Z-404"),
        "{error}"
    );
}
