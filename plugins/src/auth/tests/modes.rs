//! Several methods on one route: `first_match` and `all`, and their challenges.

use super::*;

/// Two `api_key` methods: `x-api-key` (acme, globex) then `x-client-key`
/// (mobile).
fn two_methods(mode: &str) -> Value {
    json!({
        "mode": mode,
        "methods": [
            { "api_key": {
                "keys": [
                    { "consumer": "acme", "sha256": sha256_hex("acme-key") },
                    { "consumer": "globex", "sha256": sha256_hex("globex-key") },
                ],
            }},
            { "api_key": {
                "header": "x-client-key",
                "keys": [{ "consumer": "mobile", "sha256": sha256_hex("mobile-key") }],
            }},
        ],
    })
}

#[tokio::test]
async fn mode_all_requires_every_method() {
    let (svc, recorder) = stack(two_methods("all")).await;

    let both = request(
        "/",
        &[("x-api-key", "acme-key"), ("x-client-key", "mobile-key")],
    );
    let (status, _, _) = send(&svc, both).await;
    assert_eq!(status, StatusCode::OK);
    let seen = recorder.only_call();
    assert_eq!(
        seen.consumer,
        Some(Consumer("acme".into())),
        "first method names the consumer"
    );
    assert!(seen.headers.get("x-api-key").is_none());
    assert!(seen.headers.get("x-client-key").is_none());

    let cases = [
        (vec![("x-api-key", "acme-key")], "missing credentials"),
        (vec![("x-client-key", "mobile-key")], "missing credentials"),
        (
            vec![("x-api-key", "acme-key"), ("x-client-key", "nope")],
            "invalid credentials",
        ),
        (vec![("x-api-key", "nope")], "invalid credentials"),
        (vec![], "missing credentials"),
    ];
    for (headers, message) in cases {
        let (status, response_headers, body) = send(&svc, request("/", &headers)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert_eq!(
            status_json(&body)["message"],
            format!("unauthenticated: {message}"),
            "{headers:?}"
        );
        assert_eq!(
            challenges(&response_headers),
            [
                "ApiKey header=\"x-api-key\"",
                "ApiKey header=\"x-client-key\""
            ]
        );
    }
    assert_eq!(recorder.calls().len(), 1);
}

#[tokio::test]
async fn first_match_takes_the_first_method_that_authenticates() {
    let (svc, recorder) = stack(two_methods("first_match")).await;

    let second = request("/", &[("x-client-key", "mobile-key")]);
    assert_eq!(send(&svc, second).await.0, StatusCode::OK);
    assert_eq!(
        recorder.calls()[0].consumer,
        Some(Consumer("mobile".into()))
    );

    // A wrong first credential does not stop a valid second one; both are
    // stripped.
    let wrong_then_right = request(
        "/",
        &[("x-api-key", "nope"), ("x-client-key", "mobile-key")],
    );
    assert_eq!(send(&svc, wrong_then_right).await.0, StatusCode::OK);
    let seen = &recorder.calls()[1];
    assert_eq!(seen.consumer, Some(Consumer("mobile".into())));
    assert!(seen.headers.get("x-api-key").is_none());
    assert!(seen.headers.get("x-client-key").is_none());

    // Both valid: the first listed wins.
    let both = request(
        "/",
        &[("x-api-key", "globex-key"), ("x-client-key", "mobile-key")],
    );
    assert_eq!(send(&svc, both).await.0, StatusCode::OK);
    assert_eq!(
        recorder.calls()[2].consumer,
        Some(Consumer("globex".into()))
    );

    let wrong = request("/", &[("x-client-key", "nope")]);
    let (status, headers, body) = send(&svc, wrong).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenges(&headers).len(), 2);
    assert_eq!(
        status_json(&body)["message"],
        "unauthenticated: invalid credentials"
    );
    assert_eq!(recorder.calls().len(), 3);
}

#[tokio::test]
async fn identical_challenges_are_sent_once() {
    let (_, headers, _) = {
        let (svc, _) = stack(json!({
            "methods": [
                { "api_key": { "keys": [{ "consumer": "a", "sha256": sha256_hex("1") }] } },
                { "api_key": { "keys": [{ "consumer": "b", "sha256": sha256_hex("2") }] } },
            ],
        }))
        .await;
        send(&svc, request("/", &[])).await
    };
    assert_eq!(challenges(&headers), ["ApiKey header=\"x-api-key\""]);
}
