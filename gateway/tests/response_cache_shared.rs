//! The response cache's shared tier (`cache.redis`) with the real Redis on
//! 127.0.0.1:6379 and two gateway instances, each with its own upstream:
//! what one instance fetched the other serves without calling its
//! upstream, a purge on one reaches the other's memory, and an unreachable
//! Redis costs misses, never answers.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::TestGateway;
use http::{Method, StatusCode};
use switchyard_demo::Service;

/// A gateway on its own demo whose users route caches for 30 s, with the
/// shared tier `redis` (YAML flow mapping).
async fn instance(redis: &str) -> TestGateway {
    TestGateway::demo_with(
        ", cache: { ttl: 30s }",
        &format!("cache: {{ redis: {redis} }}"),
    )
    .await
}

fn status(reply: &common::Reply) -> String {
    reply.cache_status().to_owned()
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_answer_one_instance_fetched_is_served_by_another_until_a_purge_on_either() {
    let redis = format!(
        "{{ url: \"redis://127.0.0.1:6379\", key_prefix: \"test-{}-{:x}:\" }}",
        std::process::id(),
        fastrand::u64(..)
    );
    let (a, b) = (instance(&redis).await, instance(&redis).await);
    let first = a.get("/v1/users/1").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(status(&first), "switchyard; fwd=miss; stored");
    wait_for("the answer in Redis", async || {
        a.metric(r#"switchyard_cache_shared_total{outcome="stored"}"#)
            .await
            == Some(1.0)
    })
    .await;

    let shared = b.get("/v1/users/1").await;
    assert!(
        status(&shared).starts_with("switchyard; hit; ttl="),
        "{}",
        status(&shared)
    );
    assert_eq!(shared.body, first.body);
    assert_eq!(shared.headers["content-type"], "application/json");
    assert!(shared.headers.contains_key("age"));
    assert_eq!(b.demo.calls(Service::Users), 0, "b served a's answer");
    assert_eq!(
        b.metric(r#"switchyard_cache_shared_total{outcome="hit"}"#)
            .await,
        Some(1.0)
    );
    // Now in b's memory as well: no Redis round trip.
    assert!(status(&b.get("/v1/users/1").await).contains("hit"));
    assert_eq!(
        b.metric(r#"switchyard_cache_shared_total{outcome="hit"}"#)
            .await,
        Some(1.0)
    );

    // A purge on a: gone from Redis and from b's memory.
    let purged = a
        .admin_send(Method::POST, "/admin/cache/purge?prefix=/v1/users/", &[])
        .await;
    assert_eq!(purged.status, StatusCode::OK, "{}", purged.text());
    wait_for("b to drop its copy", async || {
        let reply = b.get("/v1/users/1").await;
        status(&reply).contains("fwd=miss")
    })
    .await;
    assert_eq!(b.demo.calls(Service::Users), 1);
    // An exact purge on b: a drops /v1/users/1 and keeps /v1/users/2.
    for id in ["1", "2"] {
        a.get(&format!("/v1/users/{id}")).await;
    }
    let calls = a.demo.calls(Service::Users);
    let purged = b
        .admin_send(Method::POST, "/admin/cache/purge?path=/v1/users/1", &[])
        .await;
    assert_eq!(purged.status, StatusCode::OK, "{}", purged.text());
    wait_for("a to drop /v1/users/1", async || {
        status(&a.get("/v1/users/1").await).contains("fwd=miss")
    })
    .await;
    assert!(status(&a.get("/v1/users/2").await).contains("hit"));
    assert_eq!(a.demo.calls(Service::Users), calls + 1);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn an_unreachable_redis_costs_misses_and_the_memory_store_still_serves() {
    let gw = instance(r#"{ url: "redis://127.0.0.1:1", timeout: 50ms }"#).await;
    let first = gw.get("/v1/users/1").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(status(&first), "switchyard; fwd=miss; stored");
    let second = gw.send(Method::GET, "/v1/users/1", &[], Bytes::new()).await;
    assert!(
        status(&second).starts_with("switchyard; hit"),
        "{}",
        status(&second)
    );
    assert_eq!(gw.demo.calls(Service::Users), 1);
    wait_for("the failed store to be counted", async || {
        gw.metric(r#"switchyard_cache_shared_total{outcome="error"}"#)
            .await
            .unwrap_or(0.0)
            >= 2.0
    })
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn a_bad_redis_url_is_refused_at_load_with_its_key() {
    let yaml = common::one_route_config(
        None,
        "demo.users.v1.UserService",
        r#""http://127.0.0.1:1""#,
        "",
        ", cache: { ttl: 1s }",
    ) + "cache: { redis: { url: \"http://not-redis\" } }\n";
    let error = common::config_error(&yaml).await;
    assert!(error.contains("cache.redis.url"), "{error}");
}
