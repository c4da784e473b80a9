//! Paths: however a client spells a path (dot segments, doubled or encoded
//! slashes, escapes of ordinary letters, backslashes, `;` parameters,
//! overlong UTF-8), it reaches the route, and so the auth, that its one
//! normal form names, or none (the rule is in
//! `gateway/src/routing/normalize.rs` and docs/security.md). Neither a
//! route's auth nor the admin token can be stepped around by an encoding.

use crate::QUIET;
use crate::common::{self, TestGateway};
use crate::raw::exchange;

/// Every demo route wants this API key.
const KEY_PLUGIN: &str = ", plugins: [ { auth: { methods: [ { api_key: { header: x-api-key, keys: [ { consumer: partner, sha256: a52782e3a2d4dd2f95f640b9abfb3b2a6b8e722c65f55be830f6e5f619f7f873 } ] } } ] } } ]";
const KEY: &str = "demo-key-123";

/// Spellings of `/v1/users/1` that normalise to it.
const SAME_PATH: &[&str] = &[
    "/v1/users/1",
    "//v1//users/1",
    "/v1/./users/1",
    "/v1/orders/../users/1",
    "/v1/%2e%2e/v1/users/1",
    "/v1/%2E/users/1",
    "/v1/us%65rs/1",
    "/v1/%75%73%65%72%73/1",
    "/../../v1/users/1",
];

/// Spellings that must not reach user 1 at all: an encoded slash or
/// backslash is a character of its segment, a `;` parameter is part of its
/// segment, overlong UTF-8 is not a dot, and case matters.
const OTHER_PATH: &[&str] = &[
    "/v1%2Fusers/1",
    "/v1/users%2F1",
    "/v1%5Cusers/1",
    "/v1\\users/1",
    "/v1/users;x=1/1",
    "/v1;/users/1",
    "/v1/%c0%ae%c0%ae/v1/users/1",
    "/v1/%e0%80%ae/users/1",
    "/V1/users/1",
    "/v1/users/1%00",
    "/v1/üsers/1",
];

async fn get(gw: &TestGateway, path: &str, key: Option<&str>) -> (u16, String) {
    let key = key.map_or_else(String::new, |k| format!("x-api-key: {k}\r\n"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{key}\r\n");
    let got = exchange(gw.addr, request.as_bytes(), QUIET).await;
    let reply = got.only();
    (reply.status, reply.text())
}

#[tokio::test]
async fn no_spelling_of_a_path_steps_around_its_routes_auth() {
    let gw = TestGateway::demo_with(KEY_PLUGIN, "").await;
    for path in SAME_PATH.iter().chain(OTHER_PATH) {
        let (status, body) = get(&gw, path, None).await;
        assert!(
            [400, 401, 404].contains(&status),
            "{path} without a key answered {status}: {body}"
        );
    }
    assert_eq!(gw.upstream_calls(), 0, "a call passed without the key");
    // With the key, the same spellings reach user 1, and the others do not.
    for path in SAME_PATH {
        let (status, body) = get(&gw, path, Some(KEY)).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.contains(r#""id":"1""#), "{path}: {body}");
    }
    for path in OTHER_PATH {
        let (_, body) = get(&gw, path, Some(KEY)).await;
        assert!(
            !body.contains("Ada Lovelace"),
            "{path} reached user 1: {body}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn no_spelling_of_an_admin_path_steps_around_the_admin_token() {
    let demo = common::spawn_demo().await;
    let yaml = common::demo_config(&demo, "", "").replace(
        "admin: { address: \"127.0.0.1:0\" }",
        "admin: { address: \"127.0.0.1:0\", token: \"an-admin-token-of-some-length\" }",
    );
    let gw = TestGateway::start_yaml(demo, &yaml).await;
    for path in [
        "/admin/config",
        "//admin/config",
        "/admin//config",
        "/%61dmin/config",
        "/admin/%63onfig",
        "/admin%2Fconfig",
        "/healthz/../admin/config",
        "/readyz/%2e%2e/admin/config",
        "/healthz%2F..%2Fadmin/config",
        "/./admin/config",
        "/metrics",
        "/metrics/",
        "/%6detrics",
        "/admin/events",
        "/admin/events/dead-letters",
    ] {
        for method in ["GET", "POST", "HEAD"] {
            let request =
                format!("{method} {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
            let got = exchange(gw.admin, request.as_bytes(), QUIET).await;
            let status = got.only().status;
            assert_eq!(
                status, 401,
                "{method} {path} without the token answered {status}"
            );
        }
    }
    // The probes stay open, under their exact names only.
    let got = exchange(gw.admin, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", QUIET).await;
    assert_eq!(got.statuses(), [200]);
    gw.stop().await;
}
