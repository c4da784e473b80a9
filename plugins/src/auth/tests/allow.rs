//! `allow` rules: who may call a route once authenticated (else 403).

use super::*;

#[tokio::test]
async fn a_consumer_not_allowed_is_403_permission_denied() {
    let mut config = header_config();
    config["allow"] = json!({ "consumers": ["acme"] });
    let (svc, recorder) = stack(config).await;

    let (status, headers, body) = send(&svc, request("/", &[("x-api-key", "globex-key")])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(headers.get(header::WWW_AUTHENTICATE).is_none());
    assert_eq!(
        status_json(&body),
        json!({"code": 7, "message": "permission denied", "details": []})
    );
    assert!(recorder.calls().is_empty());

    let (status, _, _) = send(&svc, request("/", &[("x-api-key", "acme-key")])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(recorder.only_call().consumer, Some(Consumer("acme".into())));

    // Unauthenticated is still 401, not 403.
    let (status, _, _) = send(&svc, request("/", &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

// --- scopes and claims (JSON Web Tokens) ---

const SECRET: &str = "test-only-secret-0123456789abcdef0123";

/// An HS256 token over `claims` plus `sub: alice` and a future `exp`.
fn token(claims: Value) -> String {
    let mut all = json!({ "sub": "alice", "exp": now() + 300 });
    all.as_object_mut()
        .unwrap()
        .extend(claims.as_object().unwrap().clone());
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &all,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwt_method() -> Value {
    json!({ "jwt": { "algorithms": ["HS256"], "keys": { "hs256_secret": SECRET } } })
}

/// One `jwt` method (HS256) with these `allow` rules.
fn jwt_config(allow: Value) -> Value {
    json!({ "methods": [jwt_method()], "allow": allow })
}

fn bearer(token: &str) -> Request {
    request("/", &[("authorization", &format!("Bearer {token}"))])
}

/// The status of one request carrying a token with `claims`.
async fn status_with(svc: &HttpService, claims: Value) -> StatusCode {
    send(svc, bearer(&token(claims))).await.0
}

#[tokio::test]
async fn every_listed_scope_must_be_in_the_scope_claim() {
    let (svc, recorder) = stack(jwt_config(
        json!({ "scopes": ["orders:read", "orders:write"] }),
    ))
    .await;
    let all = json!({ "scope": "profile orders:write  orders:read" });
    assert_eq!(status_with(&svc, all).await, StatusCode::OK);
    assert_eq!(recorder.calls().len(), 1);

    for claims in [
        json!({ "scope": "orders:read" }),
        json!({ "scope": "orders:read,orders:write" }),
        json!({ "scope": "orders" }),
        json!({ "scope": "" }),
        json!({ "scope": 7 }),
        json!({}),
    ] {
        let (status, _, body) = send(&svc, bearer(&token(claims.clone()))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{claims}");
        assert_eq!(
            status_json(&body),
            json!({"code": 7, "message": "permission denied", "details": []}),
            "the refused rule is not named"
        );
    }
    assert_eq!(recorder.calls().len(), 1);
}

#[tokio::test]
async fn scopes_also_come_from_an_scp_array_or_string() {
    let (svc, _) = stack(jwt_config(
        json!({ "scopes": ["orders:read", "orders:write"] }),
    ))
    .await;
    for claims in [
        json!({ "scp": ["orders:read", "orders:write"] }),
        json!({ "scp": "orders:write orders:read" }),
        // Both claims count together.
        json!({ "scope": "orders:read", "scp": ["orders:write"] }),
    ] {
        assert_eq!(
            status_with(&svc, claims.clone()).await,
            StatusCode::OK,
            "{claims}"
        );
    }
    for claims in [
        json!({ "scp": ["orders:read"] }),
        // An array element is one scope, not a list.
        json!({ "scp": ["orders:read orders:write"] }),
        json!({ "scp": [["orders:read", "orders:write"]] }),
    ] {
        assert_eq!(
            status_with(&svc, claims.clone()).await,
            StatusCode::FORBIDDEN,
            "{claims}"
        );
    }
}

#[tokio::test]
async fn each_listed_claim_must_equal_one_of_its_values() {
    let (svc, recorder) = stack(jwt_config(json!({ "claims": {
        "tenant": ["acme", "globex"],
        "tier": [3, 4],
        "email_verified": [true],
    } })))
    .await;
    let ok = json!({ "tenant": "globex", "tier": 3, "email_verified": true });
    assert_eq!(status_with(&svc, ok).await, StatusCode::OK);
    // An array claim passes when one element does; numbers and booleans
    // compare as their JSON text.
    let ok = json!({ "tenant": ["initech", "acme"], "tier": "4", "email_verified": "true" });
    assert_eq!(status_with(&svc, ok).await, StatusCode::OK);
    assert_eq!(recorder.calls().len(), 2);

    for claims in [
        json!({ "tenant": "initech", "tier": 3, "email_verified": true }),
        json!({ "tenant": "ACME", "tier": 3, "email_verified": true }),
        json!({ "tenant": "acme", "tier": 5, "email_verified": true }),
        json!({ "tenant": "acme", "tier": 3.0, "email_verified": true }),
        json!({ "tenant": "acme", "tier": 3, "email_verified": false }),
        json!({ "tenant": "acme", "tier": 3 }),
        json!({ "tenant": "acme", "tier": 3, "email_verified": null }),
        json!({ "tenant": ["initech"], "tier": 3, "email_verified": true }),
        json!({ "tenant": { "name": "acme" }, "tier": 3, "email_verified": true }),
        json!({ "tenant": [["acme"]], "tier": 3, "email_verified": true }),
    ] {
        assert_eq!(
            status_with(&svc, claims.clone()).await,
            StatusCode::FORBIDDEN,
            "{claims}"
        );
    }
    assert_eq!(recorder.calls().len(), 2);
}

#[tokio::test]
async fn claim_names_are_top_level_not_paths() {
    let (svc, _) = stack(jwt_config(json!({ "claims": { "realm.role": ["admin"] } }))).await;
    let nested = json!({ "realm": { "role": "admin" } });
    assert_eq!(status_with(&svc, nested).await, StatusCode::FORBIDDEN);
    let dotted = json!({ "realm.role": "admin" });
    assert_eq!(status_with(&svc, dotted).await, StatusCode::OK);
}

#[tokio::test]
async fn scope_and_claim_rules_refuse_identities_without_a_token() {
    for allow in [
        json!({ "scopes": ["orders:read"] }),
        json!({ "claims": { "sub": ["acme"] } }),
    ] {
        let (svc, recorder) = stack(json!({
            "methods": [
                { "api_key": { "keys": [{ "consumer": "acme", "sha256": sha256_hex("acme-key") }] } },
                jwt_method(),
            ],
            "allow": allow,
        }))
        .await;
        let (status, _, _) = send(&svc, request("/", &[("x-api-key", "acme-key")])).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{allow}");
        let claims = json!({ "sub": "acme", "scope": "orders:read" });
        assert_eq!(status_with(&svc, claims).await, StatusCode::OK, "{allow}");
        assert_eq!(recorder.only_call().consumer, Some(Consumer("acme".into())));
    }
}

#[tokio::test]
async fn the_tokens_claims_reach_the_next_stage_and_other_methods_set_none() {
    let (svc, recorder) = stack(json!({
        "methods": [
            jwt_method(),
            { "api_key": { "keys": [{ "consumer": "acme", "sha256": sha256_hex("acme-key") }] } },
        ],
    }))
    .await;
    assert_eq!(
        status_with(&svc, json!({ "tenant": "globex", "tier": 3 })).await,
        StatusCode::OK
    );
    let Some(Claims(claims)) = recorder.calls()[0].claims.clone() else {
        panic!("no claims");
    };
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["tenant"], "globex");
    assert_eq!(claims["tier"], 3);

    // An API key has no claims, even if an earlier stage set some.
    let mut req = request("/", &[("x-api-key", "acme-key")]);
    req.extensions_mut().insert(Claims(Arc::new(
        json!({ "sub": "forged" }).as_object().unwrap().clone(),
    )));
    assert_eq!(send(&svc, req).await.0, StatusCode::OK);
    let seen = &recorder.calls()[1];
    assert_eq!(seen.consumer, Some(Consumer("acme".into())));
    assert_eq!(seen.claims, None);
}

#[tokio::test]
async fn in_mode_all_the_claims_are_the_tokens_whatever_its_place() {
    let (svc, recorder) = stack(json!({
        "mode": "all",
        "methods": [
            { "api_key": { "keys": [{ "consumer": "acme", "sha256": sha256_hex("acme-key") }] } },
            jwt_method(),
        ],
        "allow": { "consumers": ["acme"], "scopes": ["orders:read"] },
    }))
    .await;
    let token = token(json!({ "scope": "orders:read" }));
    let both = request(
        "/",
        &[
            ("x-api-key", "acme-key"),
            ("authorization", &format!("Bearer {token}")),
        ],
    );
    assert_eq!(send(&svc, both).await.0, StatusCode::OK);
    let seen = recorder.only_call();
    assert_eq!(
        seen.consumer,
        Some(Consumer("acme".into())),
        "the first method's"
    );
    assert_eq!(seen.claims.unwrap().0["sub"], "alice", "the token's");
}

#[tokio::test]
async fn every_rule_set_must_pass() {
    let (svc, _) = stack(jwt_config(json!({
        "consumers": ["alice"],
        "scopes": ["orders:read"],
        "claims": { "tenant": ["acme"] },
    })))
    .await;
    let ok = json!({ "scope": "orders:read", "tenant": "acme" });
    assert_eq!(status_with(&svc, ok).await, StatusCode::OK);
    for claims in [
        json!({ "sub": "bob", "scope": "orders:read", "tenant": "acme" }),
        json!({ "tenant": "acme" }),
        json!({ "scope": "orders:read" }),
    ] {
        assert_eq!(
            status_with(&svc, claims.clone()).await,
            StatusCode::FORBIDDEN,
            "{claims}"
        );
    }
}
