//! Errors from the Python server.

use http::Method;
use serde_json::{Value, json};

use crate::cases::{Case, Want, run_cases};

fn fail_case(name: &'static str, body: &'static str, status: u16, want: Value) -> Case {
    Case {
        name,
        method: Method::POST,
        path: "/v1/items/e1:fail",
        headers: &[],
        body: Some(body),
        want: Want::Exact(status, want),
    }
}

#[tokio::test]
async fn upstream_errors_map_to_http_statuses_with_details() {
    let mut cases = Vec::new();
    for (code, status) in [
        (1, 499),
        (3, 400),
        (4, 504),
        (5, 404),
        (6, 409),
        (7, 403),
        (8, 429),
        (9, 400),
        (10, 409),
        (11, 400),
        (12, 501),
        (13, 500),
        (14, 503),
        (15, 500),
        (16, 401),
    ] {
        let body: &'static str =
            format!(r#"{{"count":{code},"name":"failed with {code}"}}"#).leak();
        cases.push(fail_case(
            "gRPC code → HTTP status",
            body,
            status,
            json!({"code": code, "message": format!("failed with {code}"), "details": []}),
        ));
    }
    cases.push(fail_case(
        "non-ASCII message survives grpc-message percent-encoding",
        r#"{"count":5,"name":"naïve ✓ 100% done\nnext line"}"#,
        404,
        json!({"code": 5, "message": "naïve ✓ 100% done\nnext line", "details": []}),
    ));
    cases.push(fail_case(
        "rich details from grpc-status-details-bin rendered with @type",
        r#"{"count":3,"name":"item is invalid","flag":true}"#,
        400,
        json!({"code": 3, "message": "item is invalid", "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "PEER_FAILED",
             "domain": "peer.test", "metadata": {"id": "e1"}},
            {"@type": "type.googleapis.com/google.rpc.BadRequest",
             "fieldViolations": [{"field": "item.name", "description": "must not be empty"}]},
            {"@type": "type.googleapis.com/peer.v1.Tag", "key": "detail", "value": "e1"},
            {"@type": "type.googleapis.com/peer.v1.NotInAnyProto", "value": "CAE="}
        ]}),
    ));
    cases.push(fail_case(
        "an uncaught Python exception is UNKNOWN → 500",
        r#"{"count":-1}"#,
        500,
        json!({"code": 2, "message": "Exception calling application: boom e1", "details": []}),
    ));
    run_cases(&cases).await;
}
