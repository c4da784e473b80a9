//! Every failure the gateway answers itself, through the real gateway and
//! the real demo services, with its status and the shared error shape: bad
//! bodies and fields (400), no route (404/405), limits (413/431/502), wrong
//! content type (415), and an upstream down (503) or silent (504).

mod common;

use bytes::Bytes;
use common::TestGateway;
use http::{Method, StatusCode};

#[tokio::test]
async fn malformed_json_is_400_and_names_the_problem() {
    let gw = TestGateway::demo().await;
    let reply = gw
        .post_json("/v1/orders", r#"{"userId": "1", "items": [}"#)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let (code, message) = reply.error();
    assert_eq!(code, 3);
    assert!(message.starts_with("invalid JSON body"), "{message}");
    gw.stop().await;
}

#[tokio::test]
async fn wrong_field_type_is_400() {
    let gw = TestGateway::demo().await;
    let reply = gw
        .post_json(
            "/v1/orders",
            r#"{"userId":"1","items":[{"sku":"A-1","qty":"many"}]}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let (_, message) = reply.error();
    assert!(message.contains("invalid JSON body"), "{message}");
    gw.stop().await;
}

#[tokio::test]
async fn unknown_fields_are_rejected_by_default() {
    let gw = TestGateway::demo().await;
    let reply = gw
        .post_json(
            "/v1/orders",
            r#"{"userId":"1","colour":"red","items":[{"sku":"A-1","qty":1}]}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.error().1.contains("colour"), "{}", reply.text());
    let reply = gw.get("/v1/users?colour=red").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.error().1.contains("colour"), "{}", reply.text());
    gw.stop().await;
}

#[tokio::test]
async fn unknown_fields_can_be_ignored_per_route() {
    let gw = TestGateway::demo_with(", json: { unknown_fields: ignore }", "").await;
    let reply = gw
        .post_json(
            "/v1/orders",
            r#"{"userId":"1","colour":"red","items":[{"sku":"A-1","qty":1}]}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    gw.stop().await;
}

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405_with_allow() {
    let gw = TestGateway::demo().await;
    let reply = gw.get("/v2/nothing").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error().0, 5);
    let reply = gw
        .send(Method::DELETE, "/v1/users/1", &[], Bytes::new())
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.headers["allow"], "GET, PATCH");
    reply.error();
    gw.stop().await;
}

#[tokio::test]
async fn body_over_the_route_limit_is_413() {
    let gw = TestGateway::demo_with(", max_request_body: 64", "").await;
    let big = format!(
        r#"{{"userId":"1","items":[{{"sku":"{}","qty":1}}]}}"#,
        "A".repeat(100)
    );
    let reply = gw.post_json("/v1/orders", &big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    reply.error();
    gw.stop().await;
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let gw = TestGateway::demo().await;
    let reply = gw
        .send(
            Method::POST,
            "/v1/orders",
            &[("content-type", "text/xml")],
            Bytes::from_static(b"<order/>"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    reply.error();
    gw.stop().await;
}

#[tokio::test]
async fn invalid_path_variable_value_is_400() {
    let gw = TestGateway::demo().await;
    let reply = gw.get("/v1/users/%ZZ").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    reply.error();
    gw.stop().await;
}

#[tokio::test]
async fn upstream_down_is_503() {
    let mut gw = TestGateway::demo().await;
    gw.demo.stop(switchyard_demo::Service::Users).await;
    let reply = gw.get("/v1/users/1").await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert_eq!(reply.error().0, 14);
    // The channel reconnects once the service is back.
    gw.demo
        .restart(switchyard_demo::Service::Users)
        .await
        .unwrap();
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        status = gw.get("/v1/users/1").await.status;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::OK);
    gw.stop().await;
}

#[tokio::test]
async fn upstream_that_never_answers_is_504_at_the_route_deadline() {
    // A socket that accepts and then says nothing: the call must end at the deadline.
    let silent_addr = common::silent_upstream();
    let yaml = common::one_route_config(
        None,
        "demo.inventory.v1.InventoryService",
        &format!("\"http://{silent_addr}\""),
        "",
        ", timeout: 300ms",
    );
    let demo = common::spawn_demo().await;
    let gw = TestGateway::start_yaml(demo, &yaml).await;
    let started = std::time::Instant::now();
    let reply = gw.get("/v1/inventory/A-1").await;
    assert_eq!(
        reply.status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        reply.text()
    );
    assert_eq!(reply.error().0, 4);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "ended at the deadline, not later"
    );
    gw.stop().await;
}

#[tokio::test]
async fn too_many_request_headers_is_431() {
    let gw = TestGateway::demo_with("", "limits: { max_headers: 20 }").await;
    let names: Vec<String> = (0..40).map(|i| format!("x-h{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let reply = gw
        .send(Method::GET, "/v1/users/1", &headers, Bytes::new())
        .await;
    assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    gw.stop().await;
}

#[tokio::test]
async fn upstream_reply_over_the_message_limit_is_502() {
    let gw = TestGateway::demo_with("", "limits: { max_upstream_message: 512 }").await;
    let reply = gw.get("/v1/users?pageSize=20").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    assert!(
        reply.error().1.contains("max_upstream_message"),
        "{}",
        reply.text()
    );
    // A small reply still passes.
    assert_eq!(gw.get("/v1/users/1").await.status, StatusCode::OK);
    gw.stop().await;
}
