//! `consumers:`: quotas of their own for some consumers.

use super::*;
use crate::stage::Consumer;

fn as_consumer(peer: &str, consumer: &str) -> Request {
    let mut request = get(peer);
    request
        .extensions_mut()
        .insert(Consumer(consumer.to_owned()));
    request
}

fn with_gold(key: Vec<KeyPart>) -> RateLimitConfig {
    let mut consumers = std::collections::BTreeMap::new();
    consumers.insert(
        "gold".to_owned(),
        ConsumerQuota {
            rate: "5/min".to_owned(),
            burst: None,
        },
    );
    RateLimitConfig {
        key,
        consumers,
        ..config("2/min")
    }
}

#[tokio::test]
async fn a_listed_consumer_gets_its_own_quota_and_everyone_else_the_routes() {
    let svc = service(with_gold(vec![KeyPart::Consumer])).await;
    let mut gold = Vec::new();
    for _ in 0..6 {
        let res = svc
            .clone()
            .oneshot(as_consumer("192.0.2.1:1", "gold"))
            .await
            .unwrap();
        if res.status() == StatusCode::OK {
            assert_eq!(header(&res, "ratelimit-policy"), "\"default\";q=5;w=60");
        }
        gold.push(res.status());
    }
    assert_eq!(gold.iter().filter(|s| **s == StatusCode::OK).count(), 5);
    assert_eq!(gold[5], StatusCode::TOO_MANY_REQUESTS);
    // Another consumer, and a request without one: the route's 2/min each.
    for who in [Some("silver"), None] {
        let request = || match who {
            Some(name) => as_consumer("192.0.2.2:1", name),
            None => get("192.0.2.3:1"),
        };
        assert_eq!(status(&svc, request()).await, StatusCode::OK);
        let res = svc.clone().oneshot(request()).await.unwrap();
        assert_eq!(header(&res, "ratelimit-policy"), "\"default\";q=2;w=60");
        assert_eq!(status(&svc, request()).await, StatusCode::TOO_MANY_REQUESTS);
    }
}

#[tokio::test]
async fn a_consumers_counters_are_its_own_even_under_a_shared_key() {
    // Keyed by client IP only: the gold consumer and an anonymous client on
    // the same IP do not spend each other's quota.
    let svc = service(with_gold(vec![KeyPart::ClientIp])).await;
    for _ in 0..2 {
        assert_eq!(status(&svc, get("192.0.2.9:1")).await, StatusCode::OK);
    }
    assert_eq!(
        status(&svc, get("192.0.2.9:1")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        status(&svc, as_consumer("192.0.2.9:1", "gold")).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_bad_consumer_quota_names_the_consumer() {
    let mut config = with_gold(vec![KeyPart::Consumer]);
    config.consumers.get_mut("gold").unwrap().rate = "5/fortnight".into();
    let err = plugin_error(config).await;
    assert!(err.contains("consumers.gold:"), "{err}");
}
