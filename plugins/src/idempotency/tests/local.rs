//! The flows on the in-memory store, and its bounds.

use serde_json::json;

use super::flows::{self, wait_for_calls};
use super::*;
use crate::metrics::PluginMetrics;

#[tokio::test]
async fn same_key_same_body_is_replayed() {
    flows::same_key_same_body_is_replayed(local_store()).await;
}

#[tokio::test]
async fn same_key_other_request_is_422() {
    flows::same_key_other_request_is_422(local_store()).await;
}

#[tokio::test]
async fn a_duplicate_in_flight_is_409() {
    flows::a_duplicate_in_flight_is_409(local_store()).await;
}

#[tokio::test]
async fn server_errors_are_not_stored() {
    flows::server_errors_are_not_stored(local_store()).await;
}

#[tokio::test]
async fn client_errors_are_stored_except_retryable_ones() {
    flows::client_errors_are_stored_except_retryable_ones(local_store()).await;
}

#[tokio::test]
async fn unkeyed_and_uncovered_requests_pass() {
    flows::unkeyed_and_uncovered_requests_pass(local_store()).await;
}

#[tokio::test]
async fn keys_are_scoped_by_consumer_and_path() {
    flows::keys_are_scoped_by_consumer_and_path(local_store()).await;
}

#[tokio::test]
async fn large_and_streamed_responses_are_not_stored() {
    flows::large_and_streamed_responses_are_not_stored(local_store()).await;
}

#[tokio::test]
async fn missing_and_malformed_keys_are_refused() {
    flows::missing_and_malformed_keys_are_refused(local_store()).await;
}

#[tokio::test]
async fn an_abandoned_request_frees_its_key() {
    flows::an_abandoned_request_frees_its_key(local_store()).await;
}

#[tokio::test]
async fn beyond_max_keys_the_oldest_stored_response_is_dropped() {
    let store = json!({"local": {"max_keys": 2}});
    let (svc, upstream) = plugin(config(store, json!({}))).await;
    for key in ["a", "b", "c"] {
        post(Some(key), "x").to(&svc).await;
    }
    assert!(post(Some("c"), "x").to(&svc).await.replayed());
    assert!(post(Some("b"), "x").to(&svc).await.replayed());
    assert!(!post(Some("a"), "x").to(&svc).await.replayed());
    assert_eq!(upstream.calls(), 4);
}

#[tokio::test]
async fn beyond_max_bytes_stored_responses_make_room_or_are_not_stored() {
    let store = json!({"local": {"max_bytes": 2000}});
    let (svc, upstream) = plugin(config(store, json!({}))).await;
    // Each ~700-byte response costs more with bookkeeping: two fit, not three.
    for key in ["a", "b", "c"] {
        post(Some(key), "x").header("x-size", 700).to(&svc).await;
    }
    assert!(post(Some("c"), "x").to(&svc).await.replayed());
    assert!(!post(Some("a"), "x").to(&svc).await.replayed());
    // Larger than the whole store: passed through, never stored.
    let huge = post(Some("huge"), "x")
        .header("x-size", 2500)
        .to(&svc)
        .await;
    assert_eq!(huge.body.len(), 2500);
    assert!(!post(Some("huge"), "x").to(&svc).await.replayed());
    assert_eq!(upstream.calls(), 6);
}

#[tokio::test]
async fn a_store_full_of_requests_in_flight_fails_closed_or_open() {
    for (on_error, expected) in [
        ("fail_closed", StatusCode::SERVICE_UNAVAILABLE),
        ("fail_open", StatusCode::CREATED),
    ] {
        let store = json!({"local": {"max_keys": 1}});
        let (svc, upstream) = plugin(config(store, json!({"on_store_error": on_error}))).await;
        let slow = post(Some("a"), "x").header("x-delay-ms", 300).request();
        let first = tokio::spawn(svc.clone().oneshot(slow));
        wait_for_calls(&upstream, 1).await;
        let second = post(Some("b"), "x").to(&svc).await;
        assert_eq!(second.status, expected, "{on_error}");
        if expected == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(second.headers["retry-after"], "1");
            assert_eq!(second.error().1, "idempotency store unavailable");
        }
        first.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn stored_responses_expire_after_ttl() {
    let (svc, upstream) = plugin(config(local_store(), json!({"ttl": "1s"}))).await;
    post(Some("k"), "x").to(&svc).await;
    assert!(post(Some("k"), "x").to(&svc).await.replayed());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(!post(Some("k"), "x").to(&svc).await.replayed());
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test]
async fn outcomes_are_counted_by_route() {
    let metrics = PluginMetrics::new();
    let ctx = BuildContext {
        route: "orders".into(),
        metrics: metrics.clone(),
        ..Default::default()
    };
    let config = config(local_store(), json!({"max_body": 10}));
    let upstream = Upstream::default();
    let svc = Idempotency::build(config, &ctx)
        .await
        .unwrap()
        .wrap(upstream.service());
    post(Some("a"), "x").header("x-size", 5).to(&svc).await; // stored
    post(Some("a"), "x").to(&svc).await; // replayed
    post(Some("a"), "y").to(&svc).await; // mismatch
    post(Some("b"), "x").header("x-status", 500).to(&svc).await; // not stored
    post(Some("c"), "x").to(&svc).await; // not stored: too large
    let long = "k".repeat(300);
    post(Some(&long), "x").to(&svc).await; // rejected
    post(None, "x").to(&svc).await; // not counted
    let counters = metrics.idempotency("orders");
    assert_eq!(counters.stored.get(), 1);
    assert_eq!(counters.replayed.get(), 1);
    assert_eq!(counters.mismatch.get(), 1);
    assert_eq!(counters.not_stored.get(), 2);
    assert_eq!(counters.rejected.get(), 1);
    assert_eq!(counters.conflict.get(), 0);
    assert_eq!(counters.store_error.get(), 0);
}
