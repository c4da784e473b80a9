//! The configuration: the documented shape, defaults, and refusals that
//! name the field at fault.

use serde_json::json;

use super::*;
use crate::idempotency::config::{DEFAULT_MAX_BODY, DEFAULT_TTL, HeaderFilter};

async fn refusal(extra: serde_json::Value) -> String {
    match Idempotency::new(config(local_store(), extra)).await {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_documented_shape_deserializes_with_its_defaults() {
    let full: IdempotencyConfig = serde_json::from_value(json!({
        "store": {"redis": {"url": "redis://127.0.0.1:6379", "key_prefix": "app:", "timeout": "100ms"}},
        "ttl": "12h",
        "in_flight_ttl": "30s",
        "methods": ["post", "PUT"],
        "header": "X-Idempotency-Key",
        "required": true,
        "max_key_length": 64,
        "max_body": "512KiB",
        "max_request_body": 65536,
        "stored_headers": ["content-type", "x-app-*"],
        "on_store_error": "fail_open",
    }))
    .unwrap();
    let settings = full.settings().unwrap();
    assert_eq!(settings.ttl, Duration::from_secs(12 * 3600));
    assert_eq!(settings.methods, [Method::POST, Method::PUT]);
    assert_eq!(settings.header, "x-idempotency-key");
    assert_eq!(settings.header_label, "X-Idempotency-Key");
    assert_eq!(
        (settings.max_body, settings.max_request_body),
        (512 << 10, 65536)
    );
    assert_eq!(settings.on_store_error, OnStoreError::FailOpen);
    assert!(
        settings
            .stored_headers
            .allows(&http::HeaderName::from_static("x-app-id"))
    );
    assert!(
        !settings
            .stored_headers
            .allows(&http::HeaderName::from_static("location"))
    );

    let minimal = config(
        json!({"redis": {"url": "redis://127.0.0.1:6379"}}),
        json!({}),
    );
    let StoreConfig::Redis(redis) = &minimal.store else {
        panic!("not redis")
    };
    assert_eq!(redis.key_prefix, "switchyard:idem:");
    let settings = minimal.settings().unwrap();
    assert_eq!(settings.ttl, DEFAULT_TTL);
    assert_eq!(settings.in_flight_ttl, Duration::from_secs(60));
    assert_eq!(settings.methods, [Method::POST, Method::PATCH]);
    assert_eq!(settings.header, "idempotency-key");
    assert!(!settings.required);
    assert_eq!(settings.max_key_length, 255);
    assert_eq!(settings.max_body, DEFAULT_MAX_BODY);
    assert_eq!(settings.max_request_body, 4 << 20);
    assert_eq!(settings.on_store_error, OnStoreError::FailClosed);
    for name in [
        "content-type",
        "content-language",
        "location",
        "grpc-metadata-x",
    ] {
        let name = http::HeaderName::try_from(name).unwrap();
        assert!(settings.stored_headers.allows(&name), "{name}");
    }
    let local = config(local_store(), json!({}));
    assert_eq!(
        local.store,
        StoreConfig::Local(LocalStoreConfig {
            max_keys: 10_000,
            max_bytes: None
        })
    );
}

#[test]
fn unknown_or_missing_fields_are_refused() {
    for bad in [
        json!({}),
        json!({"store": {}}),
        json!({"store": {"local": {}}, "ttl_seconds": 5}),
        json!({"store": {"redis": {}}}),
        json!({"store": {"redis": {"url": "redis://x", "prefix": "a"}}}),
        json!({"store": {"memcached": {}}}),
        json!({"store": {"local": {}}, "on_store_error": "open"}),
    ] {
        assert!(
            serde_json::from_value::<IdempotencyConfig>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn invalid_values_are_refused_naming_the_field() {
    for (extra, field) in [
        (json!({"ttl": "a day"}), "`ttl`"),
        (json!({"ttl": "500ms"}), "`ttl`"),
        (
            json!({"ttl": "1h", "in_flight_ttl": "2h"}),
            "`in_flight_ttl`",
        ),
        (json!({"methods": []}), "`methods`"),
        (json!({"methods": ["GET"]}), "safe method"),
        (json!({"methods": ["PO ST"]}), "`methods`"),
        (json!({"header": "bad header"}), "`header`"),
        (json!({"max_key_length": 0}), "`max_key_length`"),
        (json!({"max_body": "1XB"}), "`max_body`"),
        (json!({"max_body": 0}), "`max_body`"),
        (json!({"max_request_body": "lots"}), "`max_request_body`"),
        (
            json!({"stored_headers": ["content-length"]}),
            "`stored_headers`",
        ),
        (
            json!({"stored_headers": ["transfer-*"]}),
            "`stored_headers`",
        ),
        (json!({"stored_headers": ["*"]}), "`stored_headers`"),
    ] {
        let message = refusal(extra.clone()).await;
        assert!(message.contains(field), "{extra}: {message}");
        assert!(message.starts_with("plugin `idempotency`: "), "{message}");
    }
    let store_error = |store: serde_json::Value| async move {
        match Idempotency::new(config(store, json!({}))).await {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    };
    let url = store_error(json!({"redis": {"url": "http://x"}})).await;
    assert!(url.contains("store.redis.url"), "{url}");
    let timeout = store_error(json!({"redis": {"url": REDIS_URL, "timeout": "soon"}})).await;
    assert!(timeout.contains("store.redis.timeout"), "{timeout}");
    let keys = store_error(json!({"local": {"max_keys": 0}})).await;
    assert!(keys.contains("store.local.max_keys"), "{keys}");
    let bytes = store_error(json!({"local": {"max_bytes": "64 parsecs"}})).await;
    assert!(bytes.contains("store.local.max_bytes"), "{bytes}");
}

#[test]
fn header_filters_match_names_and_prefixes() {
    let filter = HeaderFilter::new(&["Content-Type".into(), "x-a-*".into()]).unwrap();
    let allows = |name: &'static str| filter.allows(&http::HeaderName::from_static(name));
    assert!(allows("content-type"));
    assert!(allows("x-a-b"));
    assert!(!allows("x-a"));
    assert!(!allows("content-type-options"));
}

#[test]
fn the_plugin_runs_innermost_after_auth_and_rate_limits() {
    use crate::registry::{Phase, PluginConfig, in_phase_order};
    let listed: Vec<PluginConfig> = [
        json!({"idempotency": {"store": {"local": {}}}}),
        json!({"rate_limit": {"rate": "10/s"}}),
        json!({"auth": {"methods": [{"mtls": {}}]}}),
        json!({"request_id": {}}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect();
    let names: Vec<_> = in_phase_order(&listed)
        .into_iter()
        .map(PluginConfig::name)
        .collect();
    assert_eq!(names, ["request_id", "auth", "rate_limit", "idempotency"]);
    assert_eq!(listed[0].phase(), Phase::Idempotency);
}
