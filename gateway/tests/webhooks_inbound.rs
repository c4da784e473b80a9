//! Inbound webhooks end to end: signed deliveries POSTed to a real gateway,
//! published through the outbox to a real NATS JetStream (127.0.0.1:4222,
//! or a server a test starts itself), deduplicated locally or in the real
//! Redis (127.0.0.1:6379). One signer is independent of the gateway: the
//! official Python `standardwebhooks` package
//! (tests/peers/python/sign_webhook.py); the others use the `hmac` crate.

mod common;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use base64::Engine as _;
use bytes::Bytes;
use common::nats::{OwnNats, consume, free_port};
use common::{Reply, TestGateway};
use hmac::{Hmac, Mac};
use http::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

const NATS: &str = "nats://127.0.0.1:4222";
const REDIS: &str = "redis://127.0.0.1:6379";
const STD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "whsec_b2xkLXNlY3JldC1vZi1hdC1sZWFzdC0yNC1ieXRlcw==";
const STRIPE_SECRET: &str = "whsec_stripe_test_secret_0123456789abcdef";

fn unique() -> String {
    format!("{:x}", fastrand::u64(..))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A gateway whose `webhooks:` (YAML list items) publish to sink `bus`
/// (NATS at `url`, stream `stream` on `<subject>.>`), outbox in a temp dir.
struct Setup {
    gw: TestGateway,
    url: String,
    stream: String,
    dir: PathBuf,
}

impl Setup {
    async fn start(url: &str, webhooks: &str, outbox_extra: &str) -> Setup {
        let (stream, subject) = (format!("WH{}", unique()), format!("wh{}", unique()));
        let dir = std::env::temp_dir().join(format!("switchyard-webhooks-{}", unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let top = format!(
            r#"
events:
  outbox: {{ path: "{outbox}", flush_interval: 2ms, retry_initial: 50ms, retry_max: 200ms {outbox_extra} }}
  sinks:
    bus: {{ nats: {{ url: "{url}", ack_timeout: 500ms, stream: {{ name: {stream}, subjects: ["{subject}.>"] }} }} }}
webhooks:
{webhooks}
"#,
            outbox = dir.join("outbox.redb").display(),
            webhooks = webhooks.replace("SUBJECT", &subject),
        );
        let demo = common::spawn_demo().await;
        let yaml = common::demo_config(&demo, "", &top);
        let gw = TestGateway::start_yaml(demo, &yaml).await;
        Setup {
            gw,
            url: url.to_owned(),
            stream,
            dir,
        }
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.gw
            .send(Method::POST, path, &all, Bytes::from(body.to_owned()))
            .await
    }

    /// Waits until the outbox has delivered everything.
    async fn drained(&self) {
        for _ in 0..500 {
            let text = self.gw.admin_get("/metrics").await.text();
            if text.contains("switchyard_outbox_depth{sink=\"bus\"} 0") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        panic!("the outbox did not drain");
    }

    /// Messages in the stream (after the outbox drained).
    async fn stream_messages(&self) -> u64 {
        let js = jetstream::new(async_nats::connect(&self.url).await.unwrap());
        let mut stream = js
            .get_stream(&self.stream)
            .await
            .expect("the stream exists");
        stream.info().await.unwrap().state.messages
    }

    async fn finish(self) {
        if let Ok(client) = async_nats::connect(&self.url).await {
            let _ = jetstream::new(client).delete_stream(&self.stream).await;
        }
        self.gw.stop().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Standard Webhooks endpoint at `path` publishing `com.example.<body.type>`.
fn standard_endpoint(path: &str, extra: &str) -> String {
    format!(
        r#"  - path: {path}
    scheme: standard_webhooks
    secrets: ["{STD_SECRET}"]
    publish: {{ sink: bus, type: "com.example.{{body.type}}", destination: "SUBJECT.{{body.type}}" }}
    {extra}"#
    )
}

// === signers ===

/// The `webhook-signature` value from the official Python package.
fn python_sign(secret: &str, id: &str, timestamp: u64, body: &str) -> String {
    use std::io::Write;
    let root = common::repo_root();
    let python = std::env::var("SWITCHYARD_PYTHON").unwrap_or_else(|_| {
        let venv = root.join(".venv/bin/python");
        if venv.exists() {
            venv.display().to_string()
        } else {
            "python3".into()
        }
    });
    let help = "needs the Python `standardwebhooks` package: scripts/test.sh creates .venv, or \
                `python3 -m venv .venv && .venv/bin/pip install -r gateway/tests/peers/python/requirements.txt` \
                (interpreter: $SWITCHYARD_PYTHON, else .venv/bin/python, else python3)";
    let mut child = std::process::Command::new(&python)
        .arg(root.join("gateway/tests/peers/python/sign_webhook.py"))
        .args([secret, id, &timestamp.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}; {help}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sign_webhook.py failed: {}\n{help}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn hmac_sha256(key: &[u8], content: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(content.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Standard Webhooks headers signed with the `hmac` crate.
fn std_headers(secret: &str, id: &str, ts: u64, body: &str) -> Vec<(String, String)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(secret.trim_start_matches("whsec_")).unwrap();
    let signature = b64.encode(hmac_sha256(&key, &format!("{id}.{ts}.{body}")));
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        ("webhook-signature".into(), format!("v1,{signature}")),
    ]
}

fn stripe_header(ts: u64, body: &str) -> String {
    let hex: String = hmac_sha256(STRIPE_SECRET.as_bytes(), &format!("{ts}.{body}"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={ts},v1={hex}")
}

fn refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

// === tests ===

#[tokio::test]
async fn a_delivery_signed_by_the_python_package_is_published_once_and_its_replay_acknowledged() {
    let s = Setup::start(NATS, &standard_endpoint("/webhooks/acme", ""), "").await;
    let (id, ts) = (format!("msg_{}", unique()), now());
    let body = r#"{"type": "invoice.paid", "data": {"amount": 1250}}"#;
    let signature = python_sign(STD_SECRET, &id, ts, body);
    let ts_text = ts.to_string();
    let headers = [
        ("webhook-id", id.as_str()),
        ("webhook-timestamp", ts_text.as_str()),
        ("webhook-signature", signature.as_str()),
    ];
    let first = s.post("/webhooks/acme", &headers, body).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text());
    assert_eq!(first.json(), json!({"status": "accepted", "id": id}));
    let got = consume(&s.url, &s.stream, 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    let (msg_id, event) = &got[0];
    assert_eq!(msg_id, &id, "Nats-Msg-Id is the webhook id");
    assert_eq!(event["id"], id.as_str());
    assert_eq!(event["type"], "com.example.invoice.paid");
    assert_eq!(event["source"], "/switchyard/webhooks/acme");
    assert_eq!(event["datacontenttype"], "application/json");
    assert_eq!(event["data"], serde_json::from_str::<Value>(body).unwrap());
    // The provider redelivers: acknowledged, not published again.
    let replay = s.post("/webhooks/acme", &headers, body).await;
    assert_eq!(replay.status, StatusCode::OK, "{}", replay.text());
    assert_eq!(replay.json(), json!({"status": "duplicate", "id": id}));
    s.drained().await;
    assert_eq!(s.stream_messages().await, 1);
    let metrics = s.gw.admin_get("/metrics").await.text();
    for line in [
        r#"switchyard_http_requests_total{method="POST",route="/webhooks/acme",status="202"} 1"#,
        r#"switchyard_http_requests_total{method="POST",route="/webhooks/acme",status="200"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing");
    }
    s.finish().await;
}

#[tokio::test]
async fn bad_signatures_are_401_and_stale_or_future_timestamps_400() {
    let s = Setup::start(NATS, &standard_endpoint("/webhooks/acme", ""), "").await;
    let body = r#"{"type": "a"}"#;
    let id = format!("msg_{}", unique());
    // Tampered body.
    let signed = std_headers(STD_SECRET, &id, now(), body);
    let reply = s
        .post("/webhooks/acme", &refs(&signed), r#"{"type": "b"}"#)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error(), (16, "invalid webhook signature".to_owned()));
    // No signature at all.
    let reply = s.post("/webhooks/acme", &refs(&signed[..2]), body).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(
        reply.error().1.contains("missing `webhook-signature`"),
        "{}",
        reply.text()
    );
    // Signed 10 minutes ago, and 10 minutes ahead.
    for (ts, says) in [(now() - 600, "too old"), (now() + 600, "too new")] {
        let signed = std_headers(STD_SECRET, &id, ts, body);
        let reply = s.post("/webhooks/acme", &refs(&signed), body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
        assert!(reply.error().1.contains(says), "{}", reply.text());
    }
    // Not JSON, though signed.
    let signed = std_headers(STD_SECRET, &id, now(), "not json");
    let reply = s.post("/webhooks/acme", &refs(&signed), "not json").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // GET is not a delivery.
    let reply = s.gw.get("/webhooks/acme").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.headers["allow"], "POST");
    // None of these refusals used up the id: the genuine delivery passes.
    let signed = std_headers(STD_SECRET, &id, now(), body);
    let reply = s.post("/webhooks/acme", &refs(&signed), body).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    s.finish().await;
}

#[tokio::test]
async fn old_and_new_secrets_both_verify_during_a_rotation() {
    let endpoint = standard_endpoint("/webhooks/acme", "").replace(
        &format!(r#"["{STD_SECRET}"]"#),
        &format!(r#"["{OLD_SECRET}", "{STD_SECRET}"]"#),
    );
    let s = Setup::start(NATS, &endpoint, "").await;
    for secret in [OLD_SECRET, STD_SECRET] {
        let (id, body) = (format!("msg_{}", unique()), r#"{"type": "rotated"}"#);
        let reply = s
            .post(
                "/webhooks/acme",
                &refs(&std_headers(secret, &id, now(), body)),
                body,
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    }
    let other = "whsec_c29tZW9uZS1lbHNlcy1zZWNyZXQtMjQtYnl0ZXM=";
    let (id, body) = (format!("msg_{}", unique()), r#"{"type": "rotated"}"#);
    let reply = s
        .post(
            "/webhooks/acme",
            &refs(&std_headers(other, &id, now(), body)),
            body,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        consume(&s.url, &s.stream, 2, Duration::from_secs(10))
            .await
            .len(),
        2
    );
    s.finish().await;
}

#[tokio::test]
async fn stripe_deliveries_are_verified_typed_from_the_body_and_deduplicated_on_its_id() {
    let endpoint = format!(
        r#"  - name: stripe
    path: /webhooks/stripe
    scheme: stripe
    secrets: ["{STRIPE_SECRET}"]
    publish: {{ sink: bus, type: "stripe.{{body.type}}", subject: "{{body.data.object.id}}", destination: SUBJECT.stripe }}"#
    );
    let s = Setup::start(NATS, &endpoint, "").await;
    let event_id = format!("evt_{}", unique());
    let body =
        json!({"id": event_id, "type": "charge.succeeded", "data": {"object": {"id": "ch_1"}}})
            .to_string();
    let reply = s
        .post(
            "/webhooks/stripe",
            &[("stripe-signature", &stripe_header(now(), &body))],
            &body,
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    // Stripe re-signs a redelivery with a new timestamp: still the same event.
    let again = s
        .post(
            "/webhooks/stripe",
            &[("stripe-signature", &stripe_header(now() + 1, &body))],
            &body,
        )
        .await;
    assert_eq!(again.json(), json!({"status": "duplicate", "id": event_id}));
    let stale = s
        .post(
            "/webhooks/stripe",
            &[("stripe-signature", &stripe_header(now() - 301, &body))],
            &body,
        )
        .await;
    assert_eq!(stale.status, StatusCode::BAD_REQUEST, "{}", stale.text());
    let got = consume(&s.url, &s.stream, 2, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 1);
    let event = &got[0].1;
    assert_eq!(
        (&event["id"], &event["type"]),
        (&json!(event_id), &json!("stripe.charge.succeeded"))
    );
    assert_eq!(event["subject"], "ch_1");
    assert_eq!(event["data"]["data"]["object"]["id"], "ch_1");
    s.finish().await;
}

#[tokio::test]
async fn concurrent_deliveries_of_one_id_publish_once() {
    let s = Setup::start(NATS, &standard_endpoint("/webhooks/acme", ""), "").await;
    let (id, body) = (format!("msg_{}", unique()), r#"{"type": "race"}"#);
    let signed = std_headers(STD_SECRET, &id, now(), body);
    let headers = refs(&signed);
    let replies =
        futures_util::future::join_all((0..8).map(|_| s.post("/webhooks/acme", &headers, body)))
            .await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|&&c| c == 202).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|c| [200, 202, 409].contains(c)),
        "{statuses:?}"
    );
    s.drained().await;
    assert_eq!(s.stream_messages().await, 1);
    s.finish().await;
}

#[tokio::test]
async fn a_redis_dedupe_store_is_shared_by_gateway_instances() {
    let endpoint = standard_endpoint(
        "/webhooks/acme",
        &format!(
            "name: acme-{}\n    tolerance: 1m\n    dedupe: {{ store: redis, url: \"{REDIS}\", ttl: 2m }}",
            unique()
        ),
    );
    let one = Setup::start(NATS, &endpoint, "").await;
    let two = Setup::start(NATS, &endpoint, "").await;
    let (id, body) = (format!("msg_{}", unique()), r#"{"type": "shared"}"#);
    let signed = std_headers(STD_SECRET, &id, now(), body);
    let reply = one.post("/webhooks/acme", &refs(&signed), body).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    let reply = two.post("/webhooks/acme", &refs(&signed), body).await;
    assert_eq!(reply.json()["status"], "duplicate", "{}", reply.text());
    one.drained().await;
    assert_eq!(one.stream_messages().await, 1);
    two.finish().await;
    one.finish().await;
}

#[tokio::test]
async fn an_oversized_delivery_is_413() {
    let s = Setup::start(
        NATS,
        &standard_endpoint("/webhooks/acme", "max_body: 1KiB"),
        "",
    )
    .await;
    let body = json!({"type": "big", "pad": "x".repeat(2000)}).to_string();
    let signed = std_headers(STD_SECRET, &format!("msg_{}", unique()), now(), &body);
    let reply = s.post("/webhooks/acme", &refs(&signed), &body).await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text()
    );
    s.finish().await;
}

#[tokio::test]
async fn a_full_outbox_is_503_and_the_retry_is_accepted_once_there_is_room() {
    let dir = std::env::temp_dir().join(format!("switchyard-webhooks-nats-{}", unique()));
    let mut nats = OwnNats::start(free_port(), &dir);
    nats.ready().await;
    let url = format!("nats://127.0.0.1:{}", nats.port);
    let s = Setup::start(
        &url,
        &standard_endpoint("/webhooks/acme", ""),
        ", max_events: 1",
    )
    .await;
    nats.stop();
    let deliver = |id: String| {
        let body = r#"{"type": "full"}"#;
        let signed = std_headers(STD_SECRET, &id, now(), body);
        let s = &s;
        async move { s.post("/webhooks/acme", &refs(&signed), body).await }
    };
    let (first, second) = (format!("msg_{}", unique()), format!("msg_{}", unique()));
    assert_eq!(deliver(first.clone()).await.status, StatusCode::ACCEPTED);
    let refused = deliver(second.clone()).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.text()
    );
    assert!(
        refused.error().1.contains("outbox is full"),
        "{}",
        refused.text()
    );
    // Refused, so not remembered: the retry is refused for room, not acknowledged as a duplicate.
    assert_eq!(
        deliver(second.clone()).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    nats.restart();
    nats.ready().await;
    s.drained().await;
    let retry = deliver(second.clone()).await;
    assert_eq!(retry.status, StatusCode::ACCEPTED, "{}", retry.text());
    let got = consume(&url, &s.stream, 2, Duration::from_secs(10)).await;
    let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, [first.as_str(), second.as_str()]);
    s.finish().await;
    drop(nats);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn config_mistakes_name_their_key() {
    let demo = common::spawn_demo().await;
    let dir = std::env::temp_dir().join(format!("switchyard-webhooks-config-{}", unique()));
    let cases = [
        (
            "publish: { sink: nope, type: t, destination: d }",
            "",
            "webhooks[0].publish.sink",
            "unknown sink `nope`",
        ),
        (
            "publish: { sink: bus, type: t, destination: d }\n    dedupe: { ttl: 1m }",
            "",
            "webhooks[0].dedupe.ttl",
            "shorter than",
        ),
        (
            "publish: { sink: bus, type: t, destination: d }",
            "graphql: { path: /hooks }",
            "webhooks[0].path",
            "GraphQL",
        ),
        (
            "publish: { sink: bus, type: \"{request.id}\", destination: d }",
            "",
            "webhooks[0].publish.type",
            "unknown placeholder",
        ),
    ];
    for (i, (rest, top, key, message)) in cases.into_iter().enumerate() {
        let outbox = dir.join(format!("{i}.redb"));
        let events = format!(
            "events: {{ outbox: {{ path: \"{}\" }}, sinks: {{ bus: {{ stdout: {{}} }} }} }}",
            outbox.display()
        );
        let webhooks = format!(
            "webhooks:\n  - path: /hooks\n    scheme: standard_webhooks\n    secrets: [\"{STD_SECRET}\"]\n    {rest}\n{events}\n{top}\n"
        );
        let error = common::config_error(&common::demo_config(&demo, "", &webhooks)).await;
        assert!(
            error.contains(key) && error.contains(message),
            "{key}: {error}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
