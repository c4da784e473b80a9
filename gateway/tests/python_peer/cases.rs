//! Table-driven cases.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{PeerGateway, Reply, UPSTREAM_TIMEOUT_SECS};

/// What a case expects back.
pub(crate) enum Want {
    /// 200 with an `EchoReply`: `rpc` answered and received `request` as its
    /// `field` (`item`, `update` or `book`). The gateway's rendering must equal
    /// `request`, and so must the Python runtime's rendering of what arrived
    /// (`seen`). `mask_paths` are the FieldMask paths as they arrived on the wire. No metadata is expected,
    /// and the server must have seen the upstream timeout as the call's deadline.
    Echo {
        rpc: &'static str,
        field: &'static str,
        request: Value,
        mask_paths: &'static [&'static str],
    },
    /// This status and exactly this JSON body.
    Exact(u16, Value),
    /// A gateway-side rejection: this status and gRPC code; the message must
    /// contain `fragment`; no details.
    Rejected(u16, i64, &'static str),
}

pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    pub(crate) headers: &'static [(&'static str, &'static str)],
    pub(crate) body: Option<&'static str>,
    pub(crate) want: Want,
}

pub(crate) fn echo(rpc: &'static str, field: &'static str, request: Value) -> Want {
    Want::Echo {
        rpc,
        field,
        request,
        mask_paths: &[],
    }
}

pub(crate) fn echo_mask(
    rpc: &'static str,
    field: &'static str,
    request: Value,
    mask_paths: &'static [&'static str],
) -> Want {
    Want::Echo {
        rpc,
        field,
        request,
        mask_paths,
    }
}

pub(crate) fn get(name: &'static str, path: &'static str, want: Want) -> Case {
    Case {
        name,
        method: Method::GET,
        path,
        headers: &[],
        body: None,
        want,
    }
}

pub(crate) fn with_body(
    name: &'static str,
    method: Method,
    path: &'static str,
    body: &'static str,
    want: Want,
) -> Case {
    Case {
        name,
        method,
        path,
        headers: &[],
        body: Some(body),
        want,
    }
}

/// Numbers compared by value: `1` and `1.0` are the same JSON number.
pub(crate) fn normalize(value: &Value) -> Value {
    match value {
        Value::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| value.clone(), Value::Number),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), normalize(v))).collect())
        }
        other => other.clone(),
    }
}

/// Checks one case; `Err` describes every mismatch.
fn check(case: &Case, reply: &Reply) -> Result<(), String> {
    let text = reply.text();
    let fail = |what: String| {
        Err(format!(
            "[{}] {} {}: {what}\n    status: {}\n    body:   {text}",
            case.name, case.method, case.path, reply.status
        ))
    };
    match &case.want {
        Want::Echo {
            rpc,
            field,
            request,
            mask_paths,
        } => {
            if reply.status != StatusCode::OK {
                return fail("expected 200".into());
            }
            let Ok(mut body) = serde_json::from_slice::<Value>(&reply.body) else {
                return fail("not JSON".into());
            };
            let python_view = body
                .as_object_mut()
                .and_then(|o| o.remove("seen"))
                .and_then(|s| {
                    s.as_str()
                        .and_then(|s| serde_json::from_str::<Value>(s).ok())
                });
            let deadline = body
                .as_object_mut()
                .and_then(|o| o.remove("deadlineSeconds"))
                .and_then(|d| d.as_f64());
            let mut expected = json!({ "method": rpc, *field: request });
            if !mask_paths.is_empty() {
                expected["maskPaths"] = json!(mask_paths);
            }
            let mut problems = Vec::new();
            if !deadline.is_some_and(|d| d > 0.0 && d <= UPSTREAM_TIMEOUT_SECS) {
                problems.push(format!(
                    "the server saw deadline {deadline:?}, want (0, {UPSTREAM_TIMEOUT_SECS}] seconds"
                ));
            }
            if normalize(&body) != normalize(&expected) {
                problems.push(format!(
                    "gateway rendering differs\n    want:   {expected}\n    got:    {body}"
                ));
            }
            match python_view {
                Some(view) if normalize(&view) == normalize(request) => {}
                view => problems.push(format!(
                    "the Python server saw something else\n    want:   {request}\n    seen:   {}",
                    view.map_or_else(|| "<missing>".into(), |v| v.to_string())
                )),
            }
            if problems.is_empty() {
                Ok(())
            } else {
                fail(problems.join("\n    "))
            }
        }
        Want::Exact(status, want) => {
            if reply.status.as_u16() != *status {
                return fail(format!("expected status {status}, want body {want}"));
            }
            match serde_json::from_slice::<Value>(&reply.body) {
                Ok(body) if normalize(&body) == normalize(want) => Ok(()),
                _ => fail(format!("body differs\n    want:   {want}")),
            }
        }
        Want::Rejected(status, code, fragment) => {
            let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            let ok = reply.status.as_u16() == *status
                && body["code"] == json!(code)
                && body["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(fragment))
                && body["details"] == json!([]);
            if ok {
                Ok(())
            } else {
                fail(format!(
                    "expected {status} with code {code}, a message containing {fragment:?} and no details"
                ))
            }
        }
    }
}

/// Runs every case (one gateway, one peer) and fails once, listing every
/// failing case, so one bug does not hide the others.
pub(crate) async fn run_cases(cases: &[Case]) {
    let gw = PeerGateway::start().await;
    let mut failures = Vec::new();
    for case in cases {
        let reply = gw
            .send(case.method.clone(), case.path, case.headers, case.body)
            .await;
        if let Err(e) = check(case, &reply) {
            failures.push(e);
        }
    }
    let stderr = gw.peer.stderr.lock().unwrap().clone();
    gw.stop().await;
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}\n\n(Python server stderr:\n{stderr})",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
