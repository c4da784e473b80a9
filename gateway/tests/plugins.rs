//! Plugins through the real gateway: configured in YAML, applied per route.

mod common;

use bytes::Bytes;
use common::TestGateway;
use http::{Method, StatusCode};

#[tokio::test]
async fn options_on_an_existing_path_lists_its_methods() {
    let gw = TestGateway::demo().await;
    let reply = gw
        .send(Method::OPTIONS, "/v1/users/1", &[], Bytes::new())
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.headers["allow"], "GET, PATCH");
    let reply = gw
        .send(Method::OPTIONS, "/v2/nothing", &[], Bytes::new())
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    gw.stop().await;
}

#[tokio::test]
async fn cors_answers_preflights_and_marks_allowed_responses() {
    let gw = TestGateway::demo_with(
        "",
        "plugins: [ { cors: { allow_origins: [\"https://app.example.com\"], expose_headers: [x-request-id] } } ]",
    )
    .await;
    let preflight = gw
        .send(
            Method::OPTIONS,
            "/v1/orders",
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type"),
            ],
            Bytes::new(),
        )
        .await;
    assert!(preflight.status.is_success(), "{:?}", preflight.status);
    assert_eq!(
        preflight.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(
        preflight.headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );

    let reply = gw
        .send(
            Method::GET,
            "/v1/users/1",
            &[("origin", "https://app.example.com")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(
        reply.headers["access-control-expose-headers"],
        "x-request-id"
    );

    let reply = gw
        .send(
            Method::GET,
            "/v1/users/1",
            &[("origin", "https://evil.example.net")],
            Bytes::new(),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "CORS is the browser's check, not an access control"
    );
    assert!(reply.headers.get("access-control-allow-origin").is_none());
    gw.stop().await;
}

#[tokio::test]
async fn an_invalid_plugin_config_is_a_located_config_error() {
    let demo = common::spawn_demo().await;
    let yaml = common::demo_config(
        &demo,
        "",
        "plugins: [ { cors: { allow_origins: [\"*\"], allow_credentials: true } } ]",
    );
    let loaded =
        switchyard::config::parse(&common::repo_root().join("gateway.yaml"), yaml).unwrap();
    let err = switchyard::app::start(loaded).await.err().expect("refused");
    let text = err.to_string();
    assert!(text.contains("at `routes[0].plugins`"), "{text}");
    assert!(
        text.contains("plugin `cors`: allow_origins cannot be \"*\" with allow_credentials"),
        "{text}"
    );
}

/// sha256("demo-key-123") and sha256("other-key-456").
const DEMO_KEY_SHA: &str = "a52782e3a2d4dd2f95f640b9abfb3b2a6b8e722c65f55be830f6e5f619f7f873";

fn api_key_plugin(allow: &str) -> String {
    format!(
        ", plugins: [ {{ auth: {{ methods: [ {{ api_key: {{ header: x-api-key, query: api_key, keys: [ {{ consumer: demo-partner, sha256: {DEMO_KEY_SHA} }} ] }} }} ] {allow} }} }} ]"
    )
}

#[tokio::test]
async fn api_keys_guard_a_route_with_401_and_www_authenticate() {
    let gw = TestGateway::demo_with(&api_key_plugin(""), "").await;
    let reply = gw.get("/v1/users/1").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(
        reply.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("ApiKey"),
        "{:?}",
        reply.headers
    );
    assert_eq!(reply.error().0, 16);
    let reply = gw
        .send(
            Method::GET,
            "/v1/users/1",
            &[("x-api-key", "wrong")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(
        !reply.text().contains("wrong"),
        "the presented key is never echoed"
    );
    let reply = gw
        .send(
            Method::GET,
            "/v1/users/1",
            &[("x-api-key", "demo-key-123")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    // The query form, removed before transcoding (else `api_key` would be an unknown field: 400).
    let reply = gw.get("/v1/users?api_key=demo-key-123&pageSize=1").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    gw.stop().await;
}

#[tokio::test]
async fn an_authenticated_consumer_outside_the_allow_list_is_403() {
    let gw = TestGateway::demo_with(
        &api_key_plugin(", allow: { consumers: [someone-else] }"),
        "",
    )
    .await;
    let reply = gw
        .send(
            Method::GET,
            "/v1/users/1",
            &[("x-api-key", "demo-key-123")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.error().0, 7);
    gw.stop().await;
}
