//! The `webhook` sink end to end: REST calls through the real gateway
//! publish CloudEvents through the outbox as Standard Webhooks deliveries
//! to a receiver this test runs (a hyper server on an ephemeral port,
//! answering from a script). Signatures are checked by the official Python
//! `standardwebhooks` library (tests/peers/python/verify_webhook.py), an
//! implementation independent of the gateway's.
//!
//! Needs the venv `scripts/test.sh` creates (.venv with
//! gateway/tests/peers/python/requirements.txt), or `$SWITCHYARD_PYTHON`.

#[path = "../common/mod.rs"]
mod common;
mod receiver;
mod verifier;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use common::TestGateway;
use http::StatusCode;
use receiver::{Answer, Receiver};
use serde_json::{Value, json};
use verifier::verify;

/// Signs every delivery (first of the rotation pair).
const OLD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The secret being rolled in.
const NEW_SECRET: &str = "whsec_Q2hhbmdlZCBzZWNyZXQgZm9yIHJvdGF0aW9uIHRlc3Q=";
/// Signs nothing: the verifier must refuse it.
const WRONG_SECRET: &str = "whsec_V3Jvbmcgc2VjcmV0IGZvciB0aGUgbmVnYXRpdmUgY2FzZQ==";

// === the gateway ===

/// A directory for one test's outbox, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("switchyard-{name}-{:x}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The demo gateway with CreateOrder publishing to sink `hooks` =
/// `webhook: { <sink> }`, destination `orders/{response.id}`.
async fn gateway(sink: &str, dir: &Path) -> TestGateway {
    let demo = common::spawn_demo().await;
    let yaml = config(&demo, sink, dir);
    TestGateway::start_yaml(demo, &yaml).await
}

fn config(demo: &switchyard_demo::DemoServer, sink: &str, dir: &Path) -> String {
    let events = format!(
        r#"
events:
  outbox: {{ path: "{outbox}", flush_interval: 2ms }}
  sinks:
    hooks: {{ webhook: {{ {sink} }} }}
"#,
        outbox = dir.join("outbox.redb").display(),
    );
    common::demo_config(demo, "", &events).replace(
        "upstream: orders ",
        r#"upstream: orders, events: [{ method: CreateOrder, type: com.example.order.created, subject: "orders/{response.id}", sink: hooks, destination: "orders/{response.id}" }] "#,
    )
}

/// A sink on `url` allowed to reach loopback, with `extra` keys.
fn sink(url: &str, extra: &str) -> String {
    format!(r#"url: "{url}", secrets: ["{OLD_SECRET}"], allow_networks: ["127.0.0.1/32"] {extra}"#)
}

async fn create_order(gw: &TestGateway) -> Value {
    let reply = gw
        .post_json(
            "/v1/orders",
            &json!({"userId": "7", "items": [{"sku": "A-1", "qty": 1}]}).to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()
}

fn deliveries(status: &str) -> String {
    format!("switchyard_webhook_deliveries_total{{sink=\"hooks\",status=\"{status}\"}}")
}

/// The `hooks` entry of `/admin/events` once `ready` holds for it.
async fn sink_status(gw: &TestGateway, ready: impl Fn(&Value) -> bool) -> Value {
    let mut sink = Value::Null;
    for _ in 0..250 {
        let status = gw.admin_get("/admin/events").await.json();
        sink = status["sinks"]
            .as_array()
            .and_then(|sinks| sinks.iter().find(|s| s["name"] == "hooks"))
            .cloned()
            .unwrap_or(Value::Null);
        if ready(&sink) {
            return sink;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("/admin/events never showed the expected state; last: {sink}");
}

/// The reasons of sink `hooks`' dead letters, newest first.
fn dead_letter_reasons(gw: &TestGateway) -> Vec<String> {
    let runtime = gw.running.as_ref().expect("running").gateway.runtime();
    let events = runtime.events.as_ref().expect("events configured");
    let dead = events
        .dead_letters("hooks", 10)
        .expect("sink hooks")
        .expect("outbox readable");
    dead.into_iter().map(|d| d.reason).collect()
}

// === the tests ===

#[tokio::test]
async fn a_delivery_is_signed_so_the_official_library_verifies_it_with_either_rotated_secret() {
    static OK: &[Answer] = &[(200, &[])];
    let receiver = Receiver::start(OK).await;
    let dir = TempDir::new("webhook-signed");
    let sink = format!(
        r#"url: "{}", secrets: ["{OLD_SECRET}", "{NEW_SECRET}"], allow_networks: ["127.0.0.1/32"], headers: {{ authorization: "Bearer t0k3n" }}"#,
        receiver.url("/hooks")
    );
    let gw = gateway(&sink, &dir.0).await;
    let order = create_order(&gw).await;
    let order_id = order["id"].as_str().expect("order id");

    let hits = receiver.wait_for(1, Duration::from_secs(10)).await;
    let hit = &hits[0];
    assert_eq!(
        hit.path,
        format!("/hooks/orders/{order_id}"),
        "destination appended"
    );
    assert_eq!(hit.header("content-type"), "application/cloudevents+json");
    assert_eq!(hit.header("authorization"), "Bearer t0k3n");
    let event = hit.json();
    assert_eq!(event["type"], "com.example.order.created");
    assert_eq!(event["data"]["id"], order["id"]);
    assert_eq!(hit.header("webhook-id"), event["id"].as_str().expect("id"));
    assert_eq!(
        hit.header("webhook-signature").split(' ').count(),
        2,
        "one per secret"
    );

    // The receiver may check with either secret while it rolls; a wrong one fails.
    assert_eq!(verify(OLD_SECRET, &hits), ["ok"]);
    assert_eq!(verify(NEW_SECRET, &hits), ["ok"]);
    let wrong = verify(WRONG_SECRET, &hits);
    assert!(wrong[0].contains("No matching signature"), "{wrong:?}");
    // Tampering with the body breaks it too.
    let mut tampered = hit.clone();
    tampered.body = Bytes::from(String::from_utf8_lossy(&hit.body).replace("order", "0rder"));
    assert_ne!(verify(OLD_SECRET, &[tampered])[0], "ok");

    let status = sink_status(&gw, |s| s["waiting"] == 0).await;
    assert_eq!(status["dead_lettered"], 0, "{status}");
    assert_eq!(gw.metric(&deliveries("200")).await, Some(1.0));
}

#[tokio::test]
async fn binary_mode_delivers_the_data_with_ce_headers_and_a_valid_signature() {
    static OK: &[Answer] = &[(204, &[])];
    let receiver = Receiver::start(OK).await;
    let dir = TempDir::new("webhook-binary");
    let gw = gateway(&sink(&receiver.url("/"), ", mode: binary"), &dir.0).await;
    let order = create_order(&gw).await;
    let hits = receiver.wait_for(1, Duration::from_secs(10)).await;
    let hit = &hits[0];
    assert_eq!(hit.header("content-type"), "application/json");
    assert_eq!(hit.json()["id"], order["id"], "the body is the data alone");
    assert_eq!(hit.header("ce-type"), "com.example.order.created");
    assert_eq!(hit.header("ce-specversion"), "1.0");
    assert_eq!(hit.header("ce-id"), hit.header("webhook-id"));
    assert_eq!(verify(OLD_SECRET, &hits), ["ok"]);
}

#[tokio::test]
async fn failed_attempts_are_retried_on_the_schedule_with_the_same_webhook_id() {
    static FLAKY: &[Answer] = &[(500, &[]), (502, &[]), (200, &[])];
    let receiver = Receiver::start(FLAKY).await;
    let dir = TempDir::new("webhook-retry");
    let gw = gateway(
        &sink(&receiver.url("/"), ", retry_schedule: [300ms, 600ms, 5s]"),
        &dir.0,
    )
    .await;
    create_order(&gw).await;

    let hits = receiver.wait_for(3, Duration::from_secs(10)).await;
    let ids: Vec<&str> = hits.iter().map(|h| h.header("webhook-id")).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "same id on every attempt: {ids:?}"
    );
    // The schedule's waits, with the relay's ±50% jitter.
    let (first, second) = (hits[1].at - hits[0].at, hits[2].at - hits[1].at);
    assert!(first >= Duration::from_millis(150), "{first:?}");
    assert!(second >= Duration::from_millis(300), "{second:?}");
    // Each attempt is signed afresh (its own timestamp) and verifies.
    assert_eq!(verify(OLD_SECRET, &hits), ["ok", "ok", "ok"]);

    let status = sink_status(&gw, |s| s["waiting"] == 0).await;
    assert_eq!(status["dead_lettered"], 0, "{status}");
    assert_eq!(gw.metric(&deliveries("500")).await, Some(1.0));
    assert_eq!(gw.metric(&deliveries("502")).await, Some(1.0));
    assert_eq!(gw.metric(&deliveries("200")).await, Some(1.0));
    assert_eq!(receiver.hits().len(), 3, "delivered once");
}

#[tokio::test]
async fn retry_after_is_honoured_over_a_shorter_schedule() {
    static BUSY: &[Answer] = &[(503, &[("retry-after", "2")]), (200, &[])];
    let receiver = Receiver::start(BUSY).await;
    let dir = TempDir::new("webhook-retry-after");
    let gw = gateway(
        &sink(&receiver.url("/"), ", retry_schedule: [50ms]"),
        &dir.0,
    )
    .await;
    create_order(&gw).await;
    let hits = receiver.wait_for(2, Duration::from_secs(10)).await;
    let waited = hits[1].at - hits[0].at;
    assert!(
        waited >= Duration::from_millis(1950),
        "waited only {waited:?}"
    );
    assert!(waited < Duration::from_secs(4), "{waited:?}");
    sink_status(&gw, |s| s["waiting"] == 0 && s["dead_lettered"] == 0).await;
}

#[tokio::test]
async fn gone_stops_the_retries_and_dead_letters_the_event() {
    static GONE: &[Answer] = &[(410, &[])];
    let receiver = Receiver::start(GONE).await;
    let dir = TempDir::new("webhook-gone");
    let gw = gateway(
        &sink(&receiver.url("/"), ", retry_schedule: [50ms, 50ms, 50ms]"),
        &dir.0,
    )
    .await;
    create_order(&gw).await;
    let status = sink_status(&gw, |s| s["dead_lettered"] == 1).await;
    assert_eq!(status["waiting"], 0, "{status}");
    // Well past the schedule: still one attempt.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.hits().len(), 1, "no retry after 410");
    let reasons = dead_letter_reasons(&gw);
    assert!(
        reasons[0].contains("410") && reasons[0].contains("no more deliveries"),
        "{reasons:?}"
    );
    assert_eq!(gw.metric(&deliveries("410")).await, Some(1.0));
}

#[tokio::test]
async fn an_exhausted_schedule_dead_letters_the_event() {
    static DOWN: &[Answer] = &[(500, &[])];
    let receiver = Receiver::start(DOWN).await;
    let dir = TempDir::new("webhook-exhausted");
    let gw = gateway(
        &sink(&receiver.url("/"), ", retry_schedule: [50ms, 100ms]"),
        &dir.0,
    )
    .await;
    create_order(&gw).await;
    let status = sink_status(&gw, |s| s["dead_lettered"] == 1).await;
    assert_eq!(status["waiting"], 0, "{status}");
    assert_eq!(
        receiver.hits().len(),
        3,
        "the first attempt and two retries"
    );
    let reasons = dead_letter_reasons(&gw);
    assert!(
        reasons[0].contains("gave up after 3 attempts") && reasons[0].contains("HTTP 500"),
        "{reasons:?}"
    );
    assert_eq!(gw.metric(&deliveries("500")).await, Some(3.0));
    assert_eq!(
        gw.metric("switchyard_events_total{outcome=\"dead_lettered\",sink=\"hooks\",")
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn the_ssrf_guard_refuses_a_loopback_address_in_the_config() {
    let demo = common::spawn_demo().await;
    let dir = TempDir::new("webhook-ssrf-config");
    for url in [
        "http://127.0.0.1:9/hooks",
        "http://[::ffff:127.0.0.1]:9/",
        "http://2130706433/",
    ] {
        let sink = format!(r#"url: "{url}", secrets: ["{OLD_SECRET}"]"#);
        let err = common::config_error(&config(&demo, &sink, &dir.0)).await;
        assert!(err.contains("events.sinks.hooks"), "{err}");
        assert!(err.contains("127.0.0.1"), "{url}: {err}");
        assert!(
            err.contains("loopback") || err.contains("non-standard notation"),
            "{url}: {err}"
        );
    }
}

#[tokio::test]
async fn the_ssrf_guard_refuses_a_name_resolving_to_loopback_and_dead_letters() {
    static OK: &[Answer] = &[(200, &[])];
    let receiver = Receiver::start(OK).await;
    let dir = TempDir::new("webhook-ssrf-dns");
    // `localhost` passes the config check (a name), not the connection.
    let url = format!("http://localhost:{}/", receiver.addr.port());
    let sink = format!(r#"url: "{url}", secrets: ["{OLD_SECRET}"], retry_schedule: [50ms]"#);
    let gw = gateway(&sink, &dir.0).await;
    create_order(&gw).await;
    sink_status(&gw, |s| s["dead_lettered"] == 1).await;
    assert!(receiver.hits().is_empty(), "nothing reached the receiver");
    let reasons = dead_letter_reasons(&gw);
    assert!(
        reasons[0].contains("SSRF guard")
            && reasons[0].contains("localhost resolves to")
            && reasons[0].contains("loopback"),
        "{reasons:?}"
    );
    assert_eq!(gw.metric(&deliveries("error")).await, Some(2.0));
}
