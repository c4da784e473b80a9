//! The demo services over real gRPC: seed data, pagination, validation with rich error details,
//! the order stream, and stopping/restarting one service.

use std::net::SocketAddr;
use std::time::Duration;

use prost::Message;
use switchyard_demo::pb::google::rpc::{BadRequest, ErrorInfo, PreconditionFailure};
use switchyard_demo::pb::inventory::inventory_service_client::InventoryServiceClient;
use switchyard_demo::pb::inventory::{GetStockRequest, ReserveStockRequest};
use switchyard_demo::pb::orders::order_service_client::OrderServiceClient;
use switchyard_demo::pb::orders::{
    CancelOrderRequest, CreateOrderRequest, GetOrderRequest, LineItem, ListOrdersRequest, Order,
    OrderStatus, WatchOrdersRequest,
};
use switchyard_demo::pb::users::user_service_client::UserServiceClient;
use switchyard_demo::pb::users::{
    BatchGetUsersRequest, CreateUserRequest, GetUserRequest, ListUsersRequest, Role,
    UpdateUserRequest, User,
};
use switchyard_demo::{DemoServer, Service, find_detail, rich_status};
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

const ANY_PORT: &str = "127.0.0.1:0";

async fn start() -> DemoServer {
    let any: SocketAddr = ANY_PORT.parse().unwrap();
    switchyard_demo::spawn(any, any, any).await.unwrap()
}

async fn users(server: &DemoServer) -> UserServiceClient<Channel> {
    UserServiceClient::connect(server.url(Service::Users))
        .await
        .unwrap()
}

async fn orders(server: &DemoServer) -> OrderServiceClient<Channel> {
    OrderServiceClient::connect(server.url(Service::Orders))
        .await
        .unwrap()
}

async fn inventory(server: &DemoServer) -> InventoryServiceClient<Channel> {
    InventoryServiceClient::connect(server.url(Service::Inventory))
        .await
        .unwrap()
}

fn field_violations(status: &Status) -> Vec<String> {
    find_detail::<BadRequest>(status)
        .expect("BadRequest detail")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

fn ids_of_users(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.id.as_str()).collect()
}

fn ids_of_orders(orders: &[Order]) -> Vec<&str> {
    orders.iter().map(|o| o.id.as_str()).collect()
}

fn item(sku: &str, qty: i32) -> LineItem {
    LineItem {
        sku: sku.into(),
        qty,
        unit_price_cents: 1, // ignored: the server prices from its table
    }
}

/// Next message of a watch, failing the test instead of hanging.
async fn next(stream: &mut Streaming<Order>) -> Result<Option<Order>, Status> {
    tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("watch produced nothing within 5s")
}

#[tokio::test]
async fn get_user_returns_seed_data_and_rich_errors() {
    let server = start().await;
    let mut client = users(&server).await;

    let ada = client
        .get_user(GetUserRequest { id: "1".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ada.name, "Ada Lovelace");
    assert_eq!(ada.email, "ada@example.com");
    assert_eq!(ada.role(), Role::Admin);
    // 2024-01-01T00:00:00Z + 1h
    assert_eq!(ada.create_time.unwrap().seconds, 1_704_070_800);

    let grace = client
        .get_user(GetUserRequest { id: "2".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (grace.name.as_str(), grace.role()),
        ("Grace Hopper", Role::Customer)
    );

    let missing = client
        .get_user(GetUserRequest { id: "99".into() })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(missing.message(), "user \"99\" not found");
    let rich = rich_status(&missing).unwrap();
    assert_eq!(rich.code, Code::NotFound as i32);
    assert_eq!(
        rich.details[0].type_url,
        "type.googleapis.com/google.rpc.ErrorInfo"
    );
    let info = ErrorInfo::decode(rich.details[0].value.as_slice()).unwrap();
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("USER_NOT_FOUND", "users.demo")
    );
    assert_eq!(info.metadata["id"], "99");

    // "01" must not alias user "1".
    let aliased = client
        .get_user(GetUserRequest { id: "01".into() })
        .await
        .unwrap_err();
    assert_eq!(aliased.code(), Code::NotFound);

    let empty = client
        .get_user(GetUserRequest { id: String::new() })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&empty), ["id"]);
}

#[tokio::test]
async fn list_users_pages_and_filters() {
    let server = start().await;
    let mut client = users(&server).await;

    let first = client
        .list_users(ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.users.len(), 10);
    assert_eq!(first.users[0].id, "1");
    assert!(!first.next_page_token.is_empty());

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_users(ListUsersRequest {
                page_size: 7,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.users.iter().map(|u| u.id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected: Vec<String> = (1..=20).map(|n| n.to_string()).collect();
    assert_eq!(seen, expected);

    let admins = client
        .list_users(ListUsersRequest {
            role: Role::Admin as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids_of_users(&admins.users), ["1"]);
    assert!(admins.next_page_token.is_empty());

    let bad = client
        .list_users(ListUsersRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&bad), ["page_token"]);
}

#[tokio::test]
async fn create_update_and_batch_get_users() {
    let server = start().await;
    let mut client = users(&server).await;

    let created = client
        .create_user(CreateUserRequest {
            user: Some(User {
                id: "ignored".into(),
                name: "Hedy Lamarr".into(),
                email: "hedy@example.com".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.id, "21");
    assert_eq!(created.role(), Role::Customer);
    assert!(created.create_time.is_some());

    let invalid = client
        .create_user(CreateUserRequest {
            user: Some(User {
                name: "  ".into(),
                email: "nope".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&invalid), ["user.name", "user.email"]);

    // With a mask only the named fields change, even if others are set.
    let masked = client
        .update_user(UpdateUserRequest {
            user: Some(User {
                id: "21".into(),
                name: "Not Applied".into(),
                email: "hedy.lamarr@example.com".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["email".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(masked.name, "Hedy Lamarr");
    assert_eq!(masked.email, "hedy.lamarr@example.com");

    // Without a mask every set field changes.
    let unmasked = client
        .update_user(UpdateUserRequest {
            user: Some(User {
                id: "21".into(),
                role: Role::Admin as i32,
                ..Default::default()
            }),
            update_mask: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unmasked.role(), Role::Admin);
    assert_eq!(unmasked.email, "hedy.lamarr@example.com");

    let immutable = client
        .update_user(UpdateUserRequest {
            user: Some(User {
                id: "21".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["create_time".into()],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(immutable.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&immutable), ["update_mask.paths[0]"]);

    let missing = client
        .update_user(UpdateUserRequest {
            user: Some(User {
                id: "404".into(),
                name: "x".into(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let batch = client
        .batch_get_users(BatchGetUsersRequest {
            ids: vec!["3".into(), "99".into(), "21".into(), "1".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids_of_users(&batch.users), ["3", "21", "1"]);
}

#[tokio::test]
async fn orders_are_priced_listed_and_cancelled() {
    let server = start().await;
    let mut client = orders(&server).await;

    let first = client
        .get_order(GetOrderRequest { id: "1".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.user_id, "1");
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.total_cents, 2 * 1250 + 4999);
    assert_eq!(first.status(), OrderStatus::Placed);

    let created = client
        .create_order(CreateOrderRequest {
            user_id: "1".into(),
            items: vec![item("A-1", 3), item("B-9", 1)],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.id, "11");
    assert_eq!(created.items[0].unit_price_cents, 1250);
    assert_eq!(created.total_cents, 3 * 1250 + 18999);
    assert_eq!(created.status(), OrderStatus::Placed);

    let invalid = client
        .create_order(CreateOrderRequest {
            user_id: String::new(),
            items: vec![item("A-1", 0), item("Z-9", 1)],
        })
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(
        field_violations(&invalid),
        ["user_id", "items[0].qty", "items[1].sku"]
    );
    let no_items = client
        .create_order(CreateOrderRequest {
            user_id: "1".into(),
            items: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(field_violations(&no_items), ["items"]);

    let mine = client
        .list_orders(ListOrdersRequest {
            user_id: "1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids_of_orders(&mine.orders), ["11", "9", "5", "1"]);

    let all = client
        .list_orders(ListOrdersRequest {
            page_size: 4,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids_of_orders(&all.orders), ["11", "10", "9", "8"]);
    assert_eq!(all.next_page_token, "4");

    let cancelled = client
        .cancel_order(CancelOrderRequest {
            id: "1".into(),
            reason: "changed my mind".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status(), OrderStatus::Cancelled);

    let again = client
        .cancel_order(CancelOrderRequest {
            id: "1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let failure = find_detail::<PreconditionFailure>(&again).unwrap();
    assert_eq!(failure.violations[0].subject, "orders/1");

    let shipped = client
        .cancel_order(CancelOrderRequest {
            id: "3".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(shipped.code(), Code::FailedPrecondition);

    let missing = client
        .get_order(GetOrderRequest { id: "77".into() })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let info = find_detail::<ErrorInfo>(&missing).unwrap();
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("ORDER_NOT_FOUND", "orders.demo")
    );
}

#[tokio::test]
async fn watch_orders_sends_snapshot_then_changes() {
    let mut server = start().await;
    let mut client = orders(&server).await;
    let mut watch = client
        .watch_orders(WatchOrdersRequest {
            user_id: "1".into(),
        })
        .await
        .unwrap()
        .into_inner();

    let mut snapshot = Vec::new();
    for _ in 0..3 {
        snapshot.push(next(&mut watch).await.unwrap().unwrap());
    }
    assert_eq!(ids_of_orders(&snapshot), ["1", "5", "9"]);

    // Another user's order is filtered out; the next message is user 1's.
    for user_id in ["2", "1"] {
        client
            .create_order(CreateOrderRequest {
                user_id: user_id.into(),
                items: vec![item("A-2", 1)],
            })
            .await
            .unwrap();
    }
    let created = next(&mut watch).await.unwrap().unwrap();
    assert_eq!((created.id.as_str(), created.user_id.as_str()), ("12", "1"));

    client
        .cancel_order(CancelOrderRequest {
            id: "5".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let cancelled = next(&mut watch).await.unwrap().unwrap();
    assert_eq!(cancelled.id, "5");
    assert_eq!(cancelled.status(), OrderStatus::Cancelled);

    // Stopping the service must not hang on the open watch; the watch ends with UNAVAILABLE.
    tokio::time::timeout(Duration::from_secs(3), server.stop(Service::Orders))
        .await
        .expect("stop finished despite an open watch");
    let ended = next(&mut watch).await.unwrap_err();
    assert_eq!(ended.code(), Code::Unavailable);
}

#[tokio::test]
async fn watch_is_released_when_the_client_goes_away() {
    let server = start().await;
    let mut client = orders(&server).await;
    let mut watch = client
        .watch_orders(WatchOrdersRequest {
            user_id: "2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    next(&mut watch).await.unwrap().unwrap();
    assert_eq!(server.open_watches(), 1);

    drop(watch);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.open_watches() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "watch still open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn inventory_reserves_until_sold_out() {
    let server = start().await;
    let mut client = inventory(&server).await;

    let a1 = client
        .get_stock(GetStockRequest { sku: "A-1".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((a1.available, a1.reserved), (100, 0));

    let reservation = client
        .reserve_stock(ReserveStockRequest {
            sku: "A-1".into(),
            qty: 30,
            order_id: "1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reservation.reservation_id, "r-1");
    let stock = reservation.stock.unwrap();
    assert_eq!((stock.available, stock.reserved), (70, 30));

    let too_many = client
        .reserve_stock(ReserveStockRequest {
            sku: "A-1".into(),
            qty: 71,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::FailedPrecondition);
    assert_eq!(
        find_detail::<PreconditionFailure>(&too_many)
            .unwrap()
            .violations[0]
            .subject,
        "skus/A-1"
    );

    let sold_out = client
        .reserve_stock(ReserveStockRequest {
            sku: "B-1".into(),
            qty: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(sold_out.code(), Code::FailedPrecondition);

    let zero = client
        .reserve_stock(ReserveStockRequest {
            sku: "A-1".into(),
            qty: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(zero.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&zero), ["qty"]);

    let unknown = client
        .get_stock(GetStockRequest { sku: "Z-1".into() })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(
        find_detail::<ErrorInfo>(&unknown).unwrap().reason,
        "SKU_NOT_FOUND"
    );
}

#[tokio::test]
async fn one_service_can_be_stopped_and_restarted() {
    let mut server = start().await;
    let mut client = users(&server).await;
    client
        .create_user(CreateUserRequest {
            user: Some(User {
                name: "Survivor".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();

    server.stop(Service::Users).await;
    assert!(!server.is_running(Service::Users));
    let down = client
        .get_user(GetUserRequest { id: "1".into() })
        .await
        .unwrap_err();
    assert_eq!(down.code(), Code::Unavailable);
    // The other services are unaffected.
    inventory(&server)
        .await
        .get_stock(GetStockRequest { sku: "A-1".into() })
        .await
        .unwrap();

    server.restart(Service::Users).await.unwrap();
    let mut client = users(&server).await;
    let survivor = client
        .get_user(GetUserRequest { id: "21".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(survivor.name, "Survivor");
    server.shutdown().await;
}

#[test]
fn protos_and_descriptor_set_are_reachable() {
    let dir = switchyard_demo::proto_dir();
    assert!(dir.is_absolute());
    assert!(dir.join("demo/users/v1/users.proto").is_file());

    let fds = prost_types::FileDescriptorSet::decode(switchyard_demo::FILE_DESCRIPTOR_SET).unwrap();
    let names: Vec<&str> = fds.file.iter().map(|f| f.name()).collect();
    for expected in [
        "demo/users/v1/users.proto",
        "demo/orders/v1/orders.proto",
        "demo/inventory/v1/inventory.proto",
        "google/api/annotations.proto",
        "google/protobuf/timestamp.proto",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
}
