//! Rate-limit keys: consumers, header values, JWT claims, combined keys,
//! and keys that cannot collide. Client IP resolution is in `client_ip.rs`.

use super::*;

#[tokio::test]
async fn counts_per_consumer_and_falls_back_to_the_client_ip() {
    let svc = service(RateLimitConfig {
        burst: Some(1),
        key: vec![KeyPart::Consumer],
        ..config("1/h")
    })
    .await;
    let as_consumer = |name: &str, peer: &str| {
        let mut req = get(peer);
        req.extensions_mut().insert(Consumer(name.to_owned()));
        req
    };
    assert_eq!(
        status(&svc, as_consumer("alice", "192.0.2.1:1")).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&svc, as_consumer("alice", "192.0.2.2:1")).await,
        StatusCode::TOO_MANY_REQUESTS,
        "alice from another IP is still alice"
    );
    assert_eq!(
        status(&svc, as_consumer("bob", "192.0.2.1:1")).await,
        StatusCode::OK
    );
    // No consumer: counted by IP, apart from any consumer.
    assert_eq!(status(&svc, get("192.0.2.1:1")).await, StatusCode::OK);
    assert_eq!(
        status(&svc, get("192.0.2.1:1")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A consumer named like an IP is not that IP.
    assert_eq!(
        status(&svc, as_consumer("192.0.2.9", "192.0.2.9:1")).await,
        StatusCode::OK
    );
    assert_eq!(status(&svc, get("192.0.2.9:1")).await, StatusCode::OK);
}

#[tokio::test]
async fn counts_per_header_value() {
    let svc = service(RateLimitConfig {
        burst: Some(1),
        key: vec![KeyPart::Header("X-Tenant".into())],
        ..config("1/h")
    })
    .await;
    let tenant = |t: &str, peer: &str| {
        request_from(peer)
            .header("x-tenant", t)
            .body(empty_body())
            .unwrap()
    };
    assert_eq!(
        status(&svc, tenant("acme", "192.0.2.1:1")).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&svc, tenant("acme", "192.0.2.2:1")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        status(&svc, tenant("globex", "192.0.2.1:1")).await,
        StatusCode::OK
    );
    // Without the header: by client IP.
    assert_eq!(status(&svc, get("192.0.2.3:1")).await, StatusCode::OK);
    assert_eq!(
        status(&svc, get("192.0.2.3:1")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn combined_keys_need_every_part_to_match() {
    let svc = service(RateLimitConfig {
        burst: Some(1),
        key: vec![KeyPart::ClientIp, KeyPart::Header("x-tenant".into())],
        ..config("1/h")
    })
    .await;
    let req = |t: &str, peer: &str| {
        request_from(peer)
            .header("x-tenant", t)
            .body(empty_body())
            .unwrap()
    };
    assert_eq!(status(&svc, req("a", "192.0.2.1:1")).await, StatusCode::OK);
    assert_eq!(status(&svc, req("a", "192.0.2.2:1")).await, StatusCode::OK);
    assert_eq!(status(&svc, req("b", "192.0.2.1:1")).await, StatusCode::OK);
    assert_eq!(
        status(&svc, req("a", "192.0.2.1:1")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn an_empty_key_is_one_bucket_for_the_route() {
    let svc = service(RateLimitConfig {
        burst: Some(2),
        key: Vec::new(),
        ..config("1/h")
    })
    .await;
    assert_eq!(status(&svc, get("192.0.2.1:1")).await, StatusCode::OK);
    assert_eq!(status(&svc, get("198.51.100.1:1")).await, StatusCode::OK);
    assert_eq!(
        status(&svc, get("203.0.113.1:1")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[test]
fn keys_are_unambiguous_and_bounded() {
    let b = builder(
        &[KeyPart::Header("a".into()), KeyPart::Header("b".into())],
        &[],
        ForwardedHeader::XForwardedFor,
    );
    let req = |a: &str, b_: &str| {
        http::Request::builder()
            .header("a", a)
            .header("b", b_)
            .body(empty_body())
            .unwrap()
    };
    assert_ne!(key_of(&b, &req("x", "yz")), key_of(&b, &req("xy", "z")));
    assert_eq!(key_of(&b, &req("x", "yz")), key_of(&b, &req("x", "yz")));

    let long = "v".repeat(10_000);
    let k = key_of(&b, &req(&long, "z"));
    assert_eq!(k.as_bytes().len(), 33, "long keys are digested");
    assert_ne!(k, key_of(&b, &req(&long, "y")));

    // No peer recorded: one shared "unknown" client.
    let ipb = builder(&[KeyPart::ClientIp], &[], ForwardedHeader::XForwardedFor);
    let no_peer = http::Request::builder().body(empty_body()).unwrap();
    assert_eq!(ipb.client_ip(&no_peer), None);
    assert_eq!(
        key_of(&ipb, &no_peer),
        key_of(&ipb, &http::Request::builder().body(empty_body()).unwrap())
    );
}

// --- claims ---

/// `request` from `peer` carrying the claims of a validated token.
fn with_claims(peer: &str, claims: serde_json::Value) -> Request {
    let mut req = get(peer);
    let claims = claims.as_object().unwrap().clone();
    req.extensions_mut()
        .insert(crate::stage::Claims(std::sync::Arc::new(claims)));
    req
}

#[tokio::test]
async fn counts_per_claim_value_and_falls_back_to_the_client_ip() {
    let svc = service(RateLimitConfig {
        burst: Some(1),
        key: vec![KeyPart::Claim("tenant".into())],
        ..config("1/h")
    })
    .await;
    let tenant = |t: &str, peer: &str| with_claims(peer, serde_json::json!({ "tenant": t }));
    assert_eq!(
        status(&svc, tenant("acme", "192.0.2.1:1")).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&svc, tenant("acme", "192.0.2.2:1")).await,
        StatusCode::TOO_MANY_REQUESTS,
        "acme from another IP is still acme"
    );
    assert_eq!(
        status(&svc, tenant("globex", "192.0.2.1:1")).await,
        StatusCode::OK
    );
    // No claims, no such claim, or a null one: counted by IP, each IP apart.
    assert_eq!(status(&svc, get("192.0.2.3:1")).await, StatusCode::OK);
    assert_eq!(
        status(
            &svc,
            with_claims("192.0.2.3:1", serde_json::json!({ "sub": "x" }))
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        status(
            &svc,
            with_claims("192.0.2.3:1", serde_json::json!({ "tenant": null }))
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(status(&svc, get("192.0.2.4:1")).await, StatusCode::OK);
    // A claim that reads like an IP address is not that client.
    assert_eq!(
        status(&svc, tenant("192.0.2.5", "192.0.2.5:1")).await,
        StatusCode::OK
    );
    assert_eq!(status(&svc, get("192.0.2.5:1")).await, StatusCode::OK);
}

#[test]
fn claim_values_other_than_strings_key_as_their_json_text() {
    let b = builder(
        &[KeyPart::Claim("tier".into())],
        &[],
        ForwardedHeader::XForwardedFor,
    );
    let key = |value: serde_json::Value| {
        key_of(
            &b,
            &with_claims("192.0.2.1:1", serde_json::json!({ "tier": value })),
        )
    };
    assert_eq!(key(serde_json::json!(3)), key(serde_json::json!("3")));
    assert_eq!(key(serde_json::json!(true)), key(serde_json::json!("true")));
    assert_eq!(
        key(serde_json::json!(["a", "b"])),
        key(serde_json::json!("[\"a\",\"b\"]"))
    );
    assert_ne!(key(serde_json::json!(3)), key(serde_json::json!(4)));
    assert_ne!(key(serde_json::json!("a")), key(serde_json::json!(["a"])));
    let long = key(serde_json::json!("t".repeat(10_000)));
    assert_eq!(long.as_bytes().len(), 33, "long keys are digested");
}

#[test]
fn a_claim_part_never_collides_with_a_consumer_or_a_header_of_the_same_value() {
    let parts = [
        KeyPart::Claim("sub".into()),
        KeyPart::Consumer,
        KeyPart::Header("sub".into()),
    ];
    let keys: Vec<Key> = parts
        .iter()
        .map(|part| {
            let b = builder(
                std::slice::from_ref(part),
                &[],
                ForwardedHeader::XForwardedFor,
            );
            let mut req = with_claims("192.0.2.1:1", serde_json::json!({ "sub": "alice" }));
            req.extensions_mut().insert(Consumer("alice".into()));
            req.headers_mut()
                .insert("sub", HeaderValue::from_static("alice"));
            key_of(&b, &req)
        })
        .collect();
    assert_ne!(keys[0], keys[1]);
    assert_ne!(keys[0], keys[2]);
    assert_ne!(keys[1], keys[2]);
}

#[tokio::test]
async fn claim_parts_parse_and_an_empty_name_is_refused() {
    let config: RateLimitConfig = serde_json::from_value(serde_json::json!({
        "rate": "5/min",
        "key": [{ "claim": "tenant" }, "client_ip"],
    }))
    .unwrap();
    assert_eq!(
        config.key,
        vec![KeyPart::Claim("tenant".into()), KeyPart::ClientIp]
    );
    let err = plugin_error(RateLimitConfig {
        key: vec![KeyPart::Claim(String::new())],
        ..config
    })
    .await;
    assert_eq!(
        err,
        "plugin `rate_limit`: key: empty claim name: name a top-level claim, e.g. `{claim: tenant}`"
    );
}
