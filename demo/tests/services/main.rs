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

mod inventory;
mod orders;
mod server;
mod users;

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
