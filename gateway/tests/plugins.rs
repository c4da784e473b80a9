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

#[tokio::test]
async fn a_local_rate_limit_answers_429_with_retry_after_and_ratelimit_headers() {
    let gw = TestGateway::demo_with(
        ", plugins: [ { rate_limit: { name: per-client, rate: 3/min, key: [client_ip] } } ]",
        "",
    )
    .await;
    for remaining in ["2", "1", "0"] {
        let reply = gw.get("/v1/users/1").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let quota = reply.headers["ratelimit"].to_str().unwrap();
        assert!(
            quota.starts_with(&format!("\"per-client\";r={remaining};t=")),
            "{quota}"
        );
    }
    let reply = gw.get("/v1/users/1").await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.error().0, 8);
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "retry-after {retry}");
    assert_eq!(reply.headers["ratelimit-policy"], "\"per-client\";q=3;w=60");
    // Another route has its own limit.
    assert_eq!(gw.get("/v1/orders/1").await.status, StatusCode::OK);
    gw.stop().await;
}

#[tokio::test]
async fn rate_limits_key_on_the_consumer_named_by_auth() {
    let plugins = format!(
        ", plugins: [ {{ auth: {{ methods: [ {{ api_key: {{ keys: [ {{ consumer: demo-partner, sha256: {DEMO_KEY_SHA} }} ] }} }} ] }} }}, {{ rate_limit: {{ rate: 2/min, key: [consumer] }} }} ]"
    );
    let gw = TestGateway::demo_with(&plugins, "").await;
    let with_key = [("x-api-key", "demo-key-123")];
    for _ in 0..2 {
        let reply = gw
            .send(Method::GET, "/v1/users/1", &with_key, Bytes::new())
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let reply = gw
        .send(Method::GET, "/v1/users/1", &with_key, Bytes::new())
        .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    gw.stop().await;
}

/// An HS256 token signed with `secret`, for the JWT tests below.
fn hs256_token(secret: &[u8], claims: &serde_json::Value) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let signing_input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()))
}

#[tokio::test]
async fn jwt_bearer_tokens_are_checked_and_name_the_consumer() {
    let secret = "a-test-only-secret-of-at-least-32-bytes!";
    let plugins = format!(
        ", plugins: [ {{ auth: {{ methods: [ {{ jwt: {{ issuer: https://id.example.test, audiences: [demo], algorithms: [HS256], keys: {{ hs256_secret: \"{secret}\" }} }} }} ] }} }}, {{ rate_limit: {{ rate: 100/s, key: [consumer] }} }} ]"
    );
    let gw = TestGateway::demo_with(&plugins, "").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good = hs256_token(
        secret.as_bytes(),
        &serde_json::json!({"iss": "https://id.example.test", "aud": "demo", "sub": "user-7", "exp": now + 300}),
    );
    let bearer = format!("Bearer {good}");
    let reply = gw
        .send(
            Method::GET,
            "/v1/users/1",
            &[("authorization", &bearer)],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    let expired = hs256_token(
        secret.as_bytes(),
        &serde_json::json!({"iss": "https://id.example.test", "aud": "demo", "sub": "user-7", "exp": now - 3600}),
    );
    let wrong_aud = hs256_token(
        secret.as_bytes(),
        &serde_json::json!({"iss": "https://id.example.test", "aud": "other", "sub": "user-7", "exp": now + 300}),
    );
    let forged = hs256_token(
        b"not-the-secret-not-the-secret-not-the",
        &serde_json::json!({"iss": "https://id.example.test", "aud": "demo", "sub": "user-7", "exp": now + 300}),
    );
    for token in [expired, wrong_aud, forged, "not.a.jwt".to_owned()] {
        let bearer = format!("Bearer {token}");
        let reply = gw
            .send(
                Method::GET,
                "/v1/users/1",
                &[("authorization", &bearer)],
                Bytes::new(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{token}");
        assert!(
            reply.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn jwt_allow_rules_on_scopes_and_claims_are_403_and_limits_key_on_a_claim() {
    let secret = "a-test-only-secret-of-at-least-32-bytes!";
    let plugins = format!(
        ", plugins: [ {{ auth: {{ methods: [ {{ jwt: {{ algorithms: [HS256], keys: {{ hs256_secret: \"{secret}\" }} }} }} ], allow: {{ scopes: [users:read], claims: {{ tenant: [acme, globex], tier: [2, 3] }} }} }} }}, {{ rate_limit: {{ rate: 1/min, key: [{{ claim: tenant }}] }} }} ]"
    );
    let gw = TestGateway::demo_with(&plugins, "").await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let gw_ref = &gw;
    let get = |claims: serde_json::Value| {
        let bearer = format!("Bearer {}", hs256_token(secret.as_bytes(), &claims));
        async move {
            gw_ref
                .send(
                    Method::GET,
                    "/v1/users/1",
                    &[("authorization", &bearer)],
                    Bytes::new(),
                )
                .await
        }
    };
    let acme = serde_json::json!({"sub": "user-7", "exp": exp, "tenant": "acme", "tier": 2, "scope": "profile users:read"});
    let reply = get(acme).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    // Authenticated but refused: a scope or a claim value missing.
    for claims in [
        serde_json::json!({"sub": "user-8", "exp": exp, "tenant": "acme", "tier": 2, "scope": "profile"}),
        serde_json::json!({"sub": "user-8", "exp": exp, "tenant": "initech", "tier": 2, "scope": "users:read"}),
        serde_json::json!({"sub": "user-8", "exp": exp, "tenant": "acme", "scp": ["users:read"]}),
    ] {
        let reply = get(claims.clone()).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{claims}");
        assert_eq!(
            reply.error(),
            (7, "permission denied".to_owned()),
            "the refused rule is not named"
        );
        assert!(reply.headers.get("www-authenticate").is_none());
    }

    // The limit counts per tenant, whoever the user: acme's one request is
    // spent (the 403s above spent none), globex's is not.
    let other_acme_user = serde_json::json!({"sub": "user-9", "exp": exp, "tenant": "acme", "tier": 3, "scp": ["users:read"]});
    assert_eq!(
        get(other_acme_user).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let globex = serde_json::json!({"sub": "user-9", "exp": exp, "tenant": "globex", "tier": 3, "scp": "users:read"});
    let reply = get(globex).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    gw.stop().await;
}

#[tokio::test]
async fn header_edits_apply_to_responses_including_errors() {
    let gw = TestGateway::demo_with(
        ", plugins: [ { headers: { response: { set: { cache-control: no-store } } } } ]",
        "",
    )
    .await;
    let ok = gw.get("/v1/users/1").await;
    assert_eq!(ok.headers["cache-control"], "no-store");
    let not_found = gw.get("/v1/users/999").await;
    assert_eq!(not_found.status, StatusCode::NOT_FOUND);
    assert_eq!(not_found.headers["cache-control"], "no-store");
    gw.stop().await;
}

/// The headers of an HMAC-signed request (docs/partner-signing.md).
fn hmac_headers(
    secret: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Vec<(String, String)> {
    use hmac::Mac as _;
    use sha2::Digest as _;
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_unstable();
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let digest = hex(&sha2::Sha256::digest(body));
    let to_sign = format!(
        "{method}\n{path}\n{}\n{timestamp}\n{digest}",
        pairs.join("&")
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(to_sign.as_bytes());
    vec![
        ("x-sy-key-id".into(), "partner-a".into()),
        ("x-sy-timestamp".into(), timestamp),
        ("x-sy-content-sha256".into(), digest),
        (
            "x-sy-signature".into(),
            format!("v1={}", hex(&mac.finalize().into_bytes())),
        ),
    ]
}

#[tokio::test]
async fn hmac_signed_partner_requests_are_accepted_once_and_tampering_is_refused() {
    let secret = "a-test-only-partner-secret-32-bytes-min";
    let gw = TestGateway::demo_with(
        &format!(", plugins: [ {{ auth: {{ methods: [ {{ hmac: {{ keys: [ {{ id: partner-a, consumer: partner-a, secret: \"{secret}\" }} ] }} }} ] }} }} ]"),
        "",
    )
    .await;
    let body = br#"{"userId":"1","items":[{"sku":"A-1","qty":1}]}"#;
    let signed = hmac_headers(secret, "POST", "/v1/orders", body);
    let mut headers: Vec<(&str, &str)> = signed
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    headers.push(("content-type", "application/json"));
    let reply = gw
        .send(
            Method::POST,
            "/v1/orders",
            &headers,
            Bytes::from_static(body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json()["userId"],
        "1",
        "the upstream got the signed body"
    );
    // The same signature again is a replay.
    let replay = gw
        .send(
            Method::POST,
            "/v1/orders",
            &headers,
            Bytes::from_static(body),
        )
        .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    // A fresh signature over a different body than the one sent.
    let signed = hmac_headers(secret, "POST", "/v1/orders", body);
    let mut headers: Vec<(&str, &str)> = signed
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    headers.push(("content-type", "application/json"));
    let tampered = br#"{"userId":"2","items":[{"sku":"A-1","qty":9}]}"#;
    let reply = gw
        .send(
            Method::POST,
            "/v1/orders",
            &headers,
            Bytes::from_static(tampered),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // The signature is over the path as sent, before the gateway normalises it.
    let signed = hmac_headers(secret, "GET", "/v1//orders/1", b"");
    let headers: Vec<(&str, &str)> = signed
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let reply = gw
        .send(Method::GET, "/v1//orders/1", &headers, Bytes::new())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    gw.stop().await;
}

#[tokio::test]
async fn a_relative_keys_file_is_read_from_the_config_files_directory() {
    let dir = std::env::temp_dir().join(format!("sy-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("partner-keys.txt"),
        format!("# consumer:sha256\ndemo-partner:{DEMO_KEY_SHA}\n"),
    )
    .unwrap();
    let demo = common::spawn_demo().await;
    let yaml = common::demo_config(
        &demo,
        ", plugins: [ { auth: { methods: [ { api_key: { keys_file: partner-keys.txt } } ] } } ]",
        "",
    );
    let config = dir.join("gateway.yaml");
    std::fs::write(&config, yaml).unwrap();
    let loaded = switchyard::config::load(&config).unwrap();
    let running = switchyard::app::start(loaded)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_dir_all(&dir).ok();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<Bytes>>();
    let req = http::Request::get(format!("http://{}/v1/users/1", running.listeners[0]))
        .header("x-api-key", "demo-key-123")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(client.request(req).await.unwrap().status(), StatusCode::OK);
    running.stop().await;
}

#[tokio::test]
async fn a_route_plugin_replaces_the_top_level_default_of_the_same_name() {
    // Default: 1 request per minute; the users route overrides it with 100/min.
    let demo = common::spawn_demo().await;
    let mut yaml = common::demo_config(&demo, "", "plugins: [ { rate_limit: { rate: 1/min } } ]");
    yaml = yaml.replacen(
        "upstream: users ",
        "upstream: users, plugins: [ { rate_limit: { rate: 100/min } } ] ",
        1,
    );
    let gw = TestGateway::start_yaml(demo, &yaml).await;
    for _ in 0..3 {
        assert_eq!(gw.get("/v1/users/1").await.status, StatusCode::OK);
    }
    assert_eq!(gw.get("/v1/orders/1").await.status, StatusCode::OK);
    assert_eq!(
        gw.get("/v1/orders/1").await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the default still applies elsewhere"
    );
    gw.stop().await;
}
