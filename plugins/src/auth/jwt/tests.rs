//! The `jwt` method: claims, algorithms, key types, config refusals.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::auth::{Auth, AuthConfig};
use crate::registry::Plugin;
use crate::stage::{Consumer, HttpService, Request, Response, empty_body};

pub(super) const RSA_A: &str = include_str!("../../../tests/fixtures/jwt/rsa_a.key");
const RSA_A_PUB: &str = include_str!("../../../tests/fixtures/jwt/rsa_a.pub");
pub(super) const RSA_B: &str = include_str!("../../../tests/fixtures/jwt/rsa_b.key");
pub(super) const EC_A: &str = include_str!("../../../tests/fixtures/jwt/ec_a.key");
const ISS: &str = "https://idp.test";
const AUD: &str = "switchyard";
const SECRET: &str = "test-only-secret-0123456789abcdef0123";

pub(super) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(super) fn claims() -> Value {
    json!({ "sub": "alice", "iss": ISS, "aud": AUD, "exp": now() + 300,
            "email": "alice@example.test", "tier": 3 })
}

pub(super) fn rsa(pem: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()
}

pub(super) fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, key).unwrap()
}

fn b64url(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Builds `auth` with one `jwt` method; the handler records what it saw.
pub(super) async fn stack(
    jwt: Value,
) -> (HttpService, Arc<Mutex<Vec<(Option<Consumer>, HeaderMap)>>>) {
    let config: AuthConfig =
        serde_json::from_value(json!({ "methods": [{ "jwt": jwt }] })).unwrap();
    let plugin = Auth::new(config).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let handler = HttpService::new(tower::service_fn(move |req: Request| {
        let consumer = req.extensions().get::<Consumer>().cloned();
        log.lock().unwrap().push((consumer, req.headers().clone()));
        async { Ok::<_, Infallible>(Response::new(empty_body())) }
    }));
    (plugin.wrap(handler), seen)
}

async fn build_err(jwt: Value) -> String {
    let config: AuthConfig = match serde_json::from_value(json!({ "methods": [{ "jwt": jwt }] })) {
        Ok(config) => config,
        Err(e) => return e.to_string(),
    };
    match Auth::new(config).await {
        Ok(_) => panic!("expected a config error"),
        Err(e) => e.to_string(),
    }
}

pub(super) async fn call(service: &HttpService, token: &str, extra: &[(&str, &str)]) -> StatusCode {
    let mut builder = http::Request::get("/x").header("authorization", format!("Bearer {token}"));
    for (name, value) in extra {
        builder = builder.header(*name, *value);
    }
    let response = service
        .clone()
        .oneshot(builder.body(empty_body()).unwrap())
        .await
        .unwrap();
    response.status()
}

fn pem_config() -> Value {
    json!({ "issuer": ISS, "audiences": [AUD], "algorithms": ["RS256"], "keys": { "pem": RSA_A_PUB },
            "claims_to_metadata": { "sub": "x-user-id", "tier": "x-tier" } })
}

#[tokio::test]
async fn valid_token_sets_consumer_and_claim_headers_and_keeps_authorization() {
    let (service, seen) = stack(pem_config()).await;
    let token = sign(Algorithm::RS256, &rsa(RSA_A), None, &claims());
    // A client-sent x-user-id is replaced by the validated claim.
    assert_eq!(
        call(&service, &token, &[("x-user-id", "mallory")]).await,
        StatusCode::OK
    );
    let seen = seen.lock().unwrap();
    let (consumer, headers) = &seen[0];
    assert_eq!(consumer, &Some(Consumer("alice".into())));
    assert_eq!(
        headers.get_all("x-user-id").iter().collect::<Vec<_>>(),
        ["alice"]
    );
    assert_eq!(headers["x-tier"], "3");
    assert_eq!(headers["authorization"], format!("Bearer {token}").as_str());
}

#[tokio::test]
async fn invalid_tokens_are_refused() {
    let (service, seen) = stack(pem_config()).await;
    let key = rsa(RSA_A);
    let with = |patch: Value| {
        let mut c = claims();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(claims().to_string().as_bytes())
    );
    let cases = [
        (
            "expired",
            sign(
                Algorithm::RS256,
                &key,
                None,
                &with(json!({"exp": now() - 120})),
            ),
        ),
        (
            "nbf in future",
            sign(
                Algorithm::RS256,
                &key,
                None,
                &with(json!({"nbf": now() + 120})),
            ),
        ),
        (
            "no exp",
            sign(Algorithm::RS256, &key, None, &with(json!({"exp": null}))),
        ),
        (
            "wrong iss",
            sign(
                Algorithm::RS256,
                &key,
                None,
                &with(json!({"iss": "https://evil.test"})),
            ),
        ),
        (
            "no iss",
            sign(Algorithm::RS256, &key, None, &with(json!({"iss": null}))),
        ),
        (
            "wrong aud",
            sign(Algorithm::RS256, &key, None, &with(json!({"aud": "other"}))),
        ),
        (
            "no aud",
            sign(Algorithm::RS256, &key, None, &with(json!({"aud": null}))),
        ),
        (
            "no sub",
            sign(Algorithm::RS256, &key, None, &with(json!({"sub": null}))),
        ),
        (
            "other key",
            sign(Algorithm::RS256, &rsa(RSA_B), None, &claims()),
        ),
        ("alg none", none),
        (
            "HS256 with the public key as secret",
            sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(RSA_A_PUB.as_bytes()),
                None,
                &claims(),
            ),
        ),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    for (name, token) in cases {
        assert_eq!(
            call(&service, &token, &[]).await,
            StatusCode::UNAUTHORIZED,
            "{name}"
        );
    }
    // Within leeway (30s) still passes.
    let token = sign(
        Algorithm::RS256,
        &key,
        None,
        &with(json!({"exp": now() - 10})),
    );
    assert_eq!(call(&service, &token, &[]).await, StatusCode::OK);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn other_schemes_are_absent_and_challenge_is_bearer() {
    let (service, _) = stack(pem_config()).await;
    let request = http::Request::get("/x")
        .header("authorization", "Basic YTpi")
        .body(empty_body())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("missing credentials"));
}

#[tokio::test]
async fn hs256_secret_and_custom_header() {
    let (service, seen) = stack(
        json!({ "algorithms": ["HS256"], "keys": { "hs256_secret": SECRET },
        "header": "x-jwt", "consumer_claim": "email" }),
    )
    .await;
    let token = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        None,
        &claims(),
    );
    let request = http::Request::get("/x")
        .header("x-jwt", &token)
        .body(empty_body())
        .unwrap();
    assert_eq!(
        service.oneshot(request).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        seen.lock().unwrap()[0].0,
        Some(Consumer("alice@example.test".into()))
    );
}

#[tokio::test]
async fn unsafe_or_inconsistent_configs_are_refused() {
    let cases = [
        (
            json!({ "algorithms": ["RS256", "HS256"], "keys": { "pem": RSA_A_PUB } }),
            "HS256",
        ),
        (
            json!({ "algorithms": ["ES256"], "keys": { "pem": RSA_A_PUB } }),
            "ES256",
        ),
        (
            json!({ "algorithms": ["HS256"], "keys": { "jwks": "http://127.0.0.1:1/jwks" } }),
            "HMAC",
        ),
        (
            json!({ "algorithms": ["RS256"], "keys": { "hs256_secret": SECRET } }),
            "only HS256",
        ),
        (
            json!({ "algorithms": ["HS256"], "keys": { "hs256_secret": "short" } }),
            "at least 32",
        ),
        (
            json!({ "algorithms": [], "keys": { "pem": RSA_A_PUB } }),
            "empty",
        ),
        (
            json!({ "algorithms": ["none"], "keys": { "pem": RSA_A_PUB } }),
            "unknown variant",
        ),
        (json!({ "keys": { "pem": RSA_A_PUB } }), "algorithms"),
        (
            json!({ "algorithms": ["RS256"], "keys": {} }),
            "exactly one",
        ),
        (
            json!({ "algorithms": ["RS256"], "keys": { "pem": RSA_A_PUB, "hs256_secret": SECRET } }),
            "exactly one",
        ),
        (
            json!({ "algorithms": ["RS256"], "keys": { "pem": RSA_A_PUB, "refresh": "1m" } }),
            "only applies",
        ),
        (
            json!({ "algorithms": ["RS256"], "keys": { "jwks": "ftp://idp.test/jwks" } }),
            "must be an absolute https:// (or http://) URL",
        ),
        (
            json!({ "algorithms": ["RS256"], "keys": { "jwks": "https://idp.test/jwks", "jwks_ca_file": "/nonexistent/ca.pem" } }),
            "`keys.jwks_ca_file` /nonexistent/ca.pem",
        ),
        (
            json!({ "algorithms": ["RS256"], "keys": { "pem": RSA_A_PUB, "jwks_ca_file": "ca.pem" } }),
            "`keys.jwks_ca_file` only applies to `jwks`",
        ),
        (
            json!({ "algorithms": ["RS256"], "keys": { "pem": "nope" } }),
            "PEM",
        ),
        (
            json!({ "algorithms": ["RS256"], "keys": { "pem": RSA_A_PUB }, "leeway": "soon" }),
            "leeway",
        ),
    ];
    for (config, expected) in cases {
        let err = build_err(config.clone()).await;
        assert!(err.contains(expected), "{config}: {err}");
    }
}
