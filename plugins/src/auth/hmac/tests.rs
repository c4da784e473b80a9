//! The `hmac` method, through the `auth` plugin.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use super::super::{Auth, AuthConfig};
use super::*;
use crate::registry::Plugin;
use crate::stage::{Consumer, HttpService, Request, Response, empty_body, full_body};

/// The worked example of `docs/partner-signing.md`.
mod example;

const SECRET_A: &str = "partner-a-secret-0123456789abcdef-0001";
const SECRET_B: &str = "partner-b-secret-0123456789abcdef-0002";
const NOW: u64 = 1_800_000_000;

/// What the upstream saw.
#[derive(Clone, Debug)]
struct Seen {
    consumer: Option<Consumer>,
    headers: HeaderMap,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn set_now(now: u64) {
    FAKE_NOW.with(|n| n.set(Some(now)));
}

fn keys_config(extra: Value) -> Value {
    let mut hmac = json!({ "keys": [
        { "id": "partner-a", "consumer": "partner-a", "secret": SECRET_A },
        { "id": "partner-b", "consumer": "partner-b", "secret": SECRET_B },
    ]});
    if let (Some(hmac), Some(extra)) = (hmac.as_object_mut(), extra.as_object()) {
        hmac.extend(extra.clone());
    }
    json!({ "methods": [{ "hmac": hmac }] })
}

async fn stack(config: Value) -> (HttpService, Log) {
    set_now(NOW);
    let log = Log::default();
    let seen = log.clone();
    let handler = HttpService::new(tower::service_fn(move |req: Request| {
        let seen = seen.clone();
        async move {
            let consumer = req.extensions().get::<Consumer>().cloned();
            let headers = req.headers().clone();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            seen.lock().unwrap().push(Seen {
                consumer,
                headers,
                body,
            });
            Ok::<_, Infallible>(Response::new(empty_body()))
        }
    }));
    let config: AuthConfig = serde_json::from_value(config).unwrap();
    let plugin = Auth::new(config).await.unwrap();
    (plugin.wrap(handler), log)
}

async fn load_err(config: Value) -> String {
    let config: AuthConfig = serde_json::from_value(config).unwrap();
    match Auth::new(config).await {
        Ok(_) => panic!("expected a config error"),
        Err(e) => e.to_string(),
    }
}

fn mac_hex(secret: &str, string_to_sign: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(string_to_sign.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// The four signing headers for `method uri` with `body`, as a partner computes them.
fn sign(
    method: &str,
    uri: &str,
    body: &[u8],
    id: &str,
    secret: &str,
    ts: u64,
) -> Vec<(HeaderName, String)> {
    let uri: http::Uri = uri.parse().unwrap();
    let content = hex(&Sha256::digest(body));
    let ts = ts.to_string();
    let sts = string_to_sign(method, uri.path(), uri.query(), &ts, &content);
    vec![
        (KEY_ID, id.to_owned()),
        (TIMESTAMP, ts),
        (CONTENT_SHA256, content),
        (SIGNATURE, format!("v1={}", mac_hex(secret, &sts))),
    ]
}

fn request(method: &str, uri: &str, body: &[u8], headers: &[(HeaderName, String)]) -> Request {
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder.body(full_body(body.to_vec())).unwrap()
}

/// A request signed by partner-a at `NOW`, sent as signed.
fn signed(method: &str, uri: &str, body: &[u8]) -> Request {
    request(
        method,
        uri,
        body,
        &sign(method, uri, body, "partner-a", SECRET_A, NOW),
    )
}

async fn call(service: &HttpService, request: Request) -> (StatusCode, String) {
    let response = service.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let message = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, message)
}

#[tokio::test]
async fn valid_signed_get_is_admitted_and_headers_are_stripped() {
    let (service, log) = stack(keys_config(json!({}))).await;
    let (status, _) = call(&service, signed("GET", "/v1/things?b=2&a=1", b"")).await;
    assert_eq!(status, StatusCode::OK);
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(seen.consumer, Some(Consumer("partner-a".into())));
    for name in [KEY_ID, TIMESTAMP, CONTENT_SHA256, SIGNATURE] {
        assert!(
            !seen.headers.contains_key(&name),
            "{name} reached the upstream"
        );
    }
}

#[tokio::test]
async fn valid_signed_post_passes_the_same_body_on() {
    let (service, log) = stack(keys_config(json!({}))).await;
    let body = br#"{"sku":"A-1","qty":2}"#;
    let (status, _) = call(&service, signed("POST", "/v1/orders", body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(log.lock().unwrap()[0].body, Bytes::from_static(body));
}

#[tokio::test]
async fn tampered_body_is_refused() {
    let (service, log) = stack(keys_config(json!({}))).await;
    let headers = sign(
        "POST",
        "/v1/orders",
        b"{\"qty\":2}",
        "partner-a",
        SECRET_A,
        NOW,
    );
    // Same headers, other body: the digest header no longer matches.
    let (status, message) = call(
        &service,
        request("POST", "/v1/orders", b"{\"qty\":9}", &headers),
    )
    .await;
    assert_eq!(
        (status, message.as_str()),
        (
            StatusCode::UNAUTHORIZED,
            "unauthenticated: invalid credentials"
        )
    );
    // Other body and its digest, old signature.
    let mut headers = headers;
    headers[2].1 = hex(&Sha256::digest(b"{\"qty\":9}"));
    let (status, _) = call(
        &service,
        request("POST", "/v1/orders", b"{\"qty\":9}", &headers),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn tampered_path_and_query_are_refused() {
    let (service, _) = stack(keys_config(json!({}))).await;
    let headers = sign(
        "GET",
        "/v1/accounts/1?limit=10",
        b"",
        "partner-a",
        SECRET_A,
        NOW,
    );
    for uri in [
        "/v1/accounts/2?limit=10",
        "/v1/accounts/1?limit=1000",
        "/v1/accounts/1",
        "/v1/accounts/%31?limit=10",
    ] {
        let (status, _) = call(&service, request("GET", uri, b"", &headers)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let (status, _) = call(
        &service,
        request("DELETE", "/v1/accounts/1?limit=10", b"", &headers),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn query_parameter_order_does_not_matter() {
    let (service, _) = stack(keys_config(json!({}))).await;
    let headers = sign(
        "GET",
        "/v1/search?q=x&page=2&a=%20",
        b"",
        "partner-a",
        SECRET_A,
        NOW,
    );
    let (status, _) = call(
        &service,
        request("GET", "/v1/search?a=%20&q=x&page=2", b"", &headers),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        canonical_query(Some("q=x&page=2&a=%20")),
        "a=%20&page=2&q=x"
    );
    assert_eq!(canonical_query(None), "");
}

#[tokio::test]
async fn timestamps_outside_the_window_are_refused_both_ways() {
    let (service, _) = stack(keys_config(json!({ "window": "5m" }))).await;
    for ts in [NOW - 301, NOW + 301] {
        let headers = sign("GET", "/v1/x", b"", "partner-a", SECRET_A, ts);
        let (status, message) = call(&service, request("GET", "/v1/x", b"", &headers)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{ts}");
        assert_eq!(message, format!("unauthenticated: {STALE}"));
    }
    for ts in [NOW - 300, NOW + 300] {
        let headers = sign("GET", "/v1/x", b"", "partner-a", SECRET_A, ts);
        let (status, _) = call(&service, request("GET", "/v1/x", b"", &headers)).await;
        assert_eq!(status, StatusCode::OK, "{ts}");
    }
}

#[tokio::test]
async fn a_replayed_signature_is_refused() {
    let (service, log) = stack(keys_config(json!({}))).await;
    let headers = sign("POST", "/v1/pay", b"{}", "partner-a", SECRET_A, NOW);
    let (status, _) = call(&service, request("POST", "/v1/pay", b"{}", &headers)).await;
    assert_eq!(status, StatusCode::OK);
    set_now(NOW + 60);
    let (status, message) = call(&service, request("POST", "/v1/pay", b"{}", &headers)).await;
    assert_eq!(
        (status, message.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthenticated: replayed")
    );
    assert_eq!(log.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_full_replay_cache_fails_closed_until_entries_expire() {
    let (service, _) = stack(keys_config(
        json!({ "replay_cache_size": 1, "window": "1m" }),
    ))
    .await;
    assert_eq!(
        call(&service, signed("GET", "/v1/a", b"")).await.0,
        StatusCode::OK
    );
    let (status, _) = call(&service, signed("GET", "/v1/b", b"")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    set_now(NOW + 61);
    let headers = sign("GET", "/v1/b", b"", "partner-a", SECRET_A, NOW + 61);
    assert_eq!(
        call(&service, request("GET", "/v1/b", b"", &headers))
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn unknown_key_id_and_wrong_secret_are_refused() {
    let (service, _) = stack(keys_config(json!({}))).await;
    let headers = sign("GET", "/v1/x", b"", "partner-z", SECRET_A, NOW);
    let (status, message) = call(&service, request("GET", "/v1/x", b"", &headers)).await;
    assert_eq!(
        (status, message.as_str()),
        (
            StatusCode::UNAUTHORIZED,
            "unauthenticated: invalid credentials"
        )
    );
    let headers = sign("GET", "/v1/x", b"", "partner-a", SECRET_B, NOW);
    assert_eq!(
        call(&service, request("GET", "/v1/x", b"", &headers))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn key_rotation_two_secrets_for_one_consumer() {
    let config = json!({ "methods": [{ "hmac": { "keys": [
        { "id": "partner-a-2025", "consumer": "partner-a", "secret": SECRET_A },
        { "id": "partner-a-2026", "consumer": "partner-a", "secret": SECRET_B },
    ]}}]});
    let (service, log) = stack(config).await;
    for (id, secret) in [("partner-a-2025", SECRET_A), ("partner-a-2026", SECRET_B)] {
        let headers = sign("GET", "/v1/x", b"", id, secret, NOW);
        assert_eq!(
            call(&service, request("GET", "/v1/x", b"", &headers))
                .await
                .0,
            StatusCode::OK,
            "{id}"
        );
    }
    let consumers: Vec<_> = log
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.consumer.clone())
        .collect();
    assert_eq!(consumers, vec![Some(Consumer("partner-a".into())); 2]);
    // The new id with the old secret is not a valid pair.
    let headers = sign("GET", "/v1/y", b"", "partner-a-2026", SECRET_A, NOW);
    assert_eq!(
        call(&service, request("GET", "/v1/y", b"", &headers))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn malformed_or_missing_headers() {
    let (service, _) = stack(keys_config(json!({}))).await;
    let (status, message) = call(&service, request("GET", "/v1/x", b"", &[])).await;
    assert_eq!(
        (status, message.as_str()),
        (
            StatusCode::UNAUTHORIZED,
            "unauthenticated: missing credentials"
        )
    );
    let good = sign("GET", "/v1/x", b"", "partner-a", SECRET_A, NOW);
    let upper = format!("v1={}", good[3].1[3..].to_uppercase());
    let ts_plus = format!("+{NOW}");
    for (i, bad) in [
        (3, upper.as_str()),
        (3, &good[3].1[3..]),
        (1, ts_plus.as_str()),
        (2, ""),
    ] {
        let mut headers = good.clone();
        headers[i].1 = bad.to_owned();
        let (status, message) = call(&service, request("GET", "/v1/x", b"", &headers)).await;
        assert_eq!(
            (status, message.as_str()),
            (
                StatusCode::UNAUTHORIZED,
                "unauthenticated: invalid credentials"
            ),
            "{bad}"
        );
    }
    let mut twice = good.clone();
    twice.push(good[3].clone());
    assert_eq!(
        call(&service, request("GET", "/v1/x", b"", &twice)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let mut no_ts = good.clone();
    no_ts.remove(1);
    assert_eq!(
        call(&service, request("GET", "/v1/x", b"", &no_ts)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn signed_bodies_over_max_body_get_413() {
    let (service, log) = stack(keys_config(json!({ "max_body": "16B" }))).await;
    let (status, _) = call(&service, signed("POST", "/v1/x", &[b'a'; 17])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        call(&service, signed("POST", "/v1/x", &[b'a'; 16])).await.0,
        StatusCode::OK
    );
    // Unsigned requests are not buffered, whatever their size.
    let (status, _) = call(&service, request("POST", "/v1/x", &[b'a'; 64], &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(log.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn config_errors_at_load() {
    let short = "only-31-bytes-long-secret-xxxxx";
    assert_eq!(short.len(), 31);
    let err = load_err(json!({ "methods": [{ "hmac": { "keys": [
        { "id": "partner-a", "consumer": "partner-a", "secret": short },
    ]}}]}))
    .await;
    assert!(err.contains("shorter than 32 bytes"), "{err}");
    assert!(!err.contains(short), "the secret leaked: {err}");
    let err = load_err(json!({ "methods": [{ "hmac": { "keys": [
        { "id": "k", "consumer": "a", "secret": SECRET_A },
        { "id": "k", "consumer": "b", "secret": SECRET_B },
    ]}}]}))
    .await;
    assert!(err.contains("listed twice"), "{err}");
    assert!(
        load_err(json!({ "methods": [{ "hmac": { "keys": [] } }] }))
            .await
            .contains("empty")
    );
    assert!(
        load_err(keys_config(json!({ "window": "2h" })))
            .await
            .contains("window")
    );
    assert!(
        load_err(keys_config(json!({ "replay_cache_size": 0 })))
            .await
            .contains("replay_cache_size")
    );
    assert!(
        load_err(keys_config(json!({ "max_body": "1TB" })))
            .await
            .contains("max_body")
    );
}
