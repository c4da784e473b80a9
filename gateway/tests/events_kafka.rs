//! Domain events end to end to Kafka: REST calls through the gateway publish
//! CloudEvents through the outbox and the `kafka` sink to tansu, a
//! Kafka-protocol broker (the machine's, on 127.0.0.1:19092, or one a test
//! starts and stops itself to play an outage), read back with rskafka.
//!
//! tansu is Kafka-compatible, not Kafka: these tests prove the sink speaks
//! the protocol as tansu understands it. scripts/test.sh installs and starts
//! it; without it these tests fail, they do not skip.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestGateway;
use common::nats::{free_port, wait_for_port};
use http::StatusCode;
use rskafka::client::ClientBuilder;
use rskafka::client::partition::UnknownTopicHandling;
use serde_json::{Value, json};
use switchyard::events::sinks::kafka::{KafkaSink, KafkaSinkConfig, partition_for};
use switchyard::events::sinks::{Outgoing, Sink, SinkError};

/// The machine's broker (scripts/test.sh starts it).
const TANSU: &str = "127.0.0.1:19092";

/// Partitions of the topics the tests create.
const PARTITIONS: u32 = 3;

fn unique() -> String {
    format!("{:x}", fastrand::u64(..))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-{name}-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Fails (does not skip) when no broker answers on [`TANSU`].
async fn require_tansu() {
    let probe = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(TANSU),
    )
    .await;
    let problem = match probe {
        Ok(Ok(_)) => return,
        Ok(Err(e)) => e.to_string(),
        Err(_) => "connect timed out".to_owned(),
    };
    panic!(
        "this test needs tansu, a Kafka-protocol broker, on {TANSU} \
         (scripts/test.sh installs and starts it): {problem}"
    );
}

/// A tansu broker of the test's own (in-memory storage), killed when
/// dropped.
struct OwnTansu {
    child: Child,
    port: u16,
}

impl OwnTansu {
    fn start(port: u16) -> OwnTansu {
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new("tansu")
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `tansu` ({e}): scripts/test.sh installs it \
                     (cargo install tansu --locked --features dynostore)"
                )
            });
        OwnTansu { child, port }
    }

    fn broker(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn ready(&self) {
        wait_for_port(self.port).await;
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stopped and started again on the same port (with empty storage:
    /// memory storage does not survive a restart).
    fn restart(&mut self) {
        self.stop();
        *self = OwnTansu::start(self.port);
    }
}

impl Drop for OwnTansu {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The demo gateway with CreateOrder publishing `com.example.order.created`
/// with `subject` (a template) to `topic` through a kafka sink on `broker`
/// (`extra`: more sink keys), outbox in `dir`.
async fn gateway(broker: &str, topic: &str, subject: &str, extra: &str, dir: &Path) -> TestGateway {
    let demo = common::spawn_demo().await;
    let events = format!(
        r#"
events:
  outbox: {{ path: "{outbox}", flush_interval: 2ms, retry_initial: 50ms, retry_max: 200ms }}
  sinks:
    bus: {{ kafka: {{ brokers: ["{broker}"], ack_timeout: 1s, create_topic: {{ partitions: {PARTITIONS}, replication_factor: 1 }} {extra} }} }}
"#,
        outbox = dir.join("outbox.redb").display(),
    );
    let yaml = common::demo_config(&demo, "", &events).replace(
        "upstream: orders ",
        &format!(
            r#"upstream: orders, events: [{{ method: CreateOrder, type: com.example.order.created, subject: "{subject}", sink: bus, destination: "{topic}" }}] "#
        ),
    );
    TestGateway::start_yaml(demo, &yaml).await
}

/// Creates an order for `user`; returns its id.
async fn create_order(gw: &TestGateway, user: &str) -> String {
    let reply = gw
        .post_json(
            "/v1/orders",
            &json!({"userId": user, "items": [{"sku": "A-1", "qty": 1}]}).to_string(),
        )
        .await;
    let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    assert_eq!(reply.status, StatusCode::OK, "{body}");
    body["id"].as_str().expect("an order id").to_owned()
}

/// One record read back.
#[derive(Debug)]
struct Consumed {
    partition: i32,
    key: String,
    headers: BTreeMap<String, String>,
    value: Vec<u8>,
}

impl Consumed {
    fn event(&self) -> Value {
        serde_json::from_slice(&self.value).expect("the value is JSON")
    }
}

/// The records of `topic` in partition, then offset order: once at least
/// `want` are there and nothing more came for a moment, or after 15 s.
async fn consume(broker: &str, topic: &str, want: usize, partition_count: u32) -> Vec<Consumed> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let client = loop {
        match ClientBuilder::new(vec![broker.to_owned()]).build().await {
            Ok(client) => break client,
            Err(e) if Instant::now() > deadline => panic!("cannot reach {broker}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    // The sink creates the topic with its first event.
    let partitions = loop {
        let topics = client.list_topics().await.expect("metadata");
        if let Some(found) = topics.into_iter().find(|t| t.name == topic) {
            break found.partitions;
        }
        assert!(Instant::now() < deadline, "no topic {topic:?} on {broker}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        partitions.len(),
        partition_count as usize,
        "the topic's partitions"
    );
    let mut readers = Vec::new();
    for &partition in &partitions {
        let reader = client
            .partition_client(topic, partition, UnknownTopicHandling::Retry)
            .await
            .expect("partition client");
        readers.push((partition, reader, 0_i64, Vec::new()));
    }
    let mut quiet_since: Option<Instant> = None;
    loop {
        let mut got_any = false;
        for (partition, reader, next, out) in &mut readers {
            let (records, _high) = reader
                .fetch_records(*next, 1..1_000_000, 100)
                .await
                .expect("fetch");
            for record in records {
                got_any = true;
                *next = record.offset + 1;
                let record = record.record;
                out.push(Consumed {
                    partition: *partition,
                    key: String::from_utf8(record.key.unwrap_or_default()).expect("UTF-8 key"),
                    headers: record
                        .headers
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8(v).expect("UTF-8 header")))
                        .collect(),
                    value: record.value.unwrap_or_default(),
                });
            }
        }
        let total: usize = readers.iter().map(|r| r.3.len()).sum();
        if got_any {
            quiet_since = None;
        } else if total >= want {
            // Enough: a little longer shows whether more (duplicates) come.
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_millis(500) {
                break;
            }
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    readers.into_iter().flat_map(|r| r.3).collect()
}

/// Drops a record repeated right after itself (a retry whose first attempt
/// was stored after all: at least once).
fn without_adjacent_duplicates(ids: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if out.last() != Some(&id) {
            out.push(id);
        }
    }
    out
}

#[tokio::test]
async fn a_created_order_publishes_one_cloudevent_keyed_by_its_subject() {
    require_tansu().await;
    let topic = format!("t{}.orders.created", unique());
    let dir = temp_dir("events-kafka");
    let gw = gateway(TANSU, &topic, "orders/{response.id}", "", &dir).await;
    let first = create_order(&gw, "2").await;
    let second = create_order(&gw, "2").await;

    let got = consume(TANSU, &topic, 2, PARTITIONS).await;
    assert_eq!(got.len(), 2, "{got:?}");
    let by_data: HashMap<String, &Consumed> = got
        .iter()
        .map(|c| (c.event()["data"]["id"].as_str().unwrap().to_owned(), c))
        .collect();
    let record = by_data[&first];
    let event = record.event();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "com.example.order.created");
    assert_eq!(event["source"], "/switchyard/orders");
    assert_eq!(event["subject"], format!("orders/{first}"));
    assert_eq!(event["data"]["userId"], "2");
    assert_eq!(record.key, format!("orders/{first}"), "key = subject");
    assert_eq!(
        record.partition,
        partition_for(record.key.as_bytes(), PARTITIONS),
        "the default partitioner's choice"
    );
    assert_eq!(
        record.headers.get("content-type").map(String::as_str),
        Some("application/cloudevents+json")
    );
    assert_eq!(
        record.headers.get("ce_id"),
        event["id"].as_str().map(str::to_owned).as_ref()
    );
    let second_event = by_data[&second].event();
    assert_ne!(event["id"], second_event["id"], "event ids are unique");
    assert_eq!(by_data[&second].key, format!("orders/{second}"));

    // Delivered: the outbox is empty again.
    for _ in 0..100 {
        if gw.metric("switchyard_outbox_depth{sink=\"bus\"}").await == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        gw.metric("switchyard_events_total{outcome=\"published\",sink=\"bus\",")
            .await,
        Some(2.0)
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn events_with_the_same_key_land_in_one_partition_in_order() {
    require_tansu().await;
    let topic = format!("t{}.orders.by-user", unique());
    let dir = temp_dir("events-kafka-keys");
    let gw = gateway(TANSU, &topic, "users/{request.user_id}", "", &dir).await;
    let users = ["1", "2", "3", "4"];
    let mut created: HashMap<String, Vec<String>> = HashMap::new();
    for _round in 0..5 {
        for user in users {
            let id = create_order(&gw, user).await;
            created.entry(format!("users/{user}")).or_default().push(id);
        }
    }

    let got = consume(TANSU, &topic, 20, PARTITIONS).await;
    let mut seen: HashMap<String, (i32, Vec<String>)> = HashMap::new();
    for record in &got {
        let entry = seen
            .entry(record.key.clone())
            .or_insert((record.partition, Vec::new()));
        assert_eq!(entry.0, record.partition, "{} in one partition", record.key);
        entry
            .1
            .push(record.event()["data"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), users.len(), "{got:?}");
    let used: std::collections::HashSet<i32> = seen.values().map(|(p, _)| *p).collect();
    assert!(used.len() > 1, "keys spread over partitions: {used:?}");
    for (key, ids) in created {
        let (partition, got_ids) = seen.remove(&key).expect("the key's events");
        assert_eq!(
            partition,
            partition_for(key.as_bytes(), PARTITIONS),
            "{key}"
        );
        assert_eq!(
            without_adjacent_duplicates(got_ids),
            ids,
            "{key}: every event, in order"
        );
    }
    drop(gw);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn binary_mode_puts_attributes_in_ce_headers_and_the_data_in_the_value() {
    require_tansu().await;
    let topic = format!("t{}.orders.binary", unique());
    let dir = temp_dir("events-kafka-binary");
    let gw = gateway(
        TANSU,
        &topic,
        "orders/{response.id}",
        ", mode: binary",
        &dir,
    )
    .await;
    let order = create_order(&gw, "7").await;

    let got = consume(TANSU, &topic, 1, PARTITIONS).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let record = &got[0];
    let header = |name: &str| record.headers.get(name).map(String::as_str);
    assert_eq!(header("content-type"), Some("application/json"));
    assert_eq!(header("ce_specversion"), Some("1.0"));
    assert_eq!(header("ce_type"), Some("com.example.order.created"));
    assert_eq!(header("ce_source"), Some("/switchyard/orders"));
    let subject = format!("orders/{order}");
    assert_eq!(header("ce_subject"), Some(subject.as_str()));
    assert!(header("ce_id").is_some_and(|id| !id.is_empty()));
    assert!(header("ce_time").is_some_and(|t| t.ends_with('Z')));
    assert_eq!(record.key, subject);
    let data: Value = serde_json::from_slice(&record.value).expect("the value is the data");
    assert_eq!(data["id"], order.as_str());
    assert_eq!(data["userId"], "7");
    assert!(
        data.get("specversion").is_none(),
        "not a structured event: {data}"
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn events_wait_in_the_outbox_while_kafka_is_down_and_all_arrive_in_order_per_key() {
    let mut tansu = OwnTansu::start(free_port());
    tansu.ready().await;
    let broker = tansu.broker();
    let topic = "outage.orders";
    let dir = temp_dir("events-kafka-outage");
    let gw = gateway(&broker, topic, "users/{request.user_id}", "", &dir).await;
    // One event while the broker is up (creates the topic).
    create_order(&gw, "1").await;
    assert_eq!(consume(&broker, topic, 1, PARTITIONS).await.len(), 1);

    tansu.stop();
    // The broker is down: requests still succeed, events wait.
    let mut created: HashMap<String, Vec<String>> = HashMap::new();
    for i in 0..21 {
        let user = ["1", "2", "3"][i % 3];
        let id = create_order(&gw, user).await;
        created.entry(format!("users/{user}")).or_default().push(id);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = gw
        .metric("switchyard_outbox_depth{sink=\"bus\"}")
        .await
        .unwrap();
    assert!(waiting >= 20.0, "{waiting} events waiting");

    // Back (empty: memory storage): the sink creates the topic again and
    // delivers what waited.
    tansu.restart();
    tansu.ready().await;
    let got = consume(&broker, topic, 21, PARTITIONS).await;
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    let mut ids = std::collections::HashSet::new();
    for record in &got {
        let event = record.event();
        ids.insert(event["id"].as_str().unwrap().to_owned());
        by_key
            .entry(record.key.clone())
            .or_default()
            .push(event["data"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 21, "every event, distinct ids: {got:?}");
    for (key, want) in created {
        let got_ids = by_key.remove(&key).expect("the key's events");
        assert_eq!(
            without_adjacent_duplicates(got_ids),
            want,
            "{key}: in order"
        );
    }
    drop(gw);
    drop(tansu);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn without_create_topic_a_missing_topic_is_retried_until_it_exists() {
    require_tansu().await;
    let config: KafkaSinkConfig =
        serde_json::from_value(json!({"brokers": [TANSU], "ack_timeout": "2s"})).unwrap();
    let sink = KafkaSink::connect(&config).await.expect("sink");
    let topic = format!("t{}.created-later", unique());
    let event = Outgoing {
        id: "evt-1".to_owned(),
        event_type: "t".to_owned(),
        subject: None,
        destination: topic.clone(),
        body: br#"{"specversion":"1.0","id":"evt-1","source":"/s","type":"t"}"#.to_vec(),
    };
    // tansu does not create topics on first use: the event waits.
    let err = sink.publish(&event).await.expect_err("no such topic");
    assert!(
        matches!(&err, SinkError::Transient(m) if m.contains("does not exist")),
        "{err:?}"
    );
    // Someone creates it: the retry goes through, keyed by the id.
    let admin = ClientBuilder::new(vec![TANSU.to_owned()])
        .build()
        .await
        .expect("admin client");
    admin
        .controller_client()
        .expect("controller")
        .create_topic(&topic, 2, 1, 5_000)
        .await
        .expect("create the topic");
    sink.publish(&event)
        .await
        .expect("published once the topic exists");
    let got = consume(TANSU, &topic, 1, 2).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].key, "evt-1", "no subject: the key is the id");
    assert_eq!(got[0].partition, partition_for(b"evt-1", 2));
}

#[tokio::test]
async fn the_gateway_starts_while_kafka_is_down_and_delivers_once_it_comes_up() {
    let port = free_port();
    let broker = format!("127.0.0.1:{port}");
    let topic = "late.orders";
    let dir = temp_dir("events-kafka-late");
    // Nothing listens yet: the sink connects in the background.
    let gw = gateway(&broker, topic, "orders/{response.id}", "", &dir).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(create_order(&gw, "5").await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tansu = OwnTansu::start(port);
    tansu.ready().await;
    let got = consume(&broker, topic, 5, PARTITIONS).await;
    let mut got_ids: Vec<String> = got
        .iter()
        .map(|c| c.event()["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    got_ids.sort();
    ids.sort();
    assert_eq!(got_ids, ids, "every event, once");
    drop(gw);
    drop(tansu);
    let _ = std::fs::remove_dir_all(dir);
}
