//! The `api_key` method through the stage: keys in headers, query and files;
//! what the handler sees and what a refused client learns.

use super::*;

#[tokio::test]
async fn a_valid_key_reaches_the_handler_as_a_consumer_without_the_key() {
    let (svc, recorder) = stack(header_config()).await;
    let req = request(
        "/v1/users/1",
        &[("x-api-key", "globex-key"), ("accept", "application/json")],
    );
    let (status, _, _) = send(&svc, req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = recorder.only_call();
    assert_eq!(seen.consumer, Some(Consumer("globex".into())));
    assert!(
        seen.headers.get("x-api-key").is_none(),
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.headers["accept"], "application/json");
    assert_eq!(seen.uri, "/v1/users/1");
}

#[tokio::test]
async fn a_wrong_key_is_401_with_a_challenge_and_never_reaches_the_handler() {
    let (svc, recorder) = stack(header_config()).await;
    let req = request("/v1/users/1", &[("x-api-key", "acme-kez")]);
    let (status, headers, body) = send(&svc, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenges(&headers), ["ApiKey header=\"x-api-key\""]);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        status_json(&body),
        json!({"code": 16, "message": "unauthenticated: invalid credentials", "details": []})
    );
    assert!(!body.contains("acme"), "{body}");
    assert!(recorder.calls().is_empty());
}

#[tokio::test]
async fn a_missing_or_empty_key_is_401_missing_credentials() {
    let (svc, recorder) = stack(header_config()).await;
    for req in [
        request("/v1/users/1", &[]),
        request("/v1/users/1", &[("x-api-key", "")]),
    ] {
        let (status, headers, body) = send(&svc, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(challenges(&headers), ["ApiKey header=\"x-api-key\""]);
        assert_eq!(
            status_json(&body)["message"],
            "unauthenticated: missing credentials"
        );
    }
    assert!(recorder.calls().is_empty());
}

#[tokio::test]
async fn the_key_sent_twice_is_refused() {
    let (svc, recorder) = stack(header_config()).await;
    let req = request(
        "/",
        &[("x-api-key", "acme-key"), ("x-api-key", "globex-key")],
    );
    let (status, _, body) = send(&svc, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status_json(&body)["message"],
        "unauthenticated: invalid credentials"
    );
    assert!(recorder.calls().is_empty());
}

#[tokio::test]
async fn a_key_in_the_query_is_read_and_stripped_from_the_uri() {
    let (svc, recorder) = stack(json!({
        "methods": [{ "api_key": {
            "query": "api_key",
            "keys": [{ "consumer": "acme", "sha256": sha256_hex("a+b/c") }],
        }}],
    }))
    .await;
    let req = request("/v1/users/1?view=full&api_key=a%2Bb%2Fc&page=2", &[]);
    let (status, _, _) = send(&svc, req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = recorder.only_call();
    assert_eq!(seen.uri, "/v1/users/1?view=full&page=2");
    assert_eq!(seen.consumer, Some(Consumer("acme".into())));

    // The query is the only place read: the default header is not.
    let req = request("/v1/users/1", &[("x-api-key", "a+b/c")]);
    let (status, headers, body) = send(&svc, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenges(&headers), ["ApiKey query=\"api_key\""]);
    assert_eq!(
        status_json(&body)["message"],
        "unauthenticated: missing credentials"
    );

    let req = request("/v1/users/1?api_key=wrong", &[]);
    let (status, _, body) = send(&svc, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.contains("wrong"), "{body}");
    assert_eq!(recorder.calls().len(), 1);
}

#[tokio::test]
async fn with_header_and_query_both_are_stripped() {
    let (svc, recorder) = stack(json!({
        "methods": [{ "api_key": {
            "header": "x-api-key",
            "query": "api_key",
            "keys": [{ "consumer": "acme", "sha256": sha256_hex("acme-key") }],
        }}],
    }))
    .await;
    let req = request("/v1/x?api_key=whatever", &[("x-api-key", "acme-key")]);
    let (status, _, _) = send(&svc, req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = recorder.only_call();
    assert_eq!(seen.uri, "/v1/x");
    assert!(seen.headers.get("x-api-key").is_none());
}

#[tokio::test]
async fn keys_from_a_file_authenticate() {
    let path = std::env::temp_dir().join(format!(
        "switchyard-auth-{}-plugin.keys",
        std::process::id()
    ));
    std::fs::write(
        &path,
        format!("# partners\ninitech:{}\n", sha256_hex("initech-key")),
    )
    .unwrap();
    let mut config = header_config();
    config["methods"][0]["api_key"]["keys_file"] = json!(path);
    let built = stack(config).await;
    std::fs::remove_file(&path).ok();
    let (svc, recorder) = built;
    for (key, consumer) in [("initech-key", "initech"), ("acme-key", "acme")] {
        let (status, _, _) = send(&svc, request("/", &[("x-api-key", key)])).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            recorder.calls().last().unwrap().consumer,
            Some(Consumer(consumer.into()))
        );
    }
}
