//! Configuration: rate parsing, validation, deserialization and the schema.

use super::*;

// --- configuration ---

#[test]
fn rates_parse() {
    let ok = [
        ("100/s", 100, Period::Second),
        ("100/sec", 100, Period::Second),
        (" 100 / second ", 100, Period::Second),
        ("6000/min", 6000, Period::Minute),
        ("1/m", 1, Period::Minute),
        ("1/minute", 1, Period::Minute),
        ("10/h", 10, Period::Hour),
        ("10/hr", 10, Period::Hour),
        ("10/hour", 10, Period::Hour),
        ("1000000000/s", 1_000_000_000, Period::Second),
    ];
    for (text, count, period) in ok {
        assert_eq!(
            Rate::parse(text),
            Ok(Rate {
                count: NonZeroU32::new(count).unwrap(),
                period
            }),
            "{text}"
        );
    }
    for bad in [
        "",
        "100",
        "100/",
        "/s",
        "0/s",
        "-1/s",
        "+1/s",
        "1.5/s",
        "100/d",
        "100/S",
        "x/s",
        "100/s/s",
        "4294967296/s",
        "1000000001/s",
    ] {
        assert!(Rate::parse(bad).is_err(), "{bad:?} accepted");
    }
}

#[tokio::test]
async fn invalid_configs_are_refused() {
    let cases: Vec<(RateLimitConfig, &str)> = vec![
        (config("fast"), "invalid rate"),
        (config("0/s"), "at least 1"),
        (config("10/fortnight"), "unknown unit"),
        (
            RateLimitConfig {
                burst: Some(0),
                ..config("10/s")
            },
            "burst must be at least 1",
        ),
        (
            RateLimitConfig {
                burst: Some(100_000),
                ..config("1/h")
            },
            "more than a year",
        ),
        (
            RateLimitConfig {
                max_keys: 0,
                ..config("10/s")
            },
            "max_keys",
        ),
        (
            RateLimitConfig {
                trusted_proxies: vec!["10.0.0.0/33".into()],
                ..config("10/s")
            },
            "trusted_proxies: invalid CIDR",
        ),
        (
            RateLimitConfig {
                trusted_proxies: vec!["proxy.internal".into()],
                ..config("10/s")
            },
            "trusted_proxies: invalid CIDR",
        ),
        (
            RateLimitConfig {
                key: vec![KeyPart::Header("bad header".into())],
                ..config("10/s")
            },
            "invalid header name",
        ),
        (
            RateLimitConfig {
                name: String::new(),
                ..config("10/s")
            },
            "invalid name",
        ),
        (
            RateLimitConfig {
                name: "a\"b".into(),
                ..config("10/s")
            },
            "invalid name",
        ),
        (
            RateLimitConfig {
                name: "x".repeat(65),
                ..config("10/s")
            },
            "invalid name",
        ),
    ];
    for (config, expected) in cases {
        let debug = format!("{config:?}");
        let err = plugin_error(config).await;
        assert!(err.starts_with("plugin `rate_limit`: "), "{err}");
        assert!(err.contains(expected), "{debug}: {err}");
    }
}

#[test]
fn config_deserializes_from_the_documented_shape() {
    let config: RateLimitConfig = serde_json::from_value(serde_json::json!({
        "name": "per-client",
        "rate": "100/s",
        "burst": 20,
        "key": ["client_ip", "consumer", {"header": "x-tenant"}],
        "trusted_proxies": ["10.0.0.0/8", "2001:db8::/32"],
        "forwarded_header": "forwarded",
        "max_keys": 5000,
        "backend": "local",
    }))
    .unwrap();
    assert_eq!(
        config.key,
        vec![
            KeyPart::ClientIp,
            KeyPart::Consumer,
            KeyPart::Header("x-tenant".into())
        ]
    );
    assert_eq!(config.forwarded_header, ForwardedHeader::Forwarded);
    assert_eq!(config.burst, Some(20));

    let minimal: RateLimitConfig =
        serde_json::from_value(serde_json::json!({"rate": "5/min"})).unwrap();
    assert_eq!(minimal.key, vec![KeyPart::ClientIp]);
    assert_eq!(minimal.name, "default");
    assert_eq!(minimal.max_keys, 100_000);
    assert_eq!(minimal.backend, BackendConfig::Local);

    for bad in [
        serde_json::json!({"rate": "5/min", "burts": 3}),
        serde_json::json!({"rate": "5/min", "backend": "redis"}),
        serde_json::json!({"rate": "5/min", "key": ["route"]}),
        serde_json::json!({}),
    ] {
        assert!(
            serde_json::from_value::<RateLimitConfig>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn every_config_field_is_documented_in_the_schema() {
    let schema = serde_json::to_value(schemars::schema_for!(RateLimitConfig)).unwrap();
    let properties = schema["properties"].as_object().unwrap();
    assert_eq!(properties.len(), 9);
    for (name, property) in properties {
        let description = property["description"].as_str().unwrap_or_default();
        assert!(!description.is_empty(), "{name} has no description");
    }
    assert_eq!(schema["required"], serde_json::json!(["rate"]));
}
