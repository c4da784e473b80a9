//! The `auth` plugin as a whole: methods through the stage, `allow` rules,
//! how several methods combine, and the config. Each method's own checks are
//! tested next to it (`api_key/tests.rs`, `jwt/tests.rs`, `hmac/tests.rs`).

use std::sync::{Arc, Mutex};

use http::{HeaderMap, StatusCode, Uri, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use super::*;
use crate::stage::empty_body;

mod allow;
mod api_key;
mod config;
mod modes;

/// The lowercase hex SHA-256 of `key`, as `printf %s key | sha256sum` prints it.
pub(super) fn sha256_hex(key: &str) -> String {
    crate::hex::encode(&Sha256::digest(key.as_bytes()))
}

/// What the inner handler saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    uri: Uri,
    headers: HeaderMap,
    consumer: Option<Consumer>,
    claims: Option<Claims>,
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
                claims: req.extensions().get::<Claims>().cloned(),
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
