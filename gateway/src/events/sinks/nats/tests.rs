use std::time::Instant;

use async_nats::jetstream::consumer::{AckPolicy, pull};
use futures_util::StreamExt;

use super::*;

const NATS: &str = "127.0.0.1:4222";

/// Fails (does not skip) when no NATS server answers: these tests need
/// one with JetStream (scripts/test.sh starts it).
async fn require_nats() {
    let probe =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(NATS)).await;
    match probe {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!(
            "this test needs a NATS server with JetStream on {NATS} (scripts/test.sh starts one): {e}"
        ),
        Err(_) => panic!(
            "this test needs a NATS server with JetStream on {NATS} (scripts/test.sh starts one): connect timed out"
        ),
    }
}

fn config(url: String, stream: Option<StreamConfig>, ack_timeout: HumanDuration) -> NatsSinkConfig {
    NatsSinkConfig {
        url,
        stream,
        ack_timeout,
        mode: ContentMode::Structured,
        max_in_flight: 64,
    }
}

/// A stream and subject prefix no other run uses.
fn unique() -> (String, String) {
    let suffix = format!("{:016x}", fastrand::u64(..));
    (
        format!("SWITCHYARD_TEST_{suffix}"),
        format!("switchyard.test.{suffix}"),
    )
}

/// Runs `body` with a sink that creates a fresh stream over
/// `<prefix>.>`, then deletes the stream, even if `body` panicked.
async fn with_stream<F, Fut>(body: F)
where
    F: FnOnce(NatsSink, jetstream::Context, String, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_stream_in(ContentMode::Structured, body).await;
}

/// [`with_stream`] with a sink sending in `mode`.
async fn with_stream_in<F, Fut>(mode: ContentMode, body: F)
where
    F: FnOnce(NatsSink, jetstream::Context, String, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    require_nats().await;
    let (stream, prefix) = unique();
    let sink = NatsSink::connect(NatsSinkConfig {
        mode,
        ..config(
            format!("nats://{NATS}"),
            Some(StreamConfig {
                name: stream.clone(),
                subjects: vec![format!("{prefix}.>")],
                create: true,
                duplicate_window: default_duplicate_window(),
            }),
            default_ack_timeout(),
        )
    })
    .await
    .expect("sink");
    let client = async_nats::connect(NATS)
        .await
        .expect("test client connects");
    let js = jetstream::new(client);

    let outcome = tokio::spawn(body(sink, js.clone(), stream.clone(), prefix)).await;

    // The stream exists only if a publish created it.
    let _ = js.delete_stream(&stream).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn event(id: &str, destination: &str, body: &[u8]) -> Outgoing {
    Outgoing {
        id: id.to_owned(),
        destination: destination.to_owned(),
        body: body.to_vec(),
        ..Default::default()
    }
}

/// The messages stored in `stream`, in order, acked (at most 10).
async fn stored_messages(js: &jetstream::Context, stream: &str) -> Vec<jetstream::Message> {
    let consumer = js
        .get_stream(stream)
        .await
        .expect("the sink created the stream")
        .create_consumer(pull::Config {
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .expect("fetch");
    let mut stored = Vec::new();
    while let Some(message) = messages.next().await {
        let message = message.expect("message");
        message.ack().await.expect("ack");
        stored.push(message);
    }
    stored
}

/// The value of header `name` of a core NATS message.
fn header_of<'m>(message: &'m async_nats::Message, name: &str) -> Option<&'m str> {
    message.headers.as_ref()?.get(name).map(|v| v.as_str())
}

fn header<'m>(message: &'m jetstream::Message, name: &str) -> Option<&'m str> {
    message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(name))
        .map(|v| v.as_str())
}

#[tokio::test]
async fn publishes_body_and_headers_to_jetstream() {
    with_stream(|sink, js, stream, prefix| async move {
        let body = br#"{"specversion":"1.0","id":"evt-1","type":"t","source":"/s","data":{"a":1}}"#;
        let event = event("evt-1", &format!("{prefix}.orders"), body);
        sink.publish(&event).await.expect("publish is acked");

        let stored = stored_messages(&js, &stream).await;
        assert_eq!(stored.len(), 1, "only one message");
        let message = &stored[0];
        assert_eq!(message.subject.as_str(), format!("{prefix}.orders"));
        assert_eq!(message.payload.as_ref(), body);
        assert_eq!(header(message, "Nats-Msg-Id"), Some("evt-1"));
        assert_eq!(
            header(message, "Content-Type"),
            Some(STRUCTURED_CONTENT_TYPE)
        );
        assert_eq!(header(message, "ce-id"), None, "structured: no ce- headers");
    })
    .await;
}

#[tokio::test]
async fn binary_mode_sends_the_data_as_payload_and_attributes_as_percent_encoded_ce_headers() {
    with_stream_in(ContentMode::Binary, |sink, js, stream, prefix| async move {
        let destination = format!("{prefix}.orders");
        let json = br#"{"specversion":"1.0","id":"evt-1","source":"/shop/orders","type":"com.example.order.created","subject":"orders/7","time":"2026-11-27T00:00:00.000Z","tenant":"acme corp \"\u00e9\" 100%","datacontenttype":"application/json","dataschema":"proto:demo.Order","data":{"id":"7","qty":2}}"#;
        sink.publish(&event("evt-1", &destination, json))
            .await
            .expect("publish is acked");
        // Protobuf data travels base64 in the stored event, raw here.
        let protobuf = br#"{"specversion":"1.0","id":"evt-2","source":"/s","type":"t","time":"2026-11-27T00:00:00.000Z","datacontenttype":"application/protobuf","dataschema":"proto:demo.Order","data_base64":"CgE3"}"#;
        sink.publish(&event("evt-2", &destination, protobuf))
            .await
            .expect("publish is acked");
        // No data: an empty payload and no media type.
        let bare = br#"{"specversion":"1.0","id":"evt-3","source":"/s","type":"t","time":"2026-11-27T00:00:00.000Z"}"#;
        sink.publish(&event("evt-3", &destination, bare))
            .await
            .expect("publish is acked");

        let stored = stored_messages(&js, &stream).await;
        assert_eq!(stored.len(), 3, "{stored:?}");

        let message = &stored[0];
        assert_eq!(message.payload.as_ref(), br#"{"id":"7","qty":2}"#);
        for (name, value) in [
            ("Nats-Msg-Id", "evt-1"),
            ("Content-Type", "application/json"),
            ("ce-datacontenttype", "application/json"),
            ("ce-specversion", "1.0"),
            ("ce-id", "evt-1"),
            ("ce-source", "/shop/orders"),
            ("ce-type", "com.example.order.created"),
            ("ce-subject", "orders/7"),
            ("ce-time", "2026-11-27T00:00:00.000Z"),
            ("ce-dataschema", "proto:demo.Order"),
            // Space, `"`, `%` and non-ASCII percent-encoded (binding §3.1.3.2).
            ("ce-tenant", "acme%20corp%20%22%C3%A9%22%20100%25"),
        ] {
            assert_eq!(header(message, name), Some(value), "{name}");
        }
        assert_eq!(header(message, "ce-data"), None);
        assert_eq!(header(message, "ce-data_base64"), None);

        let message = &stored[1];
        assert_eq!(message.payload.as_ref(), b"\x0a\x017");
        assert_eq!(header(message, "Nats-Msg-Id"), Some("evt-2"));
        assert_eq!(header(message, "Content-Type"), Some("application/protobuf"));
        assert_eq!(
            header(message, "ce-datacontenttype"),
            Some("application/protobuf")
        );

        let message = &stored[2];
        assert!(message.payload.is_empty(), "{:?}", message.payload);
        assert_eq!(header(message, "Nats-Msg-Id"), Some("evt-3"));
        assert_eq!(header(message, "ce-id"), Some("evt-3"));
        assert_eq!(header(message, "Content-Type"), None);
        assert_eq!(header(message, "ce-datacontenttype"), None);
    })
    .await;
}

#[tokio::test]
async fn binary_mode_refuses_an_unreadable_stored_event_as_permanent_without_a_server() {
    let sink = NatsSink::connect(NatsSinkConfig {
        mode: ContentMode::Binary,
        ..config(
            "nats://127.0.0.1:1".to_owned(),
            None,
            HumanDuration::from_millis(300),
        )
    })
    .await
    .expect("sink");
    for body in [
        &b"not json"[..],
        b"[1]",
        br#"{"id":"e1","data_base64":"%%"}"#,
    ] {
        let err = sink
            .publish(&event("evt-1", "orders.created", body))
            .await
            .expect_err("unreadable");
        assert!(
            matches!(&err, SinkError::Permanent(m) if m.contains("evt-1")),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn the_same_event_id_is_stored_once() {
    with_stream(|sink, js, stream, prefix| async move {
        let destination = format!("{prefix}.orders");
        let first = event("evt-dup", &destination, b"{\"n\":1}");
        sink.publish(&first).await.expect("first publish");
        sink.publish(&first)
            .await
            .expect("a duplicate is acked too");

        let count = |js: jetstream::Context, stream: String| async move {
            js.get_stream(&stream)
                .await
                .expect("stream")
                .get_info()
                .await
                .expect("stream info")
                .state
                .messages
        };
        assert_eq!(
            count(js.clone(), stream.clone()).await,
            1,
            "deduplicated by Nats-Msg-Id"
        );

        // The same body under another id is another event.
        sink.publish(&event("evt-other", &destination, b"{\"n\":1}"))
            .await
            .expect("publish");
        assert_eq!(count(js, stream).await, 2);
    })
    .await;
}

#[tokio::test]
async fn a_deleted_stream_is_created_again() {
    with_stream(|sink, js, stream, prefix| async move {
        let destination = format!("{prefix}.orders");
        sink.publish(&event("evt-1", &destination, b"{}"))
            .await
            .expect("creates the stream");
        js.delete_stream(&stream).await.expect("delete");

        let err = sink
            .publish(&event("evt-2", &destination, b"{}"))
            .await
            .expect_err("no stream now");
        assert!(matches!(err, SinkError::Transient(_)), "{err:?}");
        sink.publish(&event("evt-2", &destination, b"{}"))
            .await
            .expect("the retry creates it again");
        let info = js
            .get_stream(&stream)
            .await
            .expect("stream")
            .get_info()
            .await
            .expect("info");
        assert_eq!(info.state.messages, 1);
    })
    .await;
}

#[tokio::test]
async fn a_subject_no_stream_stores_is_transient() {
    require_nats().await;
    let (_, prefix) = unique();
    let sink = NatsSink::connect(config(
        format!("nats://{NATS}"),
        None,
        default_ack_timeout(),
    ))
    .await
    .expect("sink");
    let err = sink
        .publish(&event("evt-1", &format!("{prefix}.nowhere"), b"{}"))
        .await
        .expect_err("no stream");
    assert!(
        matches!(&err, SinkError::Transient(m) if m.contains("no responders")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_publish_nobody_acks_fails_transient_after_the_ack_timeout() {
    require_nats().await;
    let (_, prefix) = unique();
    let subject = format!("{prefix}.silent");
    // A plain subscriber is a responder that never answers: no "no
    // responders" status, no ack.
    let listener = async_nats::connect(NATS).await.expect("connect");
    let mut silent = listener
        .subscribe(subject.clone())
        .await
        .expect("subscribe");
    listener.flush().await.expect("flush");
    let ack_timeout = HumanDuration::from_millis(200);
    let sink = NatsSink::connect(config(format!("nats://{NATS}"), None, ack_timeout))
        .await
        .expect("sink");
    // Connected first, so the publish takes the common path, bounded by
    // the sweep alone.
    while !sink.ready() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let started = Instant::now();
    let err = sink
        .publish(&event("evt-1", &subject, b"{}"))
        .await
        .expect_err("no ack");
    let elapsed = started.elapsed();
    assert!(
        matches!(&err, SinkError::Transient(m) if m.contains("no JetStream ack within")),
        "{err:?}"
    );
    // The sweep runs every quarter of the timeout: at most 1.25 times it.
    assert!(elapsed >= ack_timeout.0, "{elapsed:?}");
    assert!(elapsed < ack_timeout.0 * 2, "{elapsed:?}");
    let received = silent.next().await.expect("the subscriber got the message");
    assert_eq!(
        header_of(&received, "Nats-Msg-Id"),
        Some("evt-1"),
        "it was sent once, with its id"
    );
    assert_eq!(sink.acks.waiting(), 0, "the timed-out publish is forgotten");
}

#[tokio::test]
async fn concurrent_publishes_each_get_their_own_ack() {
    with_stream(|sink, js, stream, prefix| async move {
        let events: Vec<Outgoing> = (0..200)
            .map(|i| {
                event(
                    &format!("evt-{i}"),
                    &format!("{prefix}.n{}", i % 7),
                    format!("{{\"i\":{i}}}").as_bytes(),
                )
            })
            .collect();
        let results = futures_util::future::join_all(events.iter().map(|e| sink.publish(e))).await;
        for (i, result) in results.iter().enumerate() {
            assert!(result.is_ok(), "event {i}: {result:?}");
        }
        assert_eq!(sink.acks.waiting(), 0);
        let mut stored = js.get_stream(&stream).await.expect("stream");
        let info = stored.info().await.expect("stream info");
        assert_eq!(info.state.messages, 200, "each stored once");
    })
    .await;
}

#[tokio::test]
async fn server_down_fails_transient_within_the_ack_timeout() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let ack_timeout = HumanDuration::from_millis(300);
    let started = Instant::now();
    let sink = NatsSink::connect(config(
        format!("nats://127.0.0.1:{port}"),
        Some(StreamConfig {
            name: "SWITCHYARD_TEST_DOWN".to_owned(),
            subjects: vec!["switchyard.down.>".to_owned()],
            create: true,
            duplicate_window: default_duplicate_window(),
        }),
        ack_timeout,
    ))
    .await
    .expect("connect does not need the server");
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "connect returns at once"
    );

    let started = Instant::now();
    let err = sink
        .publish(&event("evt-1", "switchyard.down.x", b"{}"))
        .await
        .expect_err("server is down");
    let elapsed = started.elapsed();
    assert!(
        matches!(&err, SinkError::Transient(m) if m.contains("not connected")),
        "{err:?}"
    );
    assert!(
        elapsed >= ack_timeout.0,
        "waited for the connection: {elapsed:?}"
    );
    assert!(
        elapsed < ack_timeout.0 + Duration::from_millis(500),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn an_invalid_event_is_permanent_without_a_server() {
    let sink = NatsSink::connect(config(
        "nats://127.0.0.1:1".to_owned(),
        None,
        HumanDuration::from_millis(300),
    ))
    .await
    .expect("sink");
    for destination in [
        "",
        "a b",
        "orders..created",
        "orders.*",
        "orders.>",
        ".orders",
        "orders.",
        "*",
        ">",
        "orders.*.created",
        "a\u{a0}b",
        "a\x0bb",
    ] {
        let err = sink
            .publish(&event("evt-1", destination, b"{}"))
            .await
            .expect_err(destination);
        assert!(
            matches!(err, SinkError::Permanent(_)),
            "{destination:?}: {err:?}"
        );
    }
    let err = sink
        .publish(&event("evt\r\n1", "orders.created", b"{}"))
        .await
        .expect_err("bad id");
    assert!(matches!(err, SinkError::Permanent(_)), "{err:?}");
}

#[tokio::test]
async fn config_is_checked_at_connect() {
    let stream = |name: &str, subjects: &[&str], create: bool| {
        Some(StreamConfig {
            name: name.to_owned(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            create,
            duplicate_window: default_duplicate_window(),
        })
    };
    let connect = |url: &str, stream| {
        let config = config(url.to_owned(), stream, default_ack_timeout());
        async move { NatsSink::connect(config).await }
    };
    let url = "nats://127.0.0.1:4222";
    assert!(
        connect("not a url", None)
            .await
            .unwrap_err()
            .contains("url")
    );
    assert!(
        connect(url, stream("A.B", &["a.>"], true))
            .await
            .unwrap_err()
            .contains("stream name")
    );
    assert!(
        connect(url, stream("A", &[], true))
            .await
            .unwrap_err()
            .contains("subjects")
    );
    assert!(
        connect(url, stream("A", &["a..b"], true))
            .await
            .unwrap_err()
            .contains("empty token")
    );
    // Not created here: its subjects are not needed.
    assert!(connect(url, stream("A", &[], false)).await.is_ok());
}

#[test]
fn config_defaults_and_unknown_fields() {
    let config: NatsSinkConfig = serde_json::from_value(serde_json::json!({
        "url": "nats://127.0.0.1:4222",
        "stream": { "name": "EVENTS", "subjects": ["orders.>"] }
    }))
    .expect("config");
    assert_eq!(config.ack_timeout, HumanDuration::from_secs(5));
    assert_eq!(config.mode, ContentMode::Structured);
    let stream = config.stream.expect("stream");
    assert!(stream.create);
    assert_eq!(stream.duplicate_window, HumanDuration::from_secs(120));

    let config: NatsSinkConfig = serde_json::from_value(serde_json::json!({
        "url": "nats://127.0.0.1:4222",
        "mode": "binary"
    }))
    .expect("config");
    assert_eq!(config.mode, ContentMode::Binary);

    let err = serde_json::from_value::<NatsSinkConfig>(serde_json::json!({
        "url": "nats://127.0.0.1:4222",
        "subject": "x"
    }))
    .unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
}
