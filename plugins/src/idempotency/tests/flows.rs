//! The request flow, written once and run against each store (`local.rs`,
//! `redis.rs` call these with their store).

use serde_json::{Value, json};

use super::*;

/// Same key, same body: the second answer is the first one replayed, and
/// the upstream ran once. Only the `stored_headers` come back.
pub async fn same_key_same_body_is_replayed(store: Value) {
    let (svc, upstream) = plugin(config(store, json!({}))).await;
    let first = post(Some("k-1"), r#"{"sku":"A-1"}"#).to(&svc).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(!first.replayed());
    assert_eq!(first.headers["x-internal"], "not stored");
    let second = post(Some("k-1"), r#"{"sku":"A-1"}"#).to(&svc).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert!(second.replayed(), "{second:?}");
    assert_eq!(second.body, first.body);
    assert_eq!(second.headers["content-type"], "application/json");
    assert_eq!(second.headers["grpc-metadata-trace"], "1");
    assert!(!second.headers.contains_key("x-internal"));
    assert_eq!(upstream.calls(), 1);
    // A quoted key (structured-field string, as the draft writes it) is the same key.
    assert!(
        post(Some("\"k-1\""), r#"{"sku":"A-1"}"#)
            .to(&svc)
            .await
            .replayed()
    );
    assert_eq!(upstream.calls(), 1);
}

/// Same key, another body or query: 422, nothing runs.
pub async fn same_key_other_request_is_422(store: Value) {
    let (svc, upstream) = plugin(config(store, json!({}))).await;
    assert_eq!(
        post(Some("k"), "a").to(&svc).await.status,
        StatusCode::CREATED
    );
    let reused = post(Some("k"), "b").to(&svc).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, message, reason) = reused.error();
    assert_eq!((code, reason.as_str()), (9, "IDEMPOTENCY_KEY_REUSED"));
    assert!(message.contains("different request body"), "{message}");
    let query = Send {
        path: "/v1/orders?dry_run=true",
        ..post(Some("k"), "a")
    };
    assert_eq!(
        query.to(&svc).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(upstream.calls(), 1);
}

/// While the first request runs, a duplicate gets 409; afterwards, the replay.
pub async fn a_duplicate_in_flight_is_409(store: Value) {
    let (svc, upstream) = plugin(config(store, json!({}))).await;
    let slow = post(Some("k"), "x").header("x-delay-ms", 400).request();
    let first = tokio::spawn(svc.clone().oneshot(slow));
    wait_for_calls(&upstream, 1).await;
    let duplicate = post(Some("k"), "x").to(&svc).await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(duplicate.headers["retry-after"], "1");
    let (code, message, reason) = duplicate.error();
    assert_eq!((code, reason.as_str()), (10, "IDEMPOTENCY_KEY_IN_PROGRESS"));
    assert!(
        message.starts_with("a request with this Idempotency-Key is in progress"),
        "{message}"
    );
    // A different body while in flight is still a mismatch.
    let other = post(Some("k"), "y").to(&svc).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    let first = Reply::of(first.await.unwrap().unwrap()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let replay = post(Some("k"), "x").to(&svc).await;
    assert!(replay.replayed());
    assert_eq!(replay.body, first.body);
    assert_eq!(upstream.calls(), 1);
}

/// A 5xx is not stored: the retry runs, and its success is then replayed.
pub async fn server_errors_are_not_stored(store: Value) {
    let (svc, upstream) = plugin(config(store, json!({}))).await;
    let failed = post(Some("k"), "x").header("x-status", 503).to(&svc).await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE);
    let retry = post(Some("k"), "x").to(&svc).await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert!(!retry.replayed());
    assert_eq!(retry.json()["call"], 2);
    let again = post(Some("k"), "x").to(&svc).await;
    assert!(again.replayed());
    assert_eq!(again.json()["call"], 2);
    assert_eq!(upstream.calls(), 2);
}

/// 4xx answers are stored (the same request would fail the same way),
/// except the ones a retry may change (409, 429…).
pub async fn client_errors_are_stored_except_retryable_ones(store: Value) {
    let (svc, upstream) = plugin(config(store, json!({}))).await;
    for status in [409, 429] {
        let key = format!("k-{status}");
        let first = post(Some(&key), "x")
            .header("x-status", status)
            .to(&svc)
            .await;
        assert_eq!(first.status.as_u16(), status);
        let retry = post(Some(&key), "x").to(&svc).await;
        assert_eq!(retry.status, StatusCode::CREATED, "{status}");
        assert!(!retry.replayed());
    }
    let bad = post(Some("k-400"), "x")
        .header("x-status", 400)
        .to(&svc)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let replay = post(Some("k-400"), "x").to(&svc).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(replay.replayed());
    assert_eq!(upstream.calls(), 5);
}

/// Without the header, or on a method not covered, nothing changes.
pub async fn unkeyed_and_uncovered_requests_pass(store: Value) {
    let (svc, upstream) = plugin(config(store, json!({}))).await;
    for _ in 0..2 {
        assert!(!post(None, "x").to(&svc).await.replayed());
        let get = Send {
            method: Method::GET,
            ..post(Some("k"), "")
        };
        assert!(!get.to(&svc).await.replayed());
        let put = Send {
            method: Method::PUT,
            ..post(Some("k"), "x")
        };
        assert!(!put.to(&svc).await.replayed());
    }
    assert_eq!(upstream.calls(), 6);
    // PATCH is covered by default.
    let patch = || Send {
        method: Method::PATCH,
        ..post(Some("k"), "x")
    };
    patch().to(&svc).await;
    assert!(patch().to(&svc).await.replayed());
}

/// A key belongs to its consumer and its path.
pub async fn keys_are_scoped_by_consumer_and_path(store: Value) {
    let (svc, upstream) = plugin(config(store, json!({}))).await;
    let as_consumer = |consumer| Send {
        consumer,
        ..post(Some("k"), "x")
    };
    assert!(!as_consumer(Some("alice")).to(&svc).await.replayed());
    assert!(!as_consumer(Some("bob")).to(&svc).await.replayed());
    assert!(!as_consumer(None).to(&svc).await.replayed());
    assert!(as_consumer(Some("alice")).to(&svc).await.replayed());
    let other_path = Send {
        path: "/v1/orders/1:cancel",
        ..as_consumer(Some("alice"))
    };
    assert!(!other_path.to(&svc).await.replayed());
    assert_eq!(upstream.calls(), 4);
}

/// A body above `max_body`, or of unknown length, is passed through whole
/// and not stored: the retry runs again.
pub async fn large_and_streamed_responses_are_not_stored(store: Value) {
    let (svc, upstream) = plugin(config(store, json!({"max_body": 100}))).await;
    for _ in 0..2 {
        let large = post(Some("large"), "x")
            .header("x-size", 101)
            .to(&svc)
            .await;
        assert_eq!(large.body.len(), 101);
        assert!(!large.replayed());
        let stream = post(Some("stream"), "x")
            .header("x-stream", 1)
            .to(&svc)
            .await;
        assert_eq!(stream.json()["body"], "x");
        assert!(!stream.replayed());
    }
    assert_eq!(upstream.calls(), 4);
    post(Some("exact"), "x")
        .header("x-size", 100)
        .to(&svc)
        .await;
    assert!(post(Some("exact"), "x").to(&svc).await.replayed());
}

/// `required: true`: 400 without the key; malformed keys: 400; a request
/// body above `max_request_body`: 413. None of them runs.
pub async fn missing_and_malformed_keys_are_refused(store: Value) {
    let (svc, upstream) = plugin(config(
        store,
        json!({"required": true, "max_key_length": 8, "max_request_body": 16}),
    ))
    .await;
    let missing = post(None, "x").to(&svc).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    let (code, message, reason) = missing.error();
    assert_eq!((code, reason.as_str()), (3, "IDEMPOTENCY_KEY_REQUIRED"));
    assert!(message.contains("Idempotency-Key"), "{message}");
    for key in ["", "\"\"", "123456789", "caf\u{e9}"] {
        let mut request = post(None, "x").request();
        request.headers_mut().insert(
            "idempotency-key",
            http::HeaderValue::from_bytes(key.as_bytes()).unwrap(),
        );
        let reply = Reply::of(svc.clone().oneshot(request).await.unwrap()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{key:?}");
        assert_eq!(reply.error().2, "IDEMPOTENCY_KEY_INVALID");
    }
    let twice = post(Some("a"), "x")
        .header("idempotency-key", "b")
        .to(&svc)
        .await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST);
    let too_large = post(Some("k"), "0123456789abcdefg").to(&svc).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(upstream.calls(), 0);
    // GET needs no key even when keys are required.
    let get = Send {
        method: Method::GET,
        ..post(None, "")
    };
    assert_eq!(get.to(&svc).await.status, StatusCode::CREATED);
}

/// A client that goes away mid-request frees the key (the outcome is
/// unknown, as after a 5xx): the retry runs.
pub async fn an_abandoned_request_frees_its_key(store: Value) {
    let (svc, upstream) = plugin(config(store, json!({}))).await;
    let slow = post(Some("k"), "x").header("x-delay-ms", 10_000).request();
    let abandoned = tokio::spawn(svc.clone().oneshot(slow));
    wait_for_calls(&upstream, 1).await;
    abandoned.abort();
    // The release runs on a task of its own: poll until the key is free.
    let started = std::time::Instant::now();
    loop {
        let retry = post(Some("k"), "x").to(&svc).await;
        if retry.status == StatusCode::CREATED {
            assert_eq!(retry.json()["call"], 2);
            break;
        }
        assert_eq!(retry.status, StatusCode::CONFLICT);
        assert!(started.elapsed() < Duration::from_secs(5), "never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (at most 5 s) until the upstream has been called `n` times.
pub async fn wait_for_calls(upstream: &Upstream, n: usize) {
    let started = std::time::Instant::now();
    while upstream.calls() < n {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "upstream never called"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
