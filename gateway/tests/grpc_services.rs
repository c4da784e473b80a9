//! The gRPC services the gateway answers itself for the services it passes
//! through: `grpc.health.v1.Health` (following each upstream's state) and
//! server reflection (only the exposed services), called with real tonic
//! clients — the demo's health client and tonic-reflection's client.

mod common;

use std::time::Duration;

use common::TestGateway;
use prost::Message as _;
use switchyard_demo::Service;
use switchyard_demo::pb::health::HealthCheckRequest;
use switchyard_demo::pb::health::health_check_response::ServingStatus;
use switchyard_demo::pb::health::health_client::HealthClient;
use switchyard_demo::pb::users::GetUserRequest;
use switchyard_demo::pb::users::user_service_client::UserServiceClient;
use tonic::Code;
use tonic::transport::Channel;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

async fn check(health: &mut HealthClient<Channel>, service: &str) -> Result<i32, Code> {
    health
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|r| r.into_inner().status)
        .map_err(|s| s.code())
}

#[tokio::test]
async fn health_answers_for_each_passed_through_service_and_follows_its_upstream() {
    let mut gw = TestGateway::demo_with(", grpc: { passthrough: true }", "").await;
    let channel = gw.grpc_channel().await;
    let mut health = HealthClient::new(channel.clone());
    let serving = ServingStatus::Serving as i32;
    assert_eq!(check(&mut health, "").await, Ok(serving));
    assert_eq!(
        check(&mut health, "demo.users.v1.UserService").await,
        Ok(serving)
    );
    assert_eq!(
        check(&mut health, "demo.inventory.v1.InventoryService").await,
        Ok(serving)
    );
    assert_eq!(
        check(&mut health, "no.such.Service").await,
        Err(Code::NotFound)
    );

    // The users service goes down: a call fails, its endpoint is passed
    // over, and the gateway says so.
    gw.demo.stop(Service::Users).await;
    let failed = UserServiceClient::new(channel)
        .get_user(GetUserRequest {
            id: "1".into(),
            read_mask: None,
        })
        .await
        .expect_err("the upstream is down");
    assert_eq!(failed.code(), Code::Unavailable);
    let not_serving = ServingStatus::NotServing as i32;
    let mut waited = Duration::ZERO;
    while check(&mut health, "demo.users.v1.UserService").await != Ok(not_serving) {
        assert!(waited < Duration::from_secs(5), "still SERVING");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    assert_eq!(
        check(&mut health, "demo.orders.v1.OrderService").await,
        Ok(serving)
    );
    gw.stop().await;
}

/// One reflection request's answer.
async fn reflect(gw: &TestGateway, request: MessageRequest) -> Result<MessageResponse, Code> {
    let mut client = ServerReflectionClient::new(gw.grpc_channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .map_err(|s| s.code())?
        .into_inner();
    let answer = answers.message().await.map_err(|s| s.code())?;
    Ok(answer
        .expect("one answer")
        .message_response
        .expect("a response"))
}

#[tokio::test]
async fn reflection_lists_the_exposed_services_and_serves_their_files() {
    // Users and orders pass gRPC through; inventory is REST only.
    let top = "grpc: { reflection: true }";
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let demo = switchyard_demo::spawn(any, any, any).await.expect("demo");
    let yaml = common::demo_config(&demo, "", top)
        .replace(
            "upstream: users ",
            "upstream: users, grpc: { passthrough: true } ",
        )
        .replace(
            "upstream: orders ",
            "upstream: orders, grpc: { passthrough: true } ",
        );
    let gw = TestGateway::start_yaml(demo, &yaml).await;

    let Ok(MessageResponse::ListServicesResponse(list)) =
        reflect(&gw, MessageRequest::ListServices(String::new())).await
    else {
        panic!("no service list");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        ["demo.orders.v1.OrderService", "demo.users.v1.UserService"]
    );

    let Ok(MessageResponse::FileDescriptorResponse(files)) = reflect(
        &gw,
        MessageRequest::FileContainingSymbol("demo.users.v1.UserService".into()),
    )
    .await
    else {
        panic!("no file for UserService");
    };
    let files: Vec<prost_types::FileDescriptorProto> = files
        .file_descriptor_proto
        .iter()
        .map(|b| prost_types::FileDescriptorProto::decode(b.as_slice()).expect("a file"))
        .collect();
    let users = files
        .iter()
        .find(|f| f.name() == "demo/users/v1/users.proto")
        .expect("users.proto served");
    assert!(users.service.iter().any(|s| s.name() == "UserService"));

    // A service the config does not pass through is not described.
    let inventory = reflect(
        &gw,
        MessageRequest::FileContainingSymbol("demo.inventory.v1.InventoryService".into()),
    )
    .await;
    assert!(
        !matches!(inventory, Ok(MessageResponse::FileDescriptorResponse(_))),
        "{inventory:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn reflection_is_off_unless_configured() {
    let gw = TestGateway::demo_with(", grpc: { passthrough: true }", "").await;
    let answer = reflect(&gw, MessageRequest::ListServices(String::new())).await;
    assert_eq!(answer.err(), Some(Code::Unimplemented));
    gw.stop().await;
}
