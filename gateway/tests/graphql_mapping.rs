//! The mapping rules of docs/graphql.md on
//! gateway/tests/protos/graphql/graphql_mapping.proto,
//! asserted on the generated SDL (no upstream is called).

mod common;

use switchyard::config;
use switchyard::runtime::Runtime;

/// The SDL for the mapping service with `graphql` as the section's YAML.
async fn sdl(graphql: &str) -> Result<String, String> {
    let yaml = format!(
        r#"
protos: {{ sources: ["{proto}"] }}
upstreams: {{ up: {{ endpoints: ["http://127.0.0.1:1"] }} }}
routes: [{{ service: switchyard.test.graphql.MappingService, upstream: up }}]
graphql: {graphql}
"#,
        proto = common::repo_root()
            .join("gateway/tests/protos/graphql/graphql_mapping.proto")
            .display()
    );
    let loaded =
        config::parse(&common::repo_root().join("test.yaml"), yaml).map_err(|e| e.to_string())?;
    let runtime = Runtime::check(loaded).await.map_err(|e| e.to_string())?;
    Ok(runtime.graphql.expect("graphql endpoint").schema.sdl())
}

/// The block of `type`/`input`/`enum`/`union` `name` in `sdl`.
fn block<'a>(sdl: &'a str, header: &str) -> &'a str {
    let start = sdl
        .find(&format!("{header} "))
        .unwrap_or_else(|| panic!("no {header:?} in\n{sdl}"));
    let rest = &sdl[start..];
    let end = rest.find("\n}\n").map_or(rest.len(), |e| e + 2);
    &rest[..end]
}

fn assert_lines(block: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            block.lines().any(|l| l.trim() == *line),
            "missing {line:?} in\n{block}"
        );
    }
}

#[tokio::test]
async fn scalars_nullability_and_well_known_types() {
    let sdl = sdl("{}").await.unwrap();
    let thing = block(&sdl, "type Thing");
    assert_lines(
        thing,
        &[
            "id: String!",
            "i32: Int!",
            "u32: UInt32!",
            "i64: Int64!",
            "u64: UInt64!",
            "s64: Int64!",
            "f64: UInt64!",
            "ratio: Float!",
            "active: Boolean!",
            "blob: Base64!",
            "color: Color!",
            // proto3 optional and message fields: nullable
            "nickname: String",
            "counter: Int64",
            "mainPart: Part",
            // repeated
            "tags: [String!]!",
            "palette: [Color!]!",
            "parts: [Part!]!",
            // well-known types
            "createTime: DateTime",
            "ttl: Duration",
            "attributes: JSON",
            "extra: JSON",
            "history: JSON",
            "any: JSON",
            "big: Int64",
            "note: String",
            "flag: Boolean",
            "mask: [String!]",
            "nothing: Boolean",
            // nested message
            "inner: ThingNestedInner",
        ],
    );
    for scalar in [
        "Int64", "UInt64", "UInt32", "Base64", "DateTime", "Duration", "JSON",
    ] {
        assert!(sdl.contains(&format!("scalar {scalar}")), "{scalar}");
    }
    assert!(sdl.contains("A colour."), "enum comment as description");
    assert!(
        sdl.contains("The thing's id."),
        "field comment as description"
    );
    assert!(
        sdl.contains("Reads one thing."),
        "method comment as description"
    );
}

#[tokio::test]
async fn maps_oneofs_enums_and_empty_messages() {
    let sdl = sdl("{}").await.unwrap();
    assert_lines(
        block(&sdl, "type Thing"),
        &[
            "counts: [ThingCountsEntry!]!",
            "partsBySlot: [ThingPartsBySlotEntry!]!",
            "circle: Circle",
            "label: String",
            "shape: ThingShape",
        ],
    );
    assert_lines(
        block(&sdl, "type ThingCountsEntry"),
        &["key: String!", "value: Int64!"],
    );
    assert_lines(
        block(&sdl, "type ThingPartsBySlotEntry"),
        &["key: Int!", "value: Part"],
    );
    assert!(
        sdl.contains("union ThingShape = ThingShapeCircle | ThingShapeSquare | ThingShapeLabel"),
        "{sdl}"
    );
    assert_lines(block(&sdl, "type ThingShapeCircle"), &["circle: Circle!"]);
    assert_lines(
        block(&sdl, "input ThingShapeInput @oneOf"),
        &[
            "circle: CircleInput",
            "square: SquareInput",
            "label: String",
        ],
    );
    assert_lines(
        block(&sdl, "input SearchRequestFilterInput @oneOf"),
        &["tag: String", "color: Color"],
    );
    assert_lines(
        block(&sdl, "enum Color"),
        &["COLOR_UNSPECIFIED", "COLOR_RED", "COLOR_GREEN"],
    );
    assert_lines(block(&sdl, "type Marker"), &["_empty: Boolean"]);
}

#[tokio::test]
async fn root_fields_arguments_and_streaming() {
    let sdl = sdl("{}").await.unwrap();
    assert_lines(
        block(&sdl, "type Query"),
        &[
            "thing(id: String): Thing",
            "things(pageSize: Int, color: Color, ids: [Int64!]): ListThingsResponse",
            "computeThing(id: String): Thing",
            "filter: SearchRequestFilterInput",
        ],
    );
    assert_lines(
        block(&sdl, "type Mutation"),
        &[
            "updateThing(input: ThingInput): Thing",
            "deleteThing(id: String): Boolean",
            "ping: DateTime",
        ],
    );
    assert_lines(
        block(&sdl, "type Subscription"),
        &["watchThings(id: String): Thing"],
    );
    assert!(!sdl.contains("upload"), "client streaming is not exposed");
    assert!(!sdl.contains("chat"), "bidi streaming is not exposed");
    assert_lines(
        block(&sdl, "input ThingInput"),
        &[
            "counts: [ThingCountsEntryInput!]",
            "mask: [String!]",
            "shape: ThingShapeInput",
        ],
    );
}

#[tokio::test]
async fn overrides_threshold_and_mesh_naming() {
    let sdl = sdl(r#"{ naming: mesh, input_threshold: 0, operations: {
            "switchyard.test.graphql.MappingService.DeleteThing": query,
            "switchyard.test.graphql.MappingService.UpdateThing": skip } }"#)
    .await
    .unwrap();
    let query = block(&sdl, "type Query");
    assert_lines(
        query,
        &[
            "switchyard_test_graphql_MappingService_GetThing(input: switchyard_test_graphql__GetThingRequest_Input): switchyard_test_graphql__Thing",
            "switchyard_test_graphql_MappingService_DeleteThing(input: switchyard_test_graphql__GetThingRequest_Input): Boolean",
        ],
    );
    assert!(!sdl.contains("UpdateThing"), "{sdl}");
    assert!(sdl.contains("type switchyard_test_graphql__Thing_Nested_Inner {"));
    assert!(sdl.contains("enum switchyard_test_graphql__Color {"));
}

#[tokio::test]
async fn bad_overrides_are_config_errors() {
    let err =
        sdl(r#"{ operations: { "switchyard.test.graphql.MappingService.WatchThings": query } }"#)
            .await
            .unwrap_err();
    assert!(err.contains("server-streaming"), "{err}");
    let err = sdl(r#"{ operations: { "switchyard.test.graphql.MappingService.Nope": query } }"#)
        .await
        .unwrap_err();
    assert!(err.contains("is not a method of a routed service"), "{err}");
    let err = sdl("{ path: graphql }").await.unwrap_err();
    assert!(err.contains("at `graphql.path`"), "{err}");
}
