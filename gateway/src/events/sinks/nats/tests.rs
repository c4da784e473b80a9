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
    require_nats().await;
    let (stream, prefix) = unique();
    let sink = NatsSink::connect(config(
        format!("nats://{NATS}"),
        Some(StreamConfig {
            name: stream.clone(),
            subjects: vec![format!("{prefix}.>")],
            create: true,
            duplicate_window: default_duplicate_window(),
        }),
        default_ack_timeout(),
    ))
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

#[tokio::test]
async fn publishes_body_and_headers_to_jetstream() {
    with_stream(|sink, js, stream, prefix| async move {
        let body = br#"{"specversion":"1.0","id":"evt-1","type":"t","source":"/s","data":{"a":1}}"#;
        let event = event("evt-1", &format!("{prefix}.orders"), body);
        sink.publish(&event).await.expect("publish is acked");

        let consumer = js
            .get_stream(&stream)
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
        let message = messages
            .next()
            .await
            .expect("one message")
            .expect("message");
        assert_eq!(message.subject.as_str(), format!("{prefix}.orders"));
        assert_eq!(message.payload.as_ref(), body);
        let headers = message.headers.as_ref().expect("headers");
        assert_eq!(
            headers.get(NATS_MESSAGE_ID).map(|v| v.as_str()),
            Some("evt-1")
        );
        assert_eq!(
            headers.get("Content-Type").map(|v| v.as_str()),
            Some(CONTENT_TYPE)
        );
        message.ack().await.expect("ack");
        assert!(messages.next().await.is_none(), "only one message");
    })
    .await;
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
    let stream = config.stream.expect("stream");
    assert!(stream.create);
    assert_eq!(stream.duplicate_window, HumanDuration::from_secs(120));

    let err = serde_json::from_value::<NatsSinkConfig>(serde_json::json!({
        "url": "nats://127.0.0.1:4222",
        "subject": "x"
    }))
    .unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
}
