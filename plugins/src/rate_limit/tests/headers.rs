//! The RateLimit, RateLimit-Policy and Retry-After response headers.

use super::*;

#[tokio::test]
async fn lets_exactly_the_burst_through_then_answers_429_with_the_headers() {
    let svc = service(RateLimitConfig {
        burst: Some(3),
        ..config("6/min") // one request every 10 s
    })
    .await;

    for remaining in [2, 1, 0] {
        let res = svc.clone().oneshot(get("192.0.2.1:5000")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(header(&res, "ratelimit-policy"), "\"default\";q=6;w=60");
        let used = 3 - remaining;
        assert_eq!(
            header(&res, "ratelimit"),
            format!("\"default\";r={remaining};t={}", used * 10)
        );
    }

    let res = svc.clone().oneshot(get("192.0.2.1:5000")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&res, "retry-after"), "10");
    assert_eq!(header(&res, "ratelimit"), "\"default\";r=0;t=10");
    assert_eq!(header(&res, "ratelimit-policy"), "\"default\";q=6;w=60");
    assert_eq!(header(&res, "content-type"), "application/json");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "code": 8,
            "message": "rate limit exceeded",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "10s"}],
        })
    );
}

#[tokio::test]
async fn the_policy_name_appears_in_the_headers() {
    let svc = service(RateLimitConfig {
        name: "per-tenant".into(),
        ..config("100/s")
    })
    .await;
    let res = svc.oneshot(get("192.0.2.1:1")).await.unwrap();
    assert_eq!(header(&res, "ratelimit-policy"), "\"per-tenant\";q=100;w=1");
    assert_eq!(header(&res, "ratelimit"), "\"per-tenant\";r=99;t=1");
}
