//! The OpenAPI 3.1 document generated from the protos: validated by a real
//! validator (PyPI's openapi-spec-validator, in the test venv), its
//! operations, parameters and schemas checked against the demo's
//! annotations, and served by the gateway when `openapi:` is configured.

mod common;

use common::TestGateway;
use serde_json::Value;
use switchyard::config;
use switchyard::runtime::Runtime;

fn python() -> String {
    std::env::var("SWITCHYARD_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The document of `config/gateway.yaml` (the demo).
async fn demo_document() -> Value {
    let loaded =
        config::load(&common::repo_root().join("config/gateway.yaml")).expect("demo config");
    let runtime = Runtime::check(loaded)
        .await
        .expect("the demo config compiles");
    switchyard::openapi::document(&runtime, "Switchyard demo")
}

#[tokio::test]
async fn the_demo_document_is_valid_openapi_3_1() {
    let document = demo_document().await;
    assert_eq!(document["openapi"], "3.1.0");
    let file = std::env::temp_dir().join(format!("switchyard-openapi-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_vec(&document).unwrap()).unwrap();
    let out = std::process::Command::new(python())
        .args([
            "-c",
            "import json, sys\n\
             from openapi_spec_validator import validate\n\
             validate(json.load(open(sys.argv[1])))\n\
             print('valid')",
        ])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python (set SWITCHYARD_PYTHON, or run scripts/test.sh): {e}")
        });
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document (scripts/test.sh installs it):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn operations_follow_the_http_annotations_and_schemas_the_json_mapping() {
    let doc = demo_document().await;
    let paths = &doc["paths"];
    // GET /v1/users/{id}: a path parameter, the rest of GetUserRequest in the query.
    let get_user = &paths["/v1/users/{id}"]["get"];
    assert_eq!(get_user["operationId"], "UserService_GetUser");
    assert_eq!(get_user["summary"], "Returns one user by id.");
    let params = get_user["parameters"].as_array().unwrap();
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "id" && p["in"] == "path")
    );
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "readMask" && p["in"] == "query")
    );
    assert_eq!(
        get_user["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/demo.users.v1.User"
    );
    assert_eq!(
        get_user["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/google.rpc.Status"
    );
    // PATCH /v1/users/{user.id} shares the path; its parameter keeps the path's name.
    assert!(paths["/v1/users/{id}"]["patch"].is_object());
    // POST /v1/orders: the whole request message is the body.
    assert_eq!(
        paths["/v1/orders"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/demo.orders.v1.CreateOrderRequest"
    );
    // A custom verb stays in the path.
    assert!(paths["/v1/orders/{id}:cancel"]["post"].is_object());
    // A server-streaming method documents its stream formats.
    let watch = &paths["/v1/users/{user_id}/orders:watch"]["get"]["responses"]["200"]["content"];
    assert!(watch["application/x-ndjson"].is_object() && watch["text/event-stream"].is_object());

    let schemas = &doc["components"]["schemas"];
    let user = &schemas["demo.users.v1.User"]["properties"];
    assert_eq!(user["createTime"]["format"], "date-time");
    assert_eq!(user["role"]["type"], "string");
    assert!(
        user["role"]["enum"]
            .as_array()
            .unwrap()
            .contains(&"ROLE_ADMIN".into())
    );
    let line_item = &schemas["demo.orders.v1.LineItem"]["properties"];
    assert_eq!(
        line_item["unitPriceCents"]["type"], "string",
        "int64 as a string"
    );
    assert_eq!(line_item["unitPriceCents"]["format"], "int64");
}

#[tokio::test]
async fn auth_plugins_become_security_schemes() {
    let gw = TestGateway::demo_with(
        ", plugins: [{ auth: { methods: [{ api_key: { header: x-api-key, keys: [{ consumer: a, sha256: a52782e3a2d4dd2f95f640b9abfb3b2a6b8e722c65f55be830f6e5f619f7f873 }] } }, { mtls: {} }] } }]",
        "openapi: { title: Demo }",
    )
    .await;
    let reply = gw.get("/openapi.json").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/json");
    let doc = reply.json();
    assert_eq!(doc["info"]["title"], "Demo");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["users.api_key"]["type"], "apiKey");
    assert_eq!(schemes["users.api_key"]["in"], "header");
    assert_eq!(schemes["users.api_key"]["name"], "x-api-key");
    assert_eq!(schemes["users.mtls.1"]["type"], "mutualTLS");
    // Either method admits a request: two alternative requirements.
    let security = &doc["paths"]["/v1/users/{id}"]["get"]["security"];
    assert_eq!(security.as_array().map(Vec::len), Some(2), "{security}");
    gw.stop().await;
}

#[tokio::test]
async fn the_document_is_not_served_unless_configured() {
    let gw = TestGateway::demo().await;
    assert_eq!(gw.get("/openapi.json").await.status, 404);
    gw.stop().await;
}
