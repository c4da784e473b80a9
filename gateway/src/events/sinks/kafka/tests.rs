//! The sink without a broker: configuration checks, connecting while Kafka
//! is down, events refused before anything is sent. Against a real broker:
//! gateway/tests/events_kafka.rs.

use std::time::Instant;

use super::*;

fn config(brokers: &[&str], ack_timeout: HumanDuration) -> KafkaSinkConfig {
    KafkaSinkConfig {
        brokers: brokers.iter().map(|b| b.to_string()).collect(),
        mode: ContentMode::Structured,
        ack_timeout,
        create_topic: None,
        max_in_flight: 64,
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

/// A loopback port nothing listens on (at the time of asking).
fn dead_broker() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    format!("127.0.0.1:{port}")
}

#[tokio::test]
async fn connect_returns_at_once_and_publishes_fail_transient_while_kafka_is_down() {
    let broker = dead_broker();
    let ack_timeout = HumanDuration::from_millis(300);
    let started = Instant::now();
    let sink = KafkaSink::connect(&config(&[&broker], ack_timeout))
        .await
        .expect("connect does not need a broker");
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "connect returns at once"
    );

    let started = Instant::now();
    let err = sink
        .publish(&event("evt-1", "orders.created", b"{}"))
        .await
        .expect_err("no broker");
    let elapsed = started.elapsed();
    assert!(
        matches!(&err, SinkError::Transient(m) if m.contains("not connected to Kafka")),
        "{err:?}"
    );
    assert!(elapsed >= ack_timeout.0, "waited: {elapsed:?}");
    assert!(
        elapsed < ack_timeout.0 + Duration::from_millis(500),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn an_event_kafka_can_never_take_is_permanent_without_a_broker() {
    let mut config = config(&[&dead_broker()], HumanDuration::from_millis(300));
    config.mode = ContentMode::Binary;
    let sink = KafkaSink::connect(&config).await.expect("sink");
    for topic in [
        "",
        "orders created",
        "orders/created",
        "..",
        &"x".repeat(250),
    ] {
        let err = sink
            .publish(&event("evt-1", topic, b"{}"))
            .await
            .expect_err(topic);
        assert!(matches!(err, SinkError::Permanent(_)), "{topic:?}: {err:?}");
    }
    // Binary mode reads the stored event back: one that is not JSON cannot be.
    let err = sink
        .publish(&event("evt-1", "orders", b"not json"))
        .await
        .expect_err("unreadable");
    assert!(matches!(err, SinkError::Permanent(_)), "{err:?}");
}

#[tokio::test]
async fn config_is_checked_at_connect() {
    let timeout = default_ack_timeout();
    let connect = |config: KafkaSinkConfig| async move { KafkaSink::connect(&config).await };
    let err = |result: Result<KafkaSink, String>| result.expect_err("refused");

    assert!(err(connect(config(&[], timeout)).await).contains("`brokers` is empty"));
    for bad in [
        "kafka:",
        "no-port",
        ":9092",
        "kafka://host:9092",
        "host:0",
        "host:x",
    ] {
        assert!(
            err(connect(config(&[bad], timeout)).await).contains("`brokers`"),
            "{bad}"
        );
    }
    assert!(
        err(connect(config(&["h:9092"], HumanDuration::from_millis(0))).await)
            .contains("ack_timeout")
    );
    let with_topic = |partitions, replication_factor| {
        let mut config = config(&["h:9092"], timeout);
        config.create_topic = Some(CreateTopicConfig {
            partitions,
            replication_factor,
        });
        config
    };
    assert!(err(connect(with_topic(0, 1)).await).contains("partitions"));
    assert!(err(connect(with_topic(1 << 31, 1)).await).contains("partitions"));
    assert!(err(connect(with_topic(3, 0)).await).contains("replication_factor"));
    assert!(err(connect(with_topic(3, 40_000)).await).contains("replication_factor"));
    assert!(connect(with_topic(3, 1)).await.is_ok());
    for bad in [0, 1025] {
        let mut config = config(&["h:9092"], timeout);
        config.max_in_flight = bad;
        assert!(
            err(connect(config).await).contains("max_in_flight"),
            "{bad}"
        );
    }
    assert!(
        connect(config(&["kafka-1:9092", "[::1]:9093"], timeout))
            .await
            .is_ok()
    );
}

#[test]
fn config_defaults_and_unknown_fields() {
    let config: KafkaSinkConfig = serde_json::from_value(serde_json::json!({
        "brokers": ["127.0.0.1:9092"],
    }))
    .expect("config");
    assert_eq!(config.ack_timeout, HumanDuration::from_secs(5));
    assert_eq!(config.mode, ContentMode::Structured);
    assert_eq!(config.create_topic, None);
    assert_eq!(config.max_in_flight, 64);

    let config: KafkaSinkConfig = serde_json::from_value(serde_json::json!({
        "brokers": ["127.0.0.1:9092"],
        "mode": "binary",
        "ack_timeout": "2s",
        "create_topic": { "partitions": 6, "replication_factor": 3 },
    }))
    .expect("config");
    assert_eq!(config.mode, ContentMode::Binary);
    assert_eq!(
        config.create_topic,
        Some(CreateTopicConfig {
            partitions: 6,
            replication_factor: 3
        })
    );

    for bad in [
        serde_json::json!({ "brokers": ["h:1"], "topic": "x" }),
        serde_json::json!({ "brokers": ["h:1"], "create_topic": { "partitions": 1 } }),
        serde_json::json!({ "brokers": ["h:1"], "mode": "json" }),
    ] {
        assert!(
            serde_json::from_value::<KafkaSinkConfig>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}
