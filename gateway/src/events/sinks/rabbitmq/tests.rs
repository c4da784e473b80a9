use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions};

use super::*;

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn event(queue: &str, n: u32) -> Outgoing {
    Outgoing {
        id: format!("id-{n}"),
        destination: queue.to_owned(),
        body: format!("{{\"n\":{n}}}").into_bytes(),
        ..Default::default()
    }
}

/// A sink config for `url` in `mode`, declaring (and binding to the default
/// exchange) `queue` when given.
fn config(
    url: &str,
    queue: Option<&str>,
    mode: ContentMode,
    timeout: HumanDuration,
) -> RabbitMqSinkConfig {
    RabbitMqSinkConfig {
        url: url.to_owned(),
        exchange: String::new(),
        declare_exchange: None,
        declare_queue: queue.map(|name| QueueConfig {
            name: name.to_owned(),
            binding_key: String::new(),
        }),
        mode,
        timeout,
        max_in_flight: 64,
    }
}

/// A queue name no other run uses.
fn unique_queue() -> String {
    format!("switchyard-test-{:x}", fastrand::u64(..))
}

/// Publishes `events` to `sink`, whose broker must be up.
async fn publish_all(sink: &RabbitMqSink, events: &[Outgoing]) {
    for event in events {
        sink.publish(event).await.expect(
            "this test needs RabbitMQ on 127.0.0.1:5672 (guest/guest; scripts/test.sh starts it)",
        );
    }
}

/// The next `n` messages of `queue`, acknowledged; then the queue is deleted.
async fn consume(queue: &str, n: usize) -> Vec<lapin::message::Delivery> {
    let conn = Connection::connect(AMQP, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut deliveries = Vec::with_capacity(n);
    for _ in 0..n {
        let delivery = tokio::time::timeout(Duration::from_secs(5), consumer.next())
            .await
            .expect("a message")
            .expect("open")
            .expect("delivered");
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        deliveries.push(delivery);
    }
    let _ = channel.queue_delete(queue.into(), Default::default()).await;
    deliveries
}

#[tokio::test]
async fn confirmed_persistent_messages_reach_a_bound_queue_in_order() {
    let queue = unique_queue();
    let sink = RabbitMqSink::new(&config(
        AMQP,
        Some(&queue),
        ContentMode::Structured,
        HumanDuration::from_secs(5),
    ))
    .unwrap();
    let events: Vec<Outgoing> = (0..3).map(|n| event(&queue, n)).collect();
    publish_all(&sink, &events).await;
    for (n, delivery) in consume(&queue, 3).await.iter().enumerate() {
        assert_eq!(delivery.data, format!("{{\"n\":{n}}}").into_bytes());
        let props = &delivery.properties;
        assert_eq!(props.delivery_mode(), &Some(2));
        assert_eq!(
            props.content_type().as_ref().map(|s| s.as_str()),
            Some(STRUCTURED_CONTENT_TYPE)
        );
        assert_eq!(
            props.headers(),
            &None,
            "structured: no cloudEvents_ headers"
        );
        assert_eq!(
            props.message_id().as_ref().map(|s| s.as_str()),
            Some(format!("id-{n}").as_str())
        );
    }
}

#[tokio::test]
async fn an_unroutable_event_is_a_retried_failure_not_a_silent_loss() {
    let sink = RabbitMqSink::new(&config(
        AMQP,
        None,
        ContentMode::Structured,
        HumanDuration::from_secs(5),
    ))
    .unwrap();
    let nowhere = format!("switchyard-no-such-queue-{:x}", fastrand::u64(..));
    match sink.publish(&event(&nowhere, 1)).await {
        Err(SinkError::Transient(e)) => assert!(e.contains("unroutable"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_broker_is_transient_within_the_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sink = RabbitMqSink::new(&config(
        &format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        None,
        ContentMode::Structured,
        HumanDuration::from_millis(500),
    ))
    .unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(
        sink.publish(&event("q", 1)).await,
        Err(SinkError::Transient(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// The text of header `name` (a long string), if present.
fn header<'p>(props: &'p BasicProperties, name: &str) -> Option<&'p str> {
    let value = props.headers().as_ref()?.inner().get(name)?;
    match value {
        AMQPValue::LongString(text) => Some(std::str::from_utf8(text.as_bytes()).expect("UTF-8")),
        other => panic!("{name} is {other:?}, expected a long string"),
    }
}

#[tokio::test]
async fn binary_mode_sends_the_data_as_body_and_attributes_as_cloud_events_headers() {
    let queue = unique_queue();
    let sink = RabbitMqSink::new(&config(
        AMQP,
        Some(&queue),
        ContentMode::Binary,
        HumanDuration::from_secs(5),
    ))
    .unwrap();
    let stored = |id: &str, tail: &str| {
        Outgoing {
        id: id.to_owned(),
        destination: queue.clone(),
        body: format!(
            r#"{{"specversion":"1.0","id":"{id}","source":"/shop/orders","type":"com.example.order.created","subject":"orders/7","time":"2026-11-27T00:00:00.000Z","tenant":"acme corp"{tail}}}"#
        )
        .into_bytes(),
        ..Default::default()
    }
    };
    let events = [
        stored(
            "evt-1",
            r#","datacontenttype":"application/json","dataschema":"proto:demo.Order","data":{"id":"7","qty":2}"#,
        ),
        // Protobuf data travels base64 in the stored event, raw here.
        stored(
            "evt-2",
            r#","datacontenttype":"application/protobuf","data_base64":"CgE3""#,
        ),
        // No data: an empty body and no content type.
        stored("evt-3", ""),
    ];
    publish_all(&sink, &events).await;
    let deliveries = consume(&queue, events.len()).await;

    let content_type =
        |props: &BasicProperties| props.content_type().as_ref().map(|s| s.as_str().to_owned());
    let message_id =
        |props: &BasicProperties| props.message_id().as_ref().map(|s| s.as_str().to_owned());

    let props = &deliveries[0].properties;
    assert_eq!(deliveries[0].data, br#"{"id":"7","qty":2}"#);
    assert_eq!(props.delivery_mode(), &Some(2));
    assert_eq!(message_id(props).as_deref(), Some("evt-1"));
    assert_eq!(content_type(props).as_deref(), Some("application/json"));
    for (name, value) in [
        ("cloudEvents_specversion", "1.0"),
        ("cloudEvents_id", "evt-1"),
        ("cloudEvents_source", "/shop/orders"),
        ("cloudEvents_type", "com.example.order.created"),
        ("cloudEvents_subject", "orders/7"),
        ("cloudEvents_time", "2026-11-27T00:00:00.000Z"),
        ("cloudEvents_dataschema", "proto:demo.Order"),
        // Headers are AMQP strings: no encoding.
        ("cloudEvents_tenant", "acme corp"),
    ] {
        assert_eq!(header(props, name), Some(value), "{name}");
    }
    // `datacontenttype` is the content type only (binding §3.1.3); the data
    // is the body.
    for absent in [
        "cloudEvents_datacontenttype",
        "cloudEvents_data",
        "cloudEvents_data_base64",
    ] {
        assert_eq!(header(props, absent), None, "{absent}");
    }

    let props = &deliveries[1].properties;
    assert_eq!(deliveries[1].data, b"\x0a\x017");
    assert_eq!(message_id(props).as_deref(), Some("evt-2"));
    assert_eq!(content_type(props).as_deref(), Some("application/protobuf"));
    assert_eq!(header(props, "cloudEvents_id"), Some("evt-2"));

    let props = &deliveries[2].properties;
    assert!(deliveries[2].data.is_empty(), "{:?}", deliveries[2].data);
    assert_eq!(props.delivery_mode(), &Some(2));
    assert_eq!(message_id(props).as_deref(), Some("evt-3"));
    assert_eq!(content_type(props), None);
    assert_eq!(header(props, "cloudEvents_id"), Some("evt-3"));
}

#[tokio::test]
async fn binary_mode_refuses_an_unreadable_stored_event_as_permanent_without_a_broker() {
    // Refused before any connection: nothing listens on port 1.
    let sink = RabbitMqSink::new(&config(
        "amqp://guest:guest@127.0.0.1:1/%2f",
        None,
        ContentMode::Binary,
        HumanDuration::from_secs(5),
    ))
    .unwrap();
    for body in [
        &b"not json"[..],
        b"[1]",
        br#"{"id":"e1","data_base64":"%%"}"#,
    ] {
        let mut event = event("q", 1);
        event.body = body.to_vec();
        match sink.publish(&event).await {
            Err(SinkError::Permanent(e)) => assert!(e.contains("id-1"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn the_mode_defaults_to_structured() {
    let config: RabbitMqSinkConfig =
        serde_json::from_value(serde_json::json!({ "url": AMQP })).expect("config");
    assert_eq!(config.mode, ContentMode::Structured);
    let config: RabbitMqSinkConfig =
        serde_json::from_value(serde_json::json!({ "url": AMQP, "mode": "binary" }))
            .expect("config");
    assert_eq!(config.mode, ContentMode::Binary);
}

#[tokio::test]
async fn concurrent_publishes_are_each_confirmed_once_and_an_unroutable_one_fails_alone() {
    use futures_util::StreamExt as _;

    let queue = unique_queue();
    let mut cfg = config(
        AMQP,
        Some(&queue),
        ContentMode::Structured,
        HumanDuration::from_secs(5),
    );
    cfg.max_in_flight = 32;
    let sink = RabbitMqSink::new(&cfg).unwrap();
    assert_eq!(sink.max_in_flight(), 32);
    // One unroutable event among them: its failure must not break the
    // others in flight on the same channel.
    let nowhere = format!("switchyard-no-such-queue-{:x}", fastrand::u64(..));
    let mut events: Vec<Outgoing> = (0..100).map(|n| event(&queue, n)).collect();
    events.insert(50, event(&nowhere, 999));
    let sink = &sink;
    let results: Vec<(String, Result<(), SinkError>)> = futures_util::stream::iter(&events)
        .map(|e| async move { (e.destination.clone(), sink.publish(e).await) })
        .buffer_unordered(32)
        .collect()
        .await;
    for (destination, result) in &results {
        if *destination == nowhere {
            assert!(
                matches!(result, Err(SinkError::Transient(e)) if e.contains("unroutable")),
                "{result:?}"
            );
        } else {
            assert!(result.is_ok(), "{result:?}");
        }
    }
    let mut ids: Vec<String> = consume(&queue, 100)
        .await
        .iter()
        .map(|d| d.properties.message_id().as_ref().unwrap().to_string())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = (0..100).map(|n| format!("id-{n}")).collect();
    expected.sort();
    assert_eq!(ids, expected, "each event once");
    for bad in [0, 1025] {
        cfg.max_in_flight = bad;
        assert!(RabbitMqSink::new(&cfg).is_err());
    }
}
