use std::sync::{Arc, Mutex};

use http::{HeaderMap, StatusCode, Uri, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use super::*;
use crate::stage::empty_body;

/// The lowercase hex SHA-256 of `key`, as `printf %s key | sha256sum` prints it.
pub(super) fn sha256_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the inner handler saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    uri: Uri,
    headers: HeaderMap,
    consumer: Option<Consumer>,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    fn handler(&self) -> HttpService {
        let seen = self.0.clone();
        HttpService::new(tower::service_fn(move |req: Request| {
            seen.lock().unwrap().push(Seen {
                uri: req.uri().clone(),
                headers: req.headers().clone(),
                consumer: req.extensions().get::<Consumer>().cloned(),
            });
            async { Ok::<_, Infallible>(Response::new(empty_body())) }
        }))
    }

    fn calls(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    fn only_call(&self) -> Seen {
        let calls = self.calls();
        assert_eq!(calls.len(), 1, "inner service calls");
        calls.into_iter().next().unwrap()
    }
}

fn parse(config: Value) -> AuthConfig {
    serde_json::from_value(config).unwrap()
}

async fn build_err(config: Value) -> String {
    match Auth::new(parse(config)).await {
        Ok(_) => panic!("expected a config error"),
        Err(e) => e.to_string(),
    }
}

async fn stack(config: Value) -> (HttpService, Recorder) {
    let recorder = Recorder::default();
    let plugin = Auth::new(parse(config)).await.unwrap();
    (plugin.wrap(recorder.handler()), recorder)
}

/// One `api_key` method on `x-api-key` with keys for acme and globex.
fn header_config() -> Value {
    json!({
        "methods": [{ "api_key": {
            "header": "x-api-key",
            "keys": [
                { "consumer": "acme", "sha256": sha256_hex("acme-key") },
                { "consumer": "globex", "sha256": sha256_hex("globex-key") },
            ],
        }}],
    })
}

fn request(uri: &str, headers: &[(&str, &str)]) -> Request {
    let mut builder = http::Request::builder().uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(empty_body()).unwrap()
}

async fn send(svc: &HttpService, req: Request) -> (StatusCode, HeaderMap, String) {
    let res = svc.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

fn challenges(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

fn status_json(body: &str) -> Value {
    serde_json::from_str(body).unwrap()
}

// --- api_key through the plugin ---

#[tokio::test]
async fn a_valid_key_reaches_the_handler_as_a_consumer_without_the_key() {
    let (svc, recorder) = stack(header_config()).await;
    let req = request(
        "/v1/users/1",
        &[("x-api-key", "globex-key"), ("accept", "application/json")],
    );
    let (status, _, _) = send(&svc, req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = recorder.only_call();
    assert_eq!(seen.consumer, Some(Consumer("globex".into())));
    assert!(
        seen.headers.get("x-api-key").is_none(),
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.headers["accept"], "application/json");
    assert_eq!(seen.uri, "/v1/users/1");
}

#[tokio::test]
async fn a_wrong_key_is_401_with_a_challenge_and_never_reaches_the_handler() {
    let (svc, recorder) = stack(header_config()).await;
    let req = request("/v1/users/1", &[("x-api-key", "acme-kez")]);
    let (status, headers, body) = send(&svc, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenges(&headers), ["ApiKey header=\"x-api-key\""]);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        status_json(&body),
        json!({"code": 16, "message": "unauthenticated: invalid credentials", "details": []})
    );
    assert!(!body.contains("acme"), "{body}");
    assert!(recorder.calls().is_empty());
}

#[tokio::test]
async fn a_missing_or_empty_key_is_401_missing_credentials() {
    let (svc, recorder) = stack(header_config()).await;
    for req in [
        request("/v1/users/1", &[]),
        request("/v1/users/1", &[("x-api-key", "")]),
    ] {
        let (status, headers, body) = send(&svc, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(challenges(&headers), ["ApiKey header=\"x-api-key\""]);
        assert_eq!(
            status_json(&body)["message"],
            "unauthenticated: missing credentials"
        );
    }
    assert!(recorder.calls().is_empty());
}

#[tokio::test]
async fn the_key_sent_twice_is_refused() {
    let (svc, recorder) = stack(header_config()).await;
    let req = request(
        "/",
        &[("x-api-key", "acme-key"), ("x-api-key", "globex-key")],
    );
    let (status, _, body) = send(&svc, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status_json(&body)["message"],
        "unauthenticated: invalid credentials"
    );
    assert!(recorder.calls().is_empty());
}

#[tokio::test]
async fn a_key_in_the_query_is_read_and_stripped_from_the_uri() {
    let (svc, recorder) = stack(json!({
        "methods": [{ "api_key": {
            "query": "api_key",
            "keys": [{ "consumer": "acme", "sha256": sha256_hex("a+b/c") }],
        }}],
    }))
    .await;
    let req = request("/v1/users/1?view=full&api_key=a%2Bb%2Fc&page=2", &[]);
    let (status, _, _) = send(&svc, req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = recorder.only_call();
    assert_eq!(seen.uri, "/v1/users/1?view=full&page=2");
    assert_eq!(seen.consumer, Some(Consumer("acme".into())));

    // The query is the only place read: the default header is not.
    let req = request("/v1/users/1", &[("x-api-key", "a+b/c")]);
    let (status, headers, body) = send(&svc, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenges(&headers), ["ApiKey query=\"api_key\""]);
    assert_eq!(
        status_json(&body)["message"],
        "unauthenticated: missing credentials"
    );

    let req = request("/v1/users/1?api_key=wrong", &[]);
    let (status, _, body) = send(&svc, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.contains("wrong"), "{body}");
    assert_eq!(recorder.calls().len(), 1);
}

#[tokio::test]
async fn with_header_and_query_both_are_stripped() {
    let (svc, recorder) = stack(json!({
        "methods": [{ "api_key": {
            "header": "x-api-key",
            "query": "api_key",
            "keys": [{ "consumer": "acme", "sha256": sha256_hex("acme-key") }],
        }}],
    }))
    .await;
    let req = request("/v1/x?api_key=whatever", &[("x-api-key", "acme-key")]);
    let (status, _, _) = send(&svc, req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = recorder.only_call();
    assert_eq!(seen.uri, "/v1/x");
    assert!(seen.headers.get("x-api-key").is_none());
}

#[tokio::test]
async fn keys_from_a_file_authenticate() {
    let path = std::env::temp_dir().join(format!(
        "switchyard-auth-{}-plugin.keys",
        std::process::id()
    ));
    std::fs::write(
        &path,
        format!("# partners\ninitech:{}\n", sha256_hex("initech-key")),
    )
    .unwrap();
    let mut config = header_config();
    config["methods"][0]["api_key"]["keys_file"] = json!(path);
    let built = stack(config).await;
    std::fs::remove_file(&path).ok();
    let (svc, recorder) = built;
    for (key, consumer) in [("initech-key", "initech"), ("acme-key", "acme")] {
        let (status, _, _) = send(&svc, request("/", &[("x-api-key", key)])).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            recorder.calls().last().unwrap().consumer,
            Some(Consumer(consumer.into()))
        );
    }
}

// --- allow rules ---

#[tokio::test]
async fn a_consumer_not_allowed_is_403_permission_denied() {
    let mut config = header_config();
    config["allow"] = json!({ "consumers": ["acme"] });
    let (svc, recorder) = stack(config).await;

    let (status, headers, body) = send(&svc, request("/", &[("x-api-key", "globex-key")])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(headers.get(header::WWW_AUTHENTICATE).is_none());
    assert_eq!(
        status_json(&body),
        json!({"code": 7, "message": "permission denied", "details": []})
    );
    assert!(recorder.calls().is_empty());

    let (status, _, _) = send(&svc, request("/", &[("x-api-key", "acme-key")])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(recorder.only_call().consumer, Some(Consumer("acme".into())));

    // Unauthenticated is still 401, not 403.
    let (status, _, _) = send(&svc, request("/", &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

// --- several methods ---

/// Two `api_key` methods: `x-api-key` (acme, globex) then `x-client-key`
/// (mobile).
fn two_methods(mode: &str) -> Value {
    json!({
        "mode": mode,
        "methods": [
            { "api_key": {
                "keys": [
                    { "consumer": "acme", "sha256": sha256_hex("acme-key") },
                    { "consumer": "globex", "sha256": sha256_hex("globex-key") },
                ],
            }},
            { "api_key": {
                "header": "x-client-key",
                "keys": [{ "consumer": "mobile", "sha256": sha256_hex("mobile-key") }],
            }},
        ],
    })
}

#[tokio::test]
async fn mode_all_requires_every_method() {
    let (svc, recorder) = stack(two_methods("all")).await;

    let both = request(
        "/",
        &[("x-api-key", "acme-key"), ("x-client-key", "mobile-key")],
    );
    let (status, _, _) = send(&svc, both).await;
    assert_eq!(status, StatusCode::OK);
    let seen = recorder.only_call();
    assert_eq!(
        seen.consumer,
        Some(Consumer("acme".into())),
        "first method names the consumer"
    );
    assert!(seen.headers.get("x-api-key").is_none());
    assert!(seen.headers.get("x-client-key").is_none());

    let cases = [
        (vec![("x-api-key", "acme-key")], "missing credentials"),
        (vec![("x-client-key", "mobile-key")], "missing credentials"),
        (
            vec![("x-api-key", "acme-key"), ("x-client-key", "nope")],
            "invalid credentials",
        ),
        (vec![("x-api-key", "nope")], "invalid credentials"),
        (vec![], "missing credentials"),
    ];
    for (headers, message) in cases {
        let (status, response_headers, body) = send(&svc, request("/", &headers)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert_eq!(
            status_json(&body)["message"],
            format!("unauthenticated: {message}"),
            "{headers:?}"
        );
        assert_eq!(
            challenges(&response_headers),
            [
                "ApiKey header=\"x-api-key\"",
                "ApiKey header=\"x-client-key\""
            ]
        );
    }
    assert_eq!(recorder.calls().len(), 1);
}

#[tokio::test]
async fn first_match_takes_the_first_method_that_authenticates() {
    let (svc, recorder) = stack(two_methods("first_match")).await;

    let second = request("/", &[("x-client-key", "mobile-key")]);
    assert_eq!(send(&svc, second).await.0, StatusCode::OK);
    assert_eq!(
        recorder.calls()[0].consumer,
        Some(Consumer("mobile".into()))
    );

    // A wrong first credential does not stop a valid second one; both are
    // stripped.
    let wrong_then_right = request(
        "/",
        &[("x-api-key", "nope"), ("x-client-key", "mobile-key")],
    );
    assert_eq!(send(&svc, wrong_then_right).await.0, StatusCode::OK);
    let seen = &recorder.calls()[1];
    assert_eq!(seen.consumer, Some(Consumer("mobile".into())));
    assert!(seen.headers.get("x-api-key").is_none());
    assert!(seen.headers.get("x-client-key").is_none());

    // Both valid: the first listed wins.
    let both = request(
        "/",
        &[("x-api-key", "globex-key"), ("x-client-key", "mobile-key")],
    );
    assert_eq!(send(&svc, both).await.0, StatusCode::OK);
    assert_eq!(
        recorder.calls()[2].consumer,
        Some(Consumer("globex".into()))
    );

    let wrong = request("/", &[("x-client-key", "nope")]);
    let (status, headers, body) = send(&svc, wrong).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenges(&headers).len(), 2);
    assert_eq!(
        status_json(&body)["message"],
        "unauthenticated: invalid credentials"
    );
    assert_eq!(recorder.calls().len(), 3);
}

#[tokio::test]
async fn identical_challenges_are_sent_once() {
    let (_, headers, _) = {
        let (svc, _) = stack(json!({
            "methods": [
                { "api_key": { "keys": [{ "consumer": "a", "sha256": sha256_hex("1") }] } },
                { "api_key": { "keys": [{ "consumer": "b", "sha256": sha256_hex("2") }] } },
            ],
        }))
        .await;
        send(&svc, request("/", &[])).await
    };
    assert_eq!(challenges(&headers), ["ApiKey header=\"x-api-key\""]);
}

// --- config ---

#[test]
fn the_yaml_shape_parses() {
    let config = parse(header_config());
    assert_eq!(config.mode, Mode::FirstMatch);
    assert!(config.allow.is_none());
    let MethodConfig::ApiKey(api_key) = &config.methods[0] else {
        panic!("expected api_key");
    };
    assert_eq!(api_key.header.as_deref(), Some("x-api-key"));
    assert_eq!(api_key.keys[1].consumer, "globex");

    let config = parse(json!({
        "methods": [{ "api_key": { "query": "api_key", "keys_file": "/etc/keys" } }],
        "mode": "all",
        "allow": { "consumers": ["acme"] },
    }));
    assert_eq!(config.mode, Mode::All);
    assert_eq!(
        config.allow.unwrap().consumers.unwrap(),
        vec!["acme".to_owned()]
    );
}

#[test]
fn unknown_fields_are_refused_at_every_level() {
    let bad = [
        json!({ "methods": [], "modes": "all" }),
        json!({ "methods": [{ "api_keys": {} }] }),
        json!({ "methods": [{ "api_key": { "headers": "x" } }] }),
        json!({ "methods": [{ "api_key": { "keys": [{ "consumer": "a", "sha256": "0", "key": "k" }] } }] }),
        json!({ "methods": [], "allow": { "scopes": ["x"] } }),
        json!({ "methods": [], "mode": "any" }),
    ];
    for config in bad {
        assert!(
            serde_json::from_value::<AuthConfig>(config.clone()).is_err(),
            "{config}"
        );
    }
}

#[test]
fn the_schema_documents_the_fields() {
    let schema = serde_json::to_string(&schemars::schema_for!(AuthConfig)).unwrap();
    for text in [
        "The authentication methods",
        "first_match",
        "keys_file",
        "printf %s",
    ] {
        assert!(schema.contains(text), "schema lacks {text:?}: {schema}");
    }
}

#[tokio::test]
async fn config_errors_are_clear() {
    assert_eq!(
        build_err(json!({ "methods": [] })).await,
        "plugin `auth`: `methods` is empty: list at least one authentication method"
    );
    let mut config = header_config();
    config["allow"] = json!({});
    assert!(build_err(config).await.contains("`allow` sets no rule"));
    let mut config = header_config();
    config["allow"] = json!({ "consumers": [] });
    assert!(
        build_err(config)
            .await
            .contains("`allow.consumers` is empty")
    );
    let err = build_err(json!({
        "methods": [
            { "api_key": { "keys": [{ "consumer": "a", "sha256": sha256_hex("1") }] } },
            { "api_key": { "keys": [{ "consumer": "b", "sha256": "not hex" }] } },
        ],
    }))
    .await;
    assert!(
        err.starts_with("plugin `auth`: methods[1].api_key: keys[0] (consumer `b`): `sha256` must be 64 hex digits"),
        "{err}"
    );
    let err = build_err(json!({ "methods": [{ "api_key": { "header": "x-api-key" } }] })).await;
    assert_eq!(
        err,
        "plugin `auth`: methods[0].api_key: no keys: set `keys` and/or `keys_file`"
    );
}

#[test]
fn the_example_config_holds_the_digest_of_its_demo_key() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/examples/api-keys.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let digest = sha256_hex("demo-key-123");
    assert!(
        text.contains(&format!("sha256: {digest}")),
        "{path} should list the digest of demo-key-123 ({digest})"
    );
    assert!(text.contains("printf %s 'the-key' | sha256sum"));
}
