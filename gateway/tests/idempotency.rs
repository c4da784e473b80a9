//! The `idempotency` plugin through the real gateway, in front of the real
//! demo order service, on the real Redis (127.0.0.1:6379, started by
//! scripts/test.sh): a retried `POST /v1/orders` is replayed and creates one
//! order; a reused key is 422; a duplicate in flight is 409; a 5xx is not
//! stored, so the retry runs.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{Reply, TestGateway};
use http::{Method, StatusCode};
use switchyard_demo::Service;

const REDIS: &str = "127.0.0.1:6379";

/// Fails the test, saying what to do, when the test Redis is not running.
async fn require_redis() {
    let ping = async {
        let client = redis::Client::open(format!("redis://{REDIS}")).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    let pong = tokio::time::timeout(Duration::from_secs(2), ping).await;
    assert!(
        matches!(pong, Ok(Some(ref p)) if p == "PONG"),
        "Redis is not reachable at {REDIS}: run scripts/test.sh, which starts one \
         (or `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no`)"
    );
}

/// A Redis key prefix no other test (or earlier run) uses.
fn unique_prefix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("switchyard-test:idem:{}:{nanos}:", std::process::id())
}

/// `, plugins: [idempotency on Redis under prefix]`, for a route.
fn route_plugin(prefix: &str) -> String {
    format!(
        ", plugins: [ {{ idempotency: {{ store: {{ redis: {{ url: \"redis://{REDIS}\", key_prefix: \"{prefix}\" }} }} }} }} ]"
    )
}

/// Redis key names under `prefix`.
async fn keys_under(prefix: &str) -> Vec<String> {
    let client = redis::Client::open(format!("redis://{REDIS}")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

fn order_for(user: &str, sku: &str) -> String {
    format!(r#"{{"user_id":"{user}","items":[{{"sku":"{sku}","qty":1}}]}}"#)
}

async fn post_order(gw: &TestGateway, key: Option<&str>, body: &str) -> Reply {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend(key.map(|k| ("idempotency-key", k)));
    gw.send(
        Method::POST,
        "/v1/orders",
        &headers,
        Bytes::from(body.to_owned()),
    )
    .await
}

/// The number of orders the demo service holds for `user`.
async fn orders_of(gw: &TestGateway, user: &str) -> usize {
    let reply = gw.get(&format!("/v1/users/{user}/orders")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json().as_array().expect("a list of orders").len()
}

fn replayed(reply: &Reply) -> bool {
    reply
        .headers
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

#[tokio::test]
async fn a_retried_create_is_replayed_and_the_upstream_creates_one_order() {
    require_redis().await;
    let gw = TestGateway::demo_with(&route_plugin(&unique_prefix()), "").await;
    let body = order_for("idem-1", "A-1");
    let first = post_order(&gw, Some("order-1"), &body).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert!(!replayed(&first));
    let calls = gw.demo.calls(Service::Orders);

    let second = post_order(&gw, Some("order-1"), &body).await;
    assert_eq!(second.status, StatusCode::OK);
    assert!(replayed(&second), "{:?}", second.headers);
    assert_eq!(second.body, first.body);
    assert_eq!(second.headers["content-type"], "application/json");
    assert_eq!(
        gw.demo.calls(Service::Orders),
        calls,
        "the replay called upstream"
    );
    assert_eq!(orders_of(&gw, "idem-1").await, 1);

    // The same key with another body: 422, still one order.
    let reused = post_order(&gw, Some("order-1"), &order_for("idem-1", "B-2")).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, message) = reused.error();
    assert_eq!(code, 9);
    assert!(message.contains("different request body"), "{message}");
    assert_eq!(orders_of(&gw, "idem-1").await, 1);

    // Without the header: every request runs.
    post_order(&gw, None, &body).await;
    post_order(&gw, None, &body).await;
    assert_eq!(orders_of(&gw, "idem-1").await, 3);

    // GET is not covered: never replayed.
    for _ in 0..2 {
        let headers = [("idempotency-key", "order-1")];
        let get = gw
            .send(Method::GET, "/v1/orders/11", &headers, Bytes::new())
            .await;
        assert_eq!(get.status, StatusCode::OK);
        assert!(!replayed(&get));
    }

    let metrics = gw.admin_get("/metrics").await.text();
    for line in [
        r#"switchyard_idempotency_requests_total{outcome="stored",route="orders"} 1"#,
        r#"switchyard_idempotency_requests_total{outcome="replayed",route="orders"} 1"#,
        r#"switchyard_idempotency_requests_total{outcome="mismatch",route="orders"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_top_level_plugin_scopes_keys_per_route() {
    require_redis().await;
    let prefix = unique_prefix();
    let top = format!(
        "plugins: [ {{ idempotency: {{ store: {{ redis: {{ url: \"redis://{REDIS}\", key_prefix: \"{prefix}\" }} }}, required: true }} }} ]"
    );
    let gw = TestGateway::demo_with("", &top).await;
    let missing = post_order(&gw, None, &order_for("idem-2", "A-1")).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(missing.error().1.contains("Idempotency-Key"));
    let body = order_for("idem-2", "A-1");
    post_order(&gw, Some("k"), &body).await;
    assert!(replayed(&post_order(&gw, Some("k"), &body).await));
    assert_eq!(orders_of(&gw, "idem-2").await, 1);
    let keys = keys_under(&prefix).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with(&format!("{prefix}orders:")), "{keys:?}");
    gw.stop().await;
}

#[tokio::test]
async fn a_duplicate_while_the_first_is_in_flight_is_409_and_a_timeout_is_not_stored() {
    require_redis().await;
    let prefix = unique_prefix();
    // Orders go to an upstream that never answers: each call ends at the
    // route's 1s deadline with 504.
    let silent = common::silent_upstream();
    let yaml = common::one_route_config(
        None,
        "demo.orders.v1.OrderService",
        &format!("\"http://{silent}\""),
        "",
        &format!(", name: orders, timeout: 1s {}", route_plugin(&prefix)),
    );
    let gw = TestGateway::start_yaml(common::spawn_demo().await, &yaml).await;
    let body = order_for("idem-3", "A-1");
    let (first, duplicate) = tokio::join!(post_order(&gw, Some("slow"), &body), async {
        // The key is reserved before the upstream is called.
        let started = Instant::now();
        while keys_under(&prefix).await.is_empty() {
            assert!(started.elapsed() < Duration::from_secs(5), "never reserved");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        post_order(&gw, Some("slow"), &body).await
    });
    assert_eq!(
        duplicate.status,
        StatusCode::CONFLICT,
        "{}",
        duplicate.text()
    );
    let (code, message) = duplicate.error();
    assert_eq!(code, 10);
    assert!(
        message.starts_with("a request with this Idempotency-Key is in progress"),
        "{message}"
    );
    assert_eq!(duplicate.headers["retry-after"], "1");

    assert_eq!(first.status, StatusCode::GATEWAY_TIMEOUT);
    // The 504 freed the key: nothing is stored, a retry runs (and times out) again.
    assert!(keys_under(&prefix).await.is_empty());
    let retry = post_order(&gw, Some("slow"), &body).await;
    assert_eq!(retry.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(!replayed(&retry));
    gw.stop().await;
}

#[tokio::test]
async fn an_upstream_failure_is_not_stored_and_the_retry_creates_the_order() {
    require_redis().await;
    let mut gw = TestGateway::demo_with(&route_plugin(&unique_prefix()), "").await;
    let body = order_for("idem-4", "A-1");
    gw.demo.stop(Service::Orders).await;
    let failed = post_order(&gw, Some("retry-me"), &body).await;
    assert_eq!(
        failed.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        failed.text()
    );
    assert!(!replayed(&failed));

    gw.demo.restart(Service::Orders).await.unwrap();
    // Until the gateway reconnects, each retry fails again (503, never
    // replayed nor 409); then it creates the order.
    let mut created = None;
    for _ in 0..50 {
        let retry = post_order(&gw, Some("retry-me"), &body).await;
        assert!(!replayed(&retry));
        if retry.status == StatusCode::OK {
            created = Some(retry);
            break;
        }
        assert_eq!(
            retry.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            retry.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let created = created.expect("the order service came back");
    let replay = post_order(&gw, Some("retry-me"), &body).await;
    assert!(replayed(&replay));
    assert_eq!(replay.body, created.body);
    assert_eq!(orders_of(&gw, "idem-4").await, 1);
    gw.stop().await;
}
