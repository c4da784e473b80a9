//! The flows on Redis (127.0.0.1:6379, required), what Redis holds, and
//! what happens when Redis fails.

use serde_json::{Value, json};

use super::flows::{self, wait_for_calls};
use super::*;
use crate::metrics::PluginMetrics;

/// Nothing listens there.
const CLOSED: &str = "redis://127.0.0.1:1";

async fn store() -> Value {
    require_redis().await;
    redis_store().0
}

async fn connection() -> ::redis::aio::MultiplexedConnection {
    let client = ::redis::Client::open(REDIS_URL).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

/// The keys under `prefix`, with their value and PTTL.
async fn keys_under(prefix: &str) -> Vec<(String, Vec<u8>, i64)> {
    let mut conn = connection().await;
    let names: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut out = Vec::new();
    for name in names {
        let value: Vec<u8> = ::redis::cmd("GET")
            .arg(&name)
            .query_async(&mut conn)
            .await
            .unwrap();
        let pttl: i64 = ::redis::cmd("PTTL")
            .arg(&name)
            .query_async(&mut conn)
            .await
            .unwrap();
        out.push((name, value, pttl));
    }
    out
}

#[tokio::test]
async fn same_key_same_body_is_replayed() {
    flows::same_key_same_body_is_replayed(store().await).await;
}

#[tokio::test]
async fn same_key_other_request_is_422() {
    flows::same_key_other_request_is_422(store().await).await;
}

#[tokio::test]
async fn a_duplicate_in_flight_is_409() {
    flows::a_duplicate_in_flight_is_409(store().await).await;
}

#[tokio::test]
async fn server_errors_are_not_stored() {
    flows::server_errors_are_not_stored(store().await).await;
}

#[tokio::test]
async fn client_errors_are_stored_except_retryable_ones() {
    flows::client_errors_are_stored_except_retryable_ones(store().await).await;
}

#[tokio::test]
async fn unkeyed_and_uncovered_requests_pass() {
    flows::unkeyed_and_uncovered_requests_pass(store().await).await;
}

#[tokio::test]
async fn keys_are_scoped_by_consumer_and_path() {
    flows::keys_are_scoped_by_consumer_and_path(store().await).await;
}

#[tokio::test]
async fn large_and_streamed_responses_are_not_stored() {
    flows::large_and_streamed_responses_are_not_stored(store().await).await;
}

#[tokio::test]
async fn missing_and_malformed_keys_are_refused() {
    flows::missing_and_malformed_keys_are_refused(store().await).await;
}

#[tokio::test]
async fn an_abandoned_request_frees_its_key() {
    flows::an_abandoned_request_frees_its_key(store().await).await;
}

#[tokio::test]
async fn redis_holds_a_reservation_then_the_response_under_the_route() {
    require_redis().await;
    let (store, prefix) = redis_store();
    let extra = json!({"ttl": "1h", "in_flight_ttl": "30s"});
    let (svc, upstream) = plugin(config(store, extra)).await;
    let slow = post(Some("k"), "x").header("x-delay-ms", 300).request();
    let first = tokio::spawn(svc.clone().oneshot(slow));
    wait_for_calls(&upstream, 1).await;
    let held = keys_under(&prefix).await;
    assert_eq!(held.len(), 1, "{held:?}");
    let (name, value, pttl) = &held[0];
    // key_prefix + route + ':' + 64 hex digits: no client bytes in the name.
    let digest = name.strip_prefix(&format!("{prefix}orders:")).unwrap();
    assert_eq!(digest.len(), 64);
    assert!((1..=30_000).contains(pttl), "{pttl}");
    let record = Record::decode(Bytes::from(value.clone())).unwrap();
    assert!(matches!(record, Record::InFlight { .. }), "{record:?}");
    first.await.unwrap().unwrap();

    let held = keys_under(&prefix).await;
    let (_, value, pttl) = &held[0];
    assert!((3_500_000..=3_600_000).contains(pttl), "{pttl}");
    let text = String::from_utf8_lossy(value);
    assert!(
        text.starts_with(r#"{"v":1,"state":"completed","#),
        "readable metadata first: {text}"
    );
    let Record::Completed(stored) = Record::decode(Bytes::from(value.clone())).unwrap() else {
        panic!("not completed");
    };
    assert_eq!(stored.status, StatusCode::CREATED);
    assert_eq!(
        serde_json::from_slice::<Value>(&stored.body).unwrap()["call"],
        1
    );
}

#[tokio::test]
async fn two_instances_on_one_redis_share_keys() {
    require_redis().await;
    let (store, _) = redis_store();
    let (a, upstream_a) = plugin(config(store.clone(), json!({}))).await;
    let (b, upstream_b) = plugin(config(store, json!({}))).await;
    let first = post(Some("k"), "x").to(&a).await;
    let second = post(Some("k"), "x").to(&b).await;
    assert!(second.replayed());
    assert_eq!(second.body, first.body);
    assert_eq!(
        post(Some("k"), "y").to(&b).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!((upstream_a.calls(), upstream_b.calls()), (1, 0));
}

#[tokio::test]
async fn a_request_that_outlives_its_reservation_does_not_overwrite_the_next_one() {
    require_redis().await;
    let (store, _) = redis_store();
    let (svc, upstream) = plugin(config(store, json!({"in_flight_ttl": "100ms"}))).await;
    let slow = post(Some("k"), "x").header("x-delay-ms", 400).request();
    let first = tokio::spawn(svc.clone().oneshot(slow));
    wait_for_calls(&upstream, 1).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The reservation expired: this one reserves and runs (call 2).
    let second = post(Some("k"), "x").to(&svc).await;
    assert_eq!(second.json()["call"], 2);
    let first = Reply::of(first.await.unwrap().unwrap()).await;
    assert_eq!(first.json()["call"], 1);
    // The late first response did not replace the second's.
    let replay = post(Some("k"), "x").to(&svc).await;
    assert!(replay.replayed());
    assert_eq!(replay.json()["call"], 2);
}

#[tokio::test]
async fn unreachable_redis_fails_closed_with_503_by_default() {
    let metrics = PluginMetrics::new();
    let ctx = BuildContext {
        route: "orders".into(),
        metrics: metrics.clone(),
        ..Default::default()
    };
    let store = json!({"redis": {"url": CLOSED, "key_prefix": unique_prefix()}});
    let upstream = Upstream::default();
    let svc = Idempotency::build(config(store, json!({})), &ctx)
        .await
        .unwrap()
        .wrap(upstream.service());
    for _ in 0..2 {
        let reply = post(Some("k"), "x").to(&svc).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.headers["retry-after"], "1");
        assert_eq!(reply.error().0, 14);
    }
    // Unkeyed requests never touch the store.
    assert_eq!(post(None, "x").to(&svc).await.status, StatusCode::CREATED);
    assert_eq!(upstream.calls(), 1);
    assert_eq!(metrics.idempotency("orders").store_error.get(), 2);
}

#[tokio::test]
async fn unreachable_redis_fails_open_when_configured() {
    let store = json!({"redis": {"url": CLOSED, "key_prefix": unique_prefix()}});
    let (svc, upstream) = plugin(config(store, json!({"on_store_error": "fail_open"}))).await;
    for call in 1..=2 {
        let reply = post(Some("k"), "x").to(&svc).await;
        assert_eq!(reply.status, StatusCode::CREATED);
        assert_eq!(reply.json()["call"], call);
    }
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test]
async fn a_redis_that_does_not_answer_in_time_counts_as_failed() {
    // A listener that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            conns.push(conn);
        }
    });
    let url = format!("redis://{addr}");
    let store = json!({"redis": {"url": url, "key_prefix": unique_prefix(), "timeout": "200ms"}});
    let (svc, _) = plugin(config(store, json!({}))).await;
    let started = std::time::Instant::now();
    let reply = post(Some("k"), "x").to(&svc).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let waited = started.elapsed();
    assert!(
        (Duration::from_millis(150)..Duration::from_secs(2)).contains(&waited),
        "{waited:?}"
    );
    // Then Redis is left alone for a while: no waiting at all.
    let started = std::time::Instant::now();
    assert_eq!(
        post(Some("k"), "x").to(&svc).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(started.elapsed() < Duration::from_millis(100));
    held.abort();
}

#[tokio::test]
async fn a_foreign_value_under_the_key_is_a_store_error() {
    require_redis().await;
    let (store, prefix) = redis_store();
    let (svc, upstream) = plugin(config(store, json!({}))).await;
    post(Some("k"), "x").to(&svc).await;
    let (name, _, _) = keys_under(&prefix).await.remove(0);
    let mut conn = connection().await;
    let () = ::redis::cmd("SET")
        .arg(&name)
        .arg("not a record")
        .query_async(&mut conn)
        .await
        .unwrap();
    let reply = post(Some("k"), "x").to(&svc).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(upstream.calls(), 1);
}
