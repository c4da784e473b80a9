//! Config error messages, exactly as a user sees them.

use std::path::Path;

use super::*;

fn parse_err(text: &str) -> String {
    parse(Path::new("gateway.yaml"), text.to_owned())
        .unwrap_err()
        .to_string()
}

#[test]
fn unknown_key_names_file_line_column_path_and_the_expected_keys() {
    let err = parse_err("protos: {sources: [p]}\nroutes:\n  - service: a.B\n    upstrem: users\n");
    assert_eq!(
        err,
        "gateway.yaml:4:5: at `routes[0].upstrem`: unknown field `upstrem`, expected one of name, service, hosts, match_headers, methods, upstream, split, mirror, cache, invalidate_cache, timeout, expose_unannotated, max_request_body, json, headers, plugins, events, grpc, websocket\n  |\n4 |     upstrem: users\n  |     ^"
    );
}

#[test]
fn bad_duration_says_what_was_expected() {
    let err = parse_err(
        "protos: {sources: [p]}\nroutes:\n  - service: a.B\n    upstream: users\n    timeout: 3 parsecs\n",
    );
    assert!(
        err.starts_with(
            "gateway.yaml:5:14: at `routes[0].timeout`: invalid duration \"3 parsecs\""
        ),
        "{err}"
    );
    assert!(
        err.contains("expected e.g. \"250ms\", \"2s\", \"1m\""),
        "{err}"
    );
}

#[test]
fn wrong_scalar_type_points_at_the_value() {
    let err = parse_err("protos: {sources: [p]}\nlimits:\n  max_headers: lots\n");
    assert!(
        err.starts_with("gateway.yaml:3:16: at `limits.max_headers`: "),
        "{err}"
    );
}

#[test]
fn bad_size_unit_lists_the_units() {
    let err = parse_err("protos: {sources: [p]}\nlimits:\n  max_request_body: 4XB\n");
    assert!(
        err.starts_with(
            "gateway.yaml:3:21: at `limits.max_request_body`: invalid size unit \"XB\""
        ),
        "{err}"
    );
    assert!(
        err.contains("expected B, KB, KiB, MB, MiB, GB or GiB"),
        "{err}"
    );
}

#[test]
fn missing_required_field_points_at_its_mapping() {
    let err = parse_err("protos: {sources: [p]}\nroutes:\n  - service: a.B\n");
    assert!(
        err.starts_with("gateway.yaml:3:5: at `routes[0]`: missing field `upstream`"),
        "{err}"
    );
    let err = parse_err("routes: []\n");
    assert!(
        err.starts_with("gateway.yaml:1:1: at `(top level)`: missing field `protos`"),
        "{err}"
    );
}

#[test]
fn unknown_plugin_is_an_unknown_variant() {
    let err = parse_err("protos: {sources: [p]}\nplugins:\n  - magic: {}\n");
    assert!(err.starts_with("gateway.yaml:3:5: at `plugins[0]"), "{err}");
    assert!(err.contains("magic") && err.contains("request_id"), "{err}");
}

#[test]
fn yaml_syntax_error_has_a_position_and_snippet() {
    let err = parse_err("protos: {sources: [p]\n");
    assert_eq!(
        err,
        "gateway.yaml:1:9: unclosed bracket '{'\n  |\n1 | protos: {sources: [p]\n  |         ^"
    );
}

#[test]
fn environment_variables_are_expanded_with_defaults_and_required_markers() {
    // SAFETY-free: the variable name is unique to this test.
    let text = "protos: {sources: [\"${SY_TEST_PROTO_DIR:-proto}\"]}\nupstreams:\n  u: {endpoints: [\"http://${SY_TEST_UNSET_HOST:-127.0.0.1}:1\"]}\n";
    let loaded = parse(Path::new("g.yaml"), text.to_owned()).unwrap();
    assert_eq!(loaded.config.protos.sources, vec!["proto".to_owned()]);
    assert_eq!(
        loaded.config.upstreams["u"].endpoints,
        vec!["http://127.0.0.1:1".to_owned()]
    );
    let err = parse_err(
        "protos: {sources: [p]}\nupstreams:\n  u: {endpoints: [\"${SY_TEST_NOT_SET:?set the users endpoint}\"]}\n",
    );
    assert!(
        err.starts_with(
            "gateway.yaml:3:19: missing property `SY_TEST_NOT_SET`: set the users endpoint"
        ),
        "{err}"
    );
}

#[test]
fn errors_found_after_parsing_are_located_by_key_path() {
    let loaded = parse(
        Path::new("g.yaml"),
        "protos: {sources: [p]}\nroutes:\n  - service: a.B\n    upstream: nowhere\n".to_owned(),
    )
    .unwrap();
    let err = loaded.source.error_at(
        &KeyPath::root().key("routes").index(0).key("upstream"),
        "unknown upstream `nowhere`",
    );
    assert_eq!((err.line, err.column), (4, 5));
    assert_eq!(err.key, "routes[0].upstream");
}

#[test]
fn the_committed_schema_matches_the_config_types() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas/gateway.schema.json"
    ))
    .expect("schemas/gateway.schema.json exists");
    assert!(
        committed == json_schema_text(),
        "schemas/gateway.schema.json is stale: run `cargo run -p switchyard -- schema --out schemas/gateway.schema.json`"
    );
}

#[test]
fn the_committed_configuration_reference_matches_the_config_types() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/configuration.md"
    ))
    .expect("docs/configuration.md exists");
    assert!(
        committed == super::reference::markdown(),
        "docs/configuration.md is stale: run `cargo run -p switchyard -- schema --reference --out docs/configuration.md`"
    );
}

#[test]
fn the_reference_names_every_top_level_key_and_a_nested_type() {
    let reference = super::reference::markdown();
    for key in [
        "listeners",
        "upstreams",
        "routes",
        "events",
        "reload",
        "access_log",
    ] {
        assert!(reference.contains(&format!("| `{key}` |")), "{key}");
    }
    assert!(reference.contains("## `Upstream`"));
    assert!(reference.contains("| `critical` | boolean | `false` |"));
}

#[test]
fn an_unknown_key_is_named_in_a_file_that_interpolates_variables() {
    let err = parse_err(
        "listeners: [{ address: \"${NO_SUCH_VAR_X:-127.0.0.1:8080}\" }]\nprotos: {sources: [p]}\nroutes:\n  - service: a.B\n    upstrem: users\n",
    );
    assert!(
        err.starts_with(
            "gateway.yaml:5:5: at `routes[0].upstrem`: unknown field `upstrem`, expected one of"
        ),
        "{err}"
    );
}
