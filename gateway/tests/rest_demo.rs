//! REST → gRPC through the real gateway and the real demo services: the
//! commands from the README, the `google.api.http` mapping rules (bindings,
//! query parameters, bodies, path normalisation, hosts), upstream errors in
//! the shared shape, and how the edge serves (h2c, the admin listener).
//! Failures the gateway answers itself are in `gateway_errors.rs`.

mod common;

use bytes::Bytes;
use common::TestGateway;
use http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn get_user_returns_proto3_json() {
    let gw = TestGateway::demo().await;
    let reply = gw.get("/v1/users/1").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(
        reply.json(),
        json!({"id": "1", "name": "Ada Lovelace", "email": "ada@example.com", "role": "ROLE_ADMIN", "createTime": "2024-01-01T01:00:00Z"})
    );
    gw.stop().await;
}

#[tokio::test]
async fn create_order_from_a_camel_case_body_with_int64_as_strings() {
    let gw = TestGateway::demo().await;
    let reply = gw
        .post_json(
            "/v1/orders",
            r#"{"userId":"1","items":[{"sku":"A-1","qty":2}]}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let order = reply.json();
    assert_eq!(order["userId"], "1");
    assert_eq!(order["totalCents"], "2500", "int64 is a JSON string");
    assert_eq!(order["status"], "ORDER_STATUS_PLACED");
    // Original proto field names are accepted on input too.
    let reply = gw
        .post_json(
            "/v1/orders",
            r#"{"user_id":"2","items":[{"sku":"A-2","qty":1}]}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["userId"], "2");
    gw.stop().await;
}

#[tokio::test]
async fn unknown_id_is_404_with_code_message_and_details() {
    let gw = TestGateway::demo().await;
    let reply = gw.get("/v1/users/999").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.json(),
        json!({"code": 5, "message": "user \"999\" not found", "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "USER_NOT_FOUND", "domain": "users.demo", "metadata": {"id": "999"}}
        ]})
    );
    gw.stop().await;
}

#[tokio::test]
async fn upstream_invalid_argument_is_400_with_bad_request_details() {
    let gw = TestGateway::demo().await;
    let reply = gw
        .post_json("/v1/orders", r#"{"userId":"1","items":[]}"#)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["code"], 3);
    assert_eq!(
        body["details"][0]["@type"],
        "type.googleapis.com/google.rpc.BadRequest"
    );
    gw.stop().await;
}

#[tokio::test]
async fn query_parameters_fill_the_remaining_fields() {
    let gw = TestGateway::demo().await;
    let reply = gw.get("/v1/users?pageSize=2&role=ROLE_CUSTOMER").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    let users = body["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert!(users.iter().all(|u| u["role"] == "ROLE_CUSTOMER"));
    assert_eq!(body["nextPageToken"], "2");
    // Enum by number, repeated parameters, snake_case name.
    let reply = gw.get("/v1/users?page_size=1&role=2").await;
    assert_eq!(reply.json()["users"][0]["id"], "1");
    let reply = gw.get("/v1/users:batchGet?ids=3&ids=1").await;
    let ids: Vec<_> = reply.json()["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("3"), json!("1")]);
    gw.stop().await;
}

#[tokio::test]
async fn additional_bindings_and_response_body_and_custom_verbs() {
    let gw = TestGateway::demo().await;
    // additional_bindings: POST with body "*" next to the GET.
    let reply = gw.post_json("/v1/users:batchGet", r#"{"ids":["2"]}"#).await;
    assert_eq!(reply.json()["users"][0]["id"], "2");
    // response_body: "orders" gives the bare list.
    let reply = gw.get("/v1/users/1/orders").await;
    let list = reply.json();
    assert!(list.is_array(), "{list}");
    assert!(list.as_array().unwrap().iter().all(|o| o["userId"] == "1"));
    // Custom verb with a path variable.
    let reply = gw
        .post_json("/v1/orders/2:cancel", r#"{"reason":"changed my mind"}"#)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["status"], "ORDER_STATUS_CANCELLED");
    gw.stop().await;
}

#[tokio::test]
async fn body_field_and_nested_path_variable() {
    let gw = TestGateway::demo().await;
    let reply = gw
        .send(
            Method::PATCH,
            "/v1/users/2?updateMask=name",
            &[("content-type", "application/json")],
            Bytes::from_static(br#"{"name":"Grace B. Hopper","email":"ignored@example.com"}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let user = reply.json();
    assert_eq!(user["id"], "2", "user.id comes from the path");
    assert_eq!(user["name"], "Grace B. Hopper");
    assert_eq!(
        user["email"], "grace@example.com",
        "update_mask limited the update to name"
    );
    gw.stop().await;
}

#[tokio::test]
async fn request_metadata_is_forwarded_and_request_id_echoed() {
    let gw = TestGateway::demo_with("", "plugins: [ { request_id: {} } ]").await;
    let reply = gw
        .send(
            Method::GET,
            "/v1/users/1",
            &[("x-request-id", "req-42")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["x-request-id"], "req-42");
    gw.stop().await;
}

#[tokio::test]
async fn admin_serves_metrics_health_and_readiness() {
    let gw = TestGateway::demo().await;
    gw.get("/v1/users/1").await;
    gw.get("/v1/users/999").await;
    let metrics = gw.admin_get("/metrics").await.text();
    assert!(
        metrics.contains(
            r#"switchyard_http_requests_total{method="GET",route="users",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"switchyard_http_requests_total{method="GET",route="users",status="404"} 1"#
        )
    );
    assert!(metrics.contains(
        r#"switchyard_upstream_requests_total{grpc_status="NOT_FOUND",upstream="users"} 1"#
    ));
    assert!(metrics.contains("switchyard_upstream_request_duration_seconds_bucket"));
    assert_eq!(gw.admin_get("/healthz").await.status, StatusCode::OK);
    assert_eq!(gw.admin_get("/readyz").await.status, StatusCode::OK);
    gw.stop().await;
}

#[tokio::test]
async fn http2_prior_knowledge_is_served() {
    let gw = TestGateway::demo().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<Bytes>>();
    let req = http::Request::get(format!("http://{}/v1/users/1", gw.addr))
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.version(), http::Version::HTTP_2);
    gw.stop().await;
}

#[tokio::test]
async fn a_binary_descriptor_set_can_replace_the_proto_sources() {
    let dir = std::env::temp_dir().join(format!("sy-fds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let set = dir.join("demo.pb");
    std::fs::write(&set, switchyard_demo::FILE_DESCRIPTOR_SET).unwrap();
    let demo = common::spawn_demo().await;
    let yaml = common::one_route_config(
        Some(&set.display().to_string()),
        "demo.users.v1.UserService",
        &format!("\"{}\"", demo.url(switchyard_demo::Service::Users)),
        "",
        "",
    );
    let gw = TestGateway::start_yaml(demo, &yaml).await;
    let reply = gw.get("/v1/users/1").await;
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["name"], "Ada Lovelace");
    gw.stop().await;
}

#[tokio::test]
async fn error_details_follow_the_routes_json_field_names() {
    let gw = TestGateway::demo_with(", json: { use_proto_names: true }", "").await;
    let reply = gw
        .post_json("/v1/orders", r#"{"user_id":"1","items":[]}"#)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    let detail = &reply.json()["details"][0];
    assert_eq!(detail["@type"], "type.googleapis.com/google.rpc.BadRequest");
    assert!(detail["field_violations"].is_array(), "{detail}");
    gw.stop().await;
}

#[tokio::test]
async fn paths_are_normalised_before_routing() {
    let gw = TestGateway::demo().await;
    for path in [
        "/v1/users/1",
        "//v1//users/1",
        "/v1/./users/1",
        "/v1/orders/../users/1",
        "/v1/%2e%2e/v1/users/1",
        "/v1/us%65rs/1",
    ] {
        let reply = gw.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
        assert_eq!(reply.json()["id"], "1", "{path}");
    }
    // An encoded slash stays inside the segment: this asks for user "1/x".
    let reply = gw.get("/v1/users/1%2Fx").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(
        reply.error().1.contains("user \"1/x\" not found"),
        "{}",
        reply.text()
    );
    let reply = gw.get("/v1/users/%00").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    gw.stop().await;
}

#[tokio::test]
async fn routes_can_be_limited_to_hosts_and_the_same_path_routed_per_host() {
    // users on api.example.com and any *.partners.example.com; a second
    // binding set of the same service, for any other host, that requires an API key.
    let demo = common::spawn_demo().await;
    let yaml = format!(
        r#"
listeners: [{{ address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
protos: {{ sources: ["{}"] }}
upstreams:
  users: {{ endpoints: ["{}"] }}
routes:
  - {{ name: public, service: demo.users.v1.UserService, upstream: users, hosts: [api.example.com, "*.partners.example.com"] }}
  - {{ name: other, service: demo.users.v1.UserService, upstream: users,
       plugins: [ {{ auth: {{ methods: [ {{ api_key: {{ keys: [ {{ consumer: x, sha256: a52782e3a2d4dd2f95f640b9abfb3b2a6b8e722c65f55be830f6e5f619f7f873 }} ] }} }} ] }} }} ] }}
"#,
        common::repo_root().join("proto").display(),
        demo.url(switchyard_demo::Service::Users)
    );
    let gw = TestGateway::start_yaml(demo, &yaml).await;
    for (host, want) in [
        ("api.example.com", StatusCode::OK),
        ("API.Example.com:8443", StatusCode::OK),
        ("eu.partners.example.com", StatusCode::OK),
        // Any other host falls to the route without `hosts`, which wants a key.
        ("partners.example.com", StatusCode::UNAUTHORIZED),
        ("evil.example.net", StatusCode::UNAUTHORIZED),
    ] {
        let reply = gw
            .send(Method::GET, "/v1/users/1", &[("host", host)], Bytes::new())
            .await;
        assert_eq!(reply.status, want, "{host}: {}", reply.text());
    }
    gw.stop().await;
}
