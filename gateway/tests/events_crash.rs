//! The outbox survives `kill -9`: a gateway process killed during a burst of
//! event-producing requests restarts on the same outbox file (no
//! corruption), and every event committed before the kill is delivered once
//! the broker is reachable, each once.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::nats::{OwnNats, consume, free_port, wait_for_port};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use switchyard_demo::Service;

fn gateway(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the gateway binary runs")
}

/// POSTs one order; its id when the gateway answered 200.
async fn create(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    port: u16,
) -> Option<String> {
    let req = http::Request::post(format!("http://127.0.0.1:{port}/v1/orders"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"userId":"1","items":[{"sku":"A-1","qty":1}]}"#,
        )))
        .unwrap();
    let res = client.request(req).await.ok()?;
    if !res.status().is_success() {
        return None;
    }
    let body = res.into_body().collect().await.ok()?.to_bytes();
    let json: Value = serde_json::from_slice(&body).ok()?;
    json["id"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_during_a_burst_loses_no_committed_event_and_never_corrupts_the_outbox() {
    let demo = common::spawn_demo().await;
    let dir = std::env::temp_dir().join(format!("switchyard-crash-{:x}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let (port, nats_port) = (free_port(), free_port());
    let config = dir.join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
listeners: [{{ address: "127.0.0.1:{port}" }}]
admin: {{ enabled: false }}
protos: {{ sources: ["{proto}"] }}
upstreams: {{ orders: {{ endpoints: ["{orders}"] }} }}
events:
  outbox: {{ path: outbox.redb, flush_interval: 2ms, retry_initial: 50ms, retry_max: 200ms }}
  sinks:
    bus: {{ nats: {{ url: "nats://127.0.0.1:{nats_port}", ack_timeout: 300ms, stream: {{ name: CRASH, subjects: ["crash.>"] }} }} }}
routes:
  - name: orders
    service: demo.orders.v1.OrderService
    upstream: orders
    events: [{{ method: CreateOrder, type: com.example.order.created, sink: bus, destination: crash.orders }}]
"#,
            proto = common::repo_root().join("proto").display(),
            orders = demo.url(Service::Orders),
        ),
    )
    .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    // The broker is down throughout: every event stays in the outbox.
    let mut child = gateway(&config);
    wait_for_port(port).await;
    let mut committed = Vec::new();
    for _ in 0..30 {
        committed.push(
            create(&client, port)
                .await
                .expect("answered while the broker is down"),
        );
    }
    // Past the durability window: these 30 are on disk.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A burst, killed in the middle.
    let answered = Arc::new(Mutex::new(Vec::new()));
    let burst = {
        let (client, answered) = (client.clone(), answered.clone());
        tokio::spawn(async move {
            while let Some(id) = create(&client, port).await {
                answered.lock().unwrap().push(id);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let _ = burst.await;
    let answered = answered.lock().unwrap().clone();
    assert!(!answered.is_empty(), "the burst ran before the kill");

    // Same outbox file: the gateway starts again (nothing corrupt).
    let mut child = gateway(&config);
    wait_for_port(port).await;
    let nats = OwnNats::start(nats_port, &dir.join("js"));
    nats.ready().await;

    // The `data.id` of the events, until all or 3 s of quiet.
    let delivered: Vec<String> = consume(
        &format!("nats://127.0.0.1:{nats_port}"),
        "CRASH",
        30 + answered.len(),
        Duration::from_secs(3),
    )
    .await
    .into_iter()
    .map(|(_, event)| event["data"]["id"].as_str().unwrap_or_default().to_owned())
    .collect();
    let _ = child.kill();
    let _ = child.wait();
    drop(nats);
    let _ = std::fs::remove_dir_all(&dir);

    let ids: Vec<&str> = delivered.iter().map(String::as_str).collect();
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "each event once");
    assert_eq!(
        &ids[..30],
        committed
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        "every committed event, first and in order"
    );
    // The burst's answered requests, sent one at a time so answer order is
    // append order: only a tail is missing, the batch being gathered or
    // committed when the kill came (its length is time, not a count: a slow
    // fsync on a busy disk lengthens it); never an earlier one, never a hole.
    let missing = answered
        .iter()
        .filter(|id| !distinct.contains(id.as_str()))
        .count();
    eprintln!(
        "burst: {} answered before the kill, {missing} of them not delivered; {} delivered in all",
        answered.len(),
        ids.len()
    );
    let kept = answered.len() - missing;
    assert!(
        answered[..kept]
            .iter()
            .all(|id| distinct.contains(id.as_str())),
        "only the last {missing} answered may be missing, not earlier ones"
    );
    assert!(
        missing * 2 <= answered.len(),
        "{missing} of {} answered events lost to the kill: more than a durability window",
        answered.len()
    );
}
