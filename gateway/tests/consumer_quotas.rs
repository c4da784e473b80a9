//! Per-consumer quotas (`rate_limit.consumers`) through the real gateway: the
//! consumer comes from an API key, and a listed consumer gets its own quota.

mod common;

use bytes::Bytes;
use common::TestGateway;
use http::{Method, StatusCode};

/// sha256("demo-key-123") → consumer `gold`, sha256("other-key-456") → `basic`.
const GOLD_SHA: &str = "a52782e3a2d4dd2f95f640b9abfb3b2a6b8e722c65f55be830f6e5f619f7f873";
const BASIC_SHA: &str = "d478331b7b6bc12865241a1c18ce61d255d3596a95c2225ed2e685145b139d44";

#[tokio::test]
async fn a_listed_consumer_gets_its_own_quota_and_policy_header() {
    let route = format!(
        ", plugins: [ {{ auth: {{ methods: [ {{ api_key: {{ header: x-api-key, keys: [ \
         {{ consumer: gold, sha256: {GOLD_SHA} }}, {{ consumer: basic, sha256: {BASIC_SHA} }} ] }} }} ] }} }}, \
         {{ rate_limit: {{ rate: 1/min, key: [consumer], consumers: {{ gold: {{ rate: 3/min }} }} }} }} ]"
    );
    let gw = TestGateway::demo_with(&route, "").await;
    let statuses = |key: &'static str, n: usize| {
        let gw = &gw;
        async move {
            let mut out = Vec::new();
            for _ in 0..n {
                let reply = gw
                    .send(
                        Method::GET,
                        "/v1/users/1",
                        &[("x-api-key", key)],
                        Bytes::new(),
                    )
                    .await;
                out.push((
                    reply.status,
                    reply
                        .headers
                        .get("ratelimit-policy")
                        .map(|v| v.to_str().unwrap().to_owned()),
                ));
            }
            out
        }
    };
    let gold = statuses("demo-key-123", 4).await;
    let ok = |policy: &str| (StatusCode::OK, Some(policy.to_owned()));
    assert_eq!(
        gold[..3],
        [
            ok("\"default\";q=3;w=60"),
            ok("\"default\";q=3;w=60"),
            ok("\"default\";q=3;w=60")
        ]
    );
    assert_eq!(gold[3].0, StatusCode::TOO_MANY_REQUESTS);
    let basic = statuses("other-key-456", 2).await;
    assert_eq!(basic[0], ok("\"default\";q=1;w=60"));
    assert_eq!(basic[1].0, StatusCode::TOO_MANY_REQUESTS);
    gw.stop().await;
}
