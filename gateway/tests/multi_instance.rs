//! Scaled out: three identical, stateless gateway instances on loopback,
//! hit in turn as a round-robin load balancer would, sharing their state
//! through the machine's real Redis and NATS JetStream:
//!
//! - one rate limit (Redis): a 10/min budget is 10 requests in all, not 10
//!   per instance;
//! - exactly one event per order: a client that retries its POST on another
//!   instance (its first answer lost, same `Idempotency-Key`) gets the
//!   stored answer from the shared idempotency store (Redis), so the order
//!   is created once and one CloudEvent reaches the stream, whichever
//!   instance published it; each instance's outbox drains to empty.

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::TestGateway;
use common::nats::consume;
use http::{Method, StatusCode};
use serde_json::Value;

const REDIS: &str = "redis://127.0.0.1:6379";
const NATS: &str = "nats://127.0.0.1:4222";

fn unique() -> String {
    format!("{:x}", fastrand::u64(..))
}

/// The instances' shared config, but for the outbox path (each instance
/// has its own file: it is local state, not shared).
fn config(demo: &switchyard_demo::DemoServer, run: &str, outbox: &Path) -> String {
    let rate_limit = format!(
        r#"{{ rate_limit: {{ rate: 10/min, backend: {{ redis: {{ url: "{REDIS}", key_prefix: "sy-multi:{run}:" }} }} }} }}"#
    );
    let idempotency = format!(
        r#"{{ idempotency: {{ store: {{ redis: {{ url: "{REDIS}", key_prefix: "sy-multi-idem:{run}:" }} }} }} }}"#
    );
    let events = format!(
        r#"
reload: {{ watch_interval: 0s }}
events:
  outbox: {{ path: "{outbox}", flush_interval: 2ms, retry_initial: 50ms, retry_max: 200ms }}
  sinks:
    bus: {{ nats: {{ url: "{NATS}", ack_timeout: 1s, stream: {{ name: MULTI{run}, subjects: ["multi{run}.>"] }} }} }}
"#,
        outbox = outbox.display(),
    );
    common::demo_config(demo, "", &events)
        .replace(
            "upstream: users ",
            &format!("upstream: users, plugins: [{rate_limit}] "),
        )
        .replace(
            "upstream: orders ",
            &format!(
                r#"upstream: orders, plugins: [{idempotency}], events: [{{ method: CreateOrder, type: com.example.order.created, subject: "orders/{{response.id}}", sink: bus, destination: "multi{run}.orders" }}] "#
            ),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_one_rate_limit_and_publish_each_order_once() {
    let run = unique();
    let dir = std::env::temp_dir().join(format!("switchyard-multi-{run}"));
    std::fs::create_dir_all(&dir).unwrap();
    // One set of upstreams behind all three (each instance's own demo stays idle).
    let shared = common::spawn_demo().await;
    let yaml = |i: usize| config(&shared, &run, &dir.join(format!("outbox-{i}.redb")));
    let mut instances = Vec::new();
    for i in 0..3 {
        instances.push(TestGateway::start_yaml(common::spawn_demo().await, &yaml(i)).await);
    }

    // The shared limit: 30 requests in turn, 10 allowed in all.
    let mut allowed = [0; 3];
    for i in 0..30 {
        let status = instances[i % 3].get("/v1/users/1").await.status;
        match status {
            StatusCode::OK => allowed[i % 3] += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("request {i}: {other}"),
        }
    }
    assert_eq!(
        allowed.iter().sum::<usize>(),
        10,
        "per instance: {allowed:?}"
    );

    // 12 orders, each sent to one instance and retried on the next.
    let mut orders = Vec::new();
    for n in 0..12 {
        let key = format!("order-{run}-{n}");
        let body = Bytes::from(format!(
            r#"{{"userId":"{}","items":[{{"sku":"A-1","qty":1}}]}}"#,
            n % 3 + 1
        ));
        let headers = [
            ("content-type", "application/json"),
            ("idempotency-key", key.as_str()),
        ];
        let first = instances[n % 3]
            .send(Method::POST, "/v1/orders", &headers, body.clone())
            .await;
        let retry = instances[(n + 1) % 3]
            .send(Method::POST, "/v1/orders", &headers, body)
            .await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text());
        assert_eq!(retry.status, StatusCode::OK, "{}", retry.text());
        let (a, b): (Value, Value) = (first.json(), retry.json());
        assert_eq!(
            a["id"], b["id"],
            "the retry is answered with the first order"
        );
        orders.push(a["id"].as_str().unwrap().to_owned());
    }

    let got = consume(NATS, &format!("MULTI{run}"), 13, Duration::from_secs(3)).await;
    let mut subjects: Vec<String> = got
        .iter()
        .map(|(_, e)| {
            e["subject"]
                .as_str()
                .unwrap()
                .trim_start_matches("orders/")
                .to_owned()
        })
        .collect();
    subjects.sort();
    orders.sort();
    assert_eq!(subjects, orders, "one event per order, none twice");
    let mut ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12);
    for gw in &instances {
        let mut depth = None;
        for _ in 0..100 {
            depth = gw.metric("switchyard_outbox_depth{sink=\"bus\"}").await;
            if depth == Some(0.0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(depth, Some(0.0), "every instance's outbox drains");
    }
    for gw in instances {
        gw.stop().await;
    }
}
