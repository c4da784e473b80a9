//! The plugin's config: its YAML shape, its schema and its build errors.

use super::*;

#[test]
fn the_yaml_shape_parses() {
    let config = parse(header_config());
    assert_eq!(config.mode, Mode::FirstMatch);
    assert!(config.allow.is_none());
    let MethodConfig::ApiKey(api_key) = &config.methods[0] else {
        panic!("expected api_key");
    };
    assert_eq!(api_key.header.as_deref(), Some("x-api-key"));
    assert_eq!(api_key.keys[1].consumer, "globex");

    let config = parse(json!({
        "methods": [{ "api_key": { "query": "api_key", "keys_file": "/etc/keys" } }],
        "mode": "all",
        "allow": { "consumers": ["acme"] },
    }));
    assert_eq!(config.mode, Mode::All);
    assert_eq!(
        config.allow.unwrap().consumers.unwrap(),
        vec!["acme".to_owned()]
    );

    let config = parse(json!({
        "methods": [{ "api_key": { "keys_file": "/etc/keys" } }],
        "allow": {
            "scopes": ["orders:read"],
            "claims": { "tenant": ["acme"], "tier": [3, 2.5], "admin": [true] },
        },
    }));
    let allow = config.allow.unwrap();
    assert_eq!(allow.scopes.unwrap(), ["orders:read"]);
    let claims = allow.claims.unwrap();
    let text = |name: &str| -> Vec<String> { claims[name].iter().map(|v| v.0.clone()).collect() };
    assert_eq!(text("tenant"), ["acme"]);
    assert_eq!(text("tier"), ["3", "2.5"]);
    assert_eq!(text("admin"), ["true"]);
}

#[test]
fn unknown_fields_are_refused_at_every_level() {
    let bad = [
        json!({ "methods": [], "modes": "all" }),
        json!({ "methods": [{ "api_keys": {} }] }),
        json!({ "methods": [{ "api_key": { "headers": "x" } }] }),
        json!({ "methods": [{ "api_key": { "keys": [{ "consumer": "a", "sha256": "0", "key": "k" }] } }] }),
        json!({ "methods": [], "allow": { "roles": ["x"] } }),
        json!({ "methods": [], "allow": { "claims": { "tenant": [{ "name": "x" }] } } }),
        json!({ "methods": [], "allow": { "claims": { "tenant": "acme" } } }),
        json!({ "methods": [], "mode": "any" }),
    ];
    for config in bad {
        assert!(
            serde_json::from_value::<AuthConfig>(config.clone()).is_err(),
            "{config}"
        );
    }
}

#[test]
fn the_schema_documents_the_fields() {
    let schema = serde_json::to_string(&schemars::schema_for!(AuthConfig)).unwrap();
    for text in [
        "The authentication methods",
        "first_match",
        "keys_file",
        "printf %s",
        "must carry **all** these scopes",
        "Top-level claim name",
        "compared as its JSON text",
    ] {
        assert!(schema.contains(text), "schema lacks {text:?}: {schema}");
    }
}

#[tokio::test]
async fn config_errors_are_clear() {
    assert_eq!(
        build_err(json!({ "methods": [] })).await,
        "plugin `auth`: `methods` is empty: list at least one authentication method"
    );
    for (allow, message) in [
        (
            json!({}),
            "`allow` sets no rule: list `consumers`, `scopes` or `claims`, or remove `allow`",
        ),
        (
            json!({ "consumers": [] }),
            "`allow.consumers` is empty: no caller could pass; remove the route instead",
        ),
        (
            json!({ "scopes": [] }),
            "`allow.scopes` is empty: it would require nothing; list at least one scope, or remove it",
        ),
        (
            json!({ "scopes": ["orders:read", "a b"] }),
            "`allow.scopes[1]`: \"a b\" is not one scope (scopes are non-empty and hold no spaces): list each scope separately",
        ),
        (
            json!({ "scopes": [""] }),
            "`allow.scopes[0]`: \"\" is not one scope",
        ),
        (
            json!({ "claims": {} }),
            "`allow.claims` is empty: it would require nothing; list at least one claim, or remove it",
        ),
        (
            json!({ "claims": { "tenant": ["acme"], "tier": [] } }),
            "`allow.claims.tier` is empty: no token could pass; list the accepted values",
        ),
        (
            json!({ "claims": { "": ["x"] } }),
            "`allow.claims`: a claim name is empty",
        ),
    ] {
        let mut config = header_config();
        config["allow"] = allow;
        let err = build_err(config).await;
        assert!(
            err.starts_with(&format!("plugin `auth`: {message}")),
            "{err}"
        );
    }
    let err = build_err(json!({
        "methods": [
            { "api_key": { "keys": [{ "consumer": "a", "sha256": sha256_hex("1") }] } },
            { "api_key": { "keys": [{ "consumer": "b", "sha256": "not hex" }] } },
        ],
    }))
    .await;
    assert!(
        err.starts_with("plugin `auth`: methods[1].api_key: keys[0] (consumer `b`): `sha256` must be 64 hex digits"),
        "{err}"
    );
    let err = build_err(json!({ "methods": [{ "api_key": { "header": "x-api-key" } }] })).await;
    assert_eq!(
        err,
        "plugin `auth`: methods[0].api_key: no keys: set `keys` and/or `keys_file`"
    );
}

#[test]
fn the_example_config_holds_the_digest_of_its_demo_key() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/examples/api-keys.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let digest = sha256_hex("demo-key-123");
    assert!(
        text.contains(&format!("sha256: {digest}")),
        "{path} should list the digest of demo-key-123 ({digest})"
    );
    assert!(text.contains("printf %s 'the-key' | sha256sum"));
}
