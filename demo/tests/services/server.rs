//! The server as a whole: stopping/restarting one service, protos and descriptor set.

use super::*;

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
        .get_user(GetUserRequest {
            id: "1".into(),
            read_mask: None,
        })
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
        .get_user(GetUserRequest {
            id: "21".into(),
            read_mask: None,
        })
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
