//! Domain events end to end: REST calls through the gateway publish
//! CloudEvents through the outbox to a real NATS JetStream (the machine's
//! server, or one a test starts and stops itself to play an outage).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream;
use common::TestGateway;
use common::nats::{OwnNats, consume, free_port};
use http::StatusCode;
use serde_json::{Value, json};
use switchyard_demo::Service;

fn unique() -> String {
    format!("{:x}", fastrand::u64(..))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-{name}-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The demo gateway with CreateOrder publishing `com.example.order.created`
/// to `url`, stream `stream` on `subject`, outbox in `dir`.
async fn gateway(url: &str, stream: &str, subject: &str, dir: &Path, outbox: &str) -> TestGateway {
    gateway_with(url, stream, subject, dir, outbox, "").await
}

/// As [`gateway`], with `definition` added to the event definition (`,
/// when_full: drop`); its CloudEvents subject is `orders/{response.id}`
/// unless `definition` sets one.
async fn gateway_with(
    url: &str,
    stream: &str,
    subject: &str,
    dir: &Path,
    outbox: &str,
    definition: &str,
) -> TestGateway {
    let demo = common::spawn_demo().await;
    let events = format!(
        r#"
graphql: {{}}
events:
  outbox: {{ path: "{outbox_path}", flush_interval: 2ms, retry_initial: 50ms, retry_max: 200ms {outbox} }}
  sinks:
    bus: {{ nats: {{ url: "{url}", ack_timeout: 500ms, stream: {{ name: {stream}, subjects: ["{subject}"] }} }} }}
"#,
        outbox_path = dir.join("outbox.redb").display(),
    );
    let ce_subject = match definition.contains("subject:") {
        true => "",
        false => r#"subject: "orders/{response.id}", "#,
    };
    let yaml = common::demo_config(&demo, "", &events).replace(
        "upstream: orders ",
        &format!(
            r#"upstream: orders, events: [{{ method: CreateOrder, type: com.example.order.created, {ce_subject}sink: bus, destination: "{subject}"{definition} }}] "#
        ),
    );
    TestGateway::start_yaml(demo, &yaml).await
}

async fn create_order(gw: &TestGateway, user: &str) -> (StatusCode, Value) {
    let reply = gw
        .post_json(
            "/v1/orders",
            &json!({"userId": user, "items": [{"sku": "A-1", "qty": 1}]}).to_string(),
        )
        .await;
    let status = reply.status;
    (
        status,
        serde_json::from_slice(&reply.body).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_created_order_publishes_one_cloudevent_to_jetstream() {
    let url = "nats://127.0.0.1:4222";
    let (stream, subject) = (
        format!("T{}", unique()),
        format!("t{}.orders.created", unique()),
    );
    let dir = temp_dir("events");
    let gw = gateway(url, &stream, &subject, &dir, "").await;
    let (status, order) = create_order(&gw, "2").await;
    assert_eq!(status, StatusCode::OK, "{order}");
    let got = consume(url, &stream, 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    let (msg_id, event) = &got[0];
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "com.example.order.created");
    assert_eq!(event["source"], "/switchyard/orders");
    assert_eq!(
        event["subject"],
        format!("orders/{}", order["id"].as_str().unwrap())
    );
    assert_eq!(event["datacontenttype"], "application/json");
    assert_eq!(event["data"]["id"], order["id"]);
    assert_eq!(event["data"]["userId"], "2");
    assert_eq!(&event["id"], msg_id, "Nats-Msg-Id is the event id");
    assert!(event["time"].as_str().unwrap().ends_with('Z'), "{event}");
    // The call's trace context (started at the edge: the client sent
    // none), as the distributed tracing extension.
    let traceparent = event["traceparent"].as_str().unwrap_or_default();
    assert!(
        traceparent.len() == 55 && traceparent.starts_with("00-"),
        "{event}"
    );
    // Delivered: the outbox is empty again.
    for _ in 0..100 {
        if gw.metric("switchyard_outbox_depth{sink=\"bus\"}").await == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        gw.metric("switchyard_outbox_depth{sink=\"bus\"}").await,
        Some(0.0)
    );
    assert_eq!(
        gw.metric(
            "switchyard_events_total{outcome=\"published\",sink=\"bus\",type=\"com.example.order.created\"}"
        )
        .await,
        Some(1.0),
        "counted by sink, type and outcome"
    );
    let _ = async_nats::connect(url)
        .await
        .map(|c| async move { jetstream::new(c).delete_stream(&stream).await });
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_graphql_mutation_publishes_the_routes_event_too() {
    let url = "nats://127.0.0.1:4222";
    let (stream, subject) = (
        format!("T{}", unique()),
        format!("t{}.orders.created", unique()),
    );
    let dir = temp_dir("events-graphql");
    let gw = gateway(url, &stream, &subject, &dir, "").await;
    let reply = gw
        .post_json(
            "/graphql",
            &json!({"query": r#"mutation { createOrder(userId: "4", items: [{sku: "B-2", qty: 2}]) { id } }"#})
                .to_string(),
        )
        .await
        .json();
    let id = reply["data"]["createOrder"]["id"].clone();
    assert!(id.is_string(), "{reply}");
    let got = consume(url, &stream, 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1["data"]["id"], id);
    assert_eq!(got[0].1["type"], "com.example.order.created");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn events_wait_in_the_outbox_while_the_broker_is_down_and_all_arrive_in_order_per_subject() {
    let dir = temp_dir("events-outage");
    let mut nats = OwnNats::start(free_port(), &dir.join("js"));
    nats.ready().await;
    let url = format!("nats://127.0.0.1:{}", nats.port);
    let (stream, subject) = ("OUTAGE", "outage.orders.created");
    // One subject per user: the relay publishes up to max_in_flight (64) at
    // once, never two of one subject, so each user's events keep their order.
    let per_user = r#", subject: "users/{request.user_id}""#;
    let gw = gateway_with(&url, stream, subject, &dir, "", per_user).await;
    // One event while the broker is up (creates the stream).
    let (status, _) = create_order(&gw, "1").await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..100 {
        if gw.metric("switchyard_outbox_depth{sink=\"bus\"}").await == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nats.stop();
    // The broker is down: requests still succeed, events wait.
    let mut ids: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for n in 0..30 {
        let user = ["3", "4", "5"][n % 3];
        let (status, order) = create_order(&gw, user).await;
        assert_eq!(status, StatusCode::OK, "{order}");
        ids.entry(user)
            .or_default()
            .push(order["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = gw
        .metric("switchyard_outbox_depth{sink=\"bus\"}")
        .await
        .unwrap();
    assert!(waiting >= 29.0, "{waiting} events waiting");
    nats.restart();
    nats.ready().await;
    let got = consume(&url, stream, 31, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 31, "every event, once");
    for (user, sent) in &ids {
        let arrived: Vec<&str> = got
            .iter()
            .filter(|(_, e)| e["subject"] == format!("users/{user}"))
            .map(|(_, e)| e["data"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(&arrived, sent, "user {user}: every event, in order");
    }
    let msg_ids: std::collections::HashSet<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(msg_ids.len(), 31, "distinct event ids");
    drop(gw);
    drop(nats);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_killed_under_load_fails_no_request_and_loses_no_event() {
    let dir = temp_dir("events-kill-under-load");
    let mut nats = OwnNats::start(free_port(), &dir.join("js"));
    nats.ready().await;
    let url = format!("nats://127.0.0.1:{}", nats.port);
    let (stream, subject) = ("KILLED", "killed.orders.created");
    let gw = std::sync::Arc::new(gateway(&url, stream, subject, &dir, "").await);
    let rss_before = common::rss_kib();
    // 16 clients creating orders back to back until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (gw, stop) = (gw.clone(), stop.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (status, order) = create_order(&gw, "7").await;
                    assert_eq!(status, StatusCode::OK, "{order}");
                    ids.push(order["id"].as_str().unwrap().to_owned());
                }
                ids
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    nats.stop(); // SIGKILL, mid-burst
    tokio::time::sleep(Duration::from_millis(700)).await;
    nats.restart();
    nats.ready().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sent = std::collections::HashSet::new();
    for client in clients {
        sent.extend(client.await.expect("every request was 200"));
    }
    assert!(sent.len() > 50, "only {} requests under load", sent.len());
    // A duplicate would take the place of a missing one: the sets below tell.
    let got = consume(&url, stream, sent.len(), Duration::from_secs(5)).await;
    let delivered: std::collections::HashSet<String> = got
        .iter()
        .map(|(_, e)| e["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        got.len(),
        sent.len(),
        "each event once (JetStream dedupes on the event id)"
    );
    assert_eq!(delivered, sent, "every acknowledged request's event");
    let grown = common::rss_kib().saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "memory grew by {grown} KiB");
    drop(gw);
    drop(nats);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_full_outbox_refuses_must_deliver_requests_with_503_before_the_upstream_acts() {
    let dir = temp_dir("events-full");
    // Nothing listens there: events stay in the outbox.
    let url = format!("nats://127.0.0.1:{}", free_port());
    let gw = gateway(&url, "FULL", "full.orders", &dir, ", max_events: 2").await;
    for _ in 0..2 {
        assert_eq!(create_order(&gw, "1").await.0, StatusCode::OK);
    }
    let before = gw.demo.calls(Service::Orders);
    let (status, body) = create_order(&gw, "1").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("outbox is full"),
        "{body}"
    );
    assert_eq!(
        gw.demo.calls(Service::Orders),
        before,
        "the upstream was not called"
    );
    assert_eq!(
        gw.metric("switchyard_events_total{outcome=\"rejected\",sink=\"bus\",")
            .await,
        Some(1.0)
    );
    // The admin endpoint shows what waits, per sink (once committed).
    let mut status = Value::Null;
    for _ in 0..100 {
        status = gw.admin_get("/admin/events").await.json();
        if status["sinks"][0]["waiting"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        status["outbox"],
        json!({"depth": 2, "max_events": 2}),
        "{status}"
    );
    let sink = &status["sinks"][0];
    assert_eq!(
        (&sink["name"], &sink["waiting"], &sink["dead_lettered"]),
        (&json!("bus"), &json!(2), &json!(0)),
        "{status}"
    );
    assert!(
        sink["oldest_age_seconds"]
            .as_f64()
            .is_some_and(|age| age >= 0.0),
        "the oldest waiting event's age is shown: {status}"
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_full_outbox_evicts_the_oldest_droppable_event_and_the_request_succeeds() {
    let dir = temp_dir("events-evict");
    let stream = format!("T{}", unique());
    let subject = format!("t{}.orders.created", unique());
    // Nothing listens there: events stay in the outbox.
    let down = format!("nats://127.0.0.1:{}", free_port());
    let (outbox, when_full) = (", max_events: 2", ", when_full: drop");
    let gw = gateway_with(&down, &stream, &subject, &dir, outbox, when_full).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, order) = create_order(&gw, "1").await;
        assert_eq!(status, StatusCode::OK, "{order}");
        ids.push(order["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(gw.demo.calls(Service::Orders), 3, "every call went through");
    let evicted = "switchyard_events_total{outcome=\"evicted\",sink=\"bus\",";
    for _ in 0..100 {
        if gw.metric(evicted).await == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gw.metric(evicted).await, Some(1.0), "one event evicted");
    let status = gw.admin_get("/admin/events").await.json();
    assert_eq!(
        status["outbox"],
        json!({"depth": 2, "max_events": 2}),
        "{status}"
    );
    assert_eq!(status["sinks"][0]["waiting"], 2, "{status}");
    assert_eq!(
        gw.metric("switchyard_outbox_depth{sink=\"bus\"}").await,
        Some(2.0),
        "the depth gauge agrees with the outbox"
    );
    assert_eq!(
        gw.metric("switchyard_events_total{outcome=\"appended\",sink=\"bus\",")
            .await,
        Some(3.0)
    );
    assert_eq!(
        gw.metric("switchyard_events_total{outcome=\"dropped\",sink=\"bus\",")
            .await
            .unwrap_or(0.0),
        0.0,
        "no new event dropped"
    );
    // The same outbox behind a reachable broker delivers what was kept (the
    // first gateway's relay held the evicted event in memory: it is gone
    // with it).
    gw.stop().await;
    closed(&dir.join("outbox.redb")).await;
    let url = "nats://127.0.0.1:4222";
    let gw = gateway_with(url, &stream, &subject, &dir, outbox, when_full).await;
    let got = consume(url, &stream, 3, Duration::from_secs(2)).await;
    let data_ids: Vec<&str> = got
        .iter()
        .map(|(_, e)| e["data"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(data_ids, ids[1..], "the two newest, in order");
    gw.stop().await;
    if let Ok(client) = async_nats::connect(url).await {
        let _ = jetstream::new(client).delete_stream(&stream).await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Waits (up to 10 s) until no gateway holds the outbox file at `path`.
async fn closed(path: &Path) {
    for _ in 0..200 {
        if switchyard::events::outbox::Outbox::inspect(path, &[], 0).is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the outbox {} stayed open", path.display());
}
