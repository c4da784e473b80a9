//! Inbound webhooks end to end: signed deliveries POSTed to a real gateway,
//! published through the outbox to a real NATS JetStream (127.0.0.1:4222,
//! or a server a test starts itself), deduplicated locally or in the real
//! Redis (127.0.0.1:6379). One signer is independent of the gateway: the
//! official Python `standardwebhooks` package
//! (tests/peers/python/sign_webhook.py); the others use the `hmac` crate.

mod common;

use std::time::Duration;

use common::nats::{OwnNats, consume, free_port};
use common::webhooks::*;
use http::StatusCode;
use serde_json::{Value, json};

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
async fn an_endpoints_rate_limit_runs_and_the_top_level_auth_does_not() {
    // The top-level plugins ask every route for an API key; the webhook
    // endpoint (authenticated by its signature) is exempt from that, but
    // its own rate limit of 2 deliveries runs before the signature check.
    let plugins = r#"
    plugins:
      - rate_limit: { name: hooks, rate: 2/min, key: [client_ip] }
plugins:
  - auth: { methods: [{ api_key: { header: x-api-key, keys: [{ consumer: c, sha256: "0000000000000000000000000000000000000000000000000000000000000000" }] } }] }
"#;
    let s = Setup::start(NATS, &standard_endpoint("/webhooks/acme", plugins), "").await;
    let body = r#"{"type": "limited"}"#;
    for n in 0..2 {
        let signed = std_headers(STD_SECRET, &format!("msg_{n}_{}", unique()), now(), body);
        let reply = s.post("/webhooks/acme", &refs(&signed), body).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    }
    // Over the limit: refused even with a bad signature, before it is read.
    let reply = s.post("/webhooks/acme", &[("webhook-id", "x")], body).await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text()
    );
    // The routes still ask for the key.
    let route = s.gw.get("/v1/users/1").await;
    assert_eq!(route.status, StatusCode::UNAUTHORIZED, "{}", route.text());
    s.drained().await;
    assert_eq!(s.stream_messages().await, 2);
    s.finish().await;
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
