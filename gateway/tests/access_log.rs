//! The access log and the trace context: one JSON line per request with
//! the route's template, status, upstream, bytes, consumer and trace id;
//! the `traceparent` a client sends (or the one the gateway starts)
//! reaches the upstream's metadata and the log line; sampling keeps every
//! failure.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::TestGateway;
use common::scripted::{self, Fallible, Scripted};
use http::{Method, StatusCode};
use prost_reflect::{DynamicMessage, Value as PValue};
use serde_json::Value;

/// `printf %s 'trace-test-key' | sha256sum`
fn key_digest() -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(b"trace-test-key"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A scripted UserService: `GetUser` answers a user, `ListUsers` fails
/// with UNAVAILABLE.
async fn upstream() -> Scripted {
    let pool = scripted::pool(common::repo_root().join("proto"));
    let user = pool.get_message_by_name("demo.users.v1.User").unwrap();
    let get: Fallible = Arc::new(move |req: &DynamicMessage| {
        let mut reply = DynamicMessage::new(user.clone());
        let id = req.get_field_by_name("id").unwrap().into_owned();
        reply.set_field_by_name("id", id);
        reply.set_field_by_name("name", PValue::String("Ada".into()));
        Ok(reply)
    });
    let list: Fallible = Arc::new(|_: &DynamicMessage| Err((14, "users is restarting".into())));
    scripted::start_fallible(pool, HashMap::from([("GetUser", get), ("ListUsers", list)])).await
}

fn scratch() -> PathBuf {
    common::scratch_dir("access")
}

async fn gateway(upstream: &Scripted, log: &Path, access: &str, plugins: &str) -> TestGateway {
    let yaml = format!(
        r#"
listeners: [{{ address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
protos: {{ sources: ["{proto}"] }}
reload: {{ watch_interval: 0s }}
upstreams: {{ users: {{ endpoints: ["http://{addr}"], timeout: 2s }} }}
routes:
  - name: users
    service: demo.users.v1.UserService
    upstream: users
    plugins: [{plugins}]
access_log: {{ output: "{log}" {access} }}
"#,
        proto = common::repo_root().join("proto").display(),
        addr = upstream.addr,
        log = log.display(),
    );
    TestGateway::start_yaml(common::spawn_demo().await, &yaml).await
}

/// The log's lines once there are `n` (the writer thread writes them a
/// moment after the response).
async fn lines(log: &Path, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        if lines.len() >= n {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} lines in {}", log.display());
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn each_request_is_one_line_and_the_trace_reaches_the_upstream() {
    let upstream = upstream().await;
    let dir = scratch();
    let log = dir.join("logs/access.jsonl");
    let auth = format!(
        "{{ auth: {{ methods: [{{ api_key: {{ keys: [{{ consumer: tracer, sha256: {} }}] }} }}] }} }}",
        key_digest()
    );
    let gw = gateway(&upstream, &log, "", &auth).await;
    let key = ("x-api-key", "trace-test-key");

    // A client's trace context is kept and forwarded.
    let traced = gw
        .send(
            Method::GET,
            "/v1/users/7",
            &[
                key,
                ("traceparent", TRACEPARENT),
                ("tracestate", "vendor=abc"),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(traced.status, StatusCode::OK, "{}", traced.text());
    // None sent: the gateway starts one.
    let fresh = gw
        .send(Method::GET, "/v1/users/8", &[key], Bytes::new())
        .await;
    assert_eq!(fresh.status, StatusCode::OK);
    // Refused by auth, and one no route serves.
    assert_eq!(gw.get("/v1/users/9").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        gw.get("/nowhere/at/all").await.status,
        StatusCode::NOT_FOUND
    );

    let calls = upstream.recorded("GetUser");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].metadata["traceparent"], TRACEPARENT);
    assert_eq!(calls[0].metadata["tracestate"], "vendor=abc");
    let started = calls[1].metadata["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(started.len(), 55, "{started}");
    assert!(
        started.starts_with("00-") && started.ends_with("-01"),
        "{started}"
    );
    assert!(calls[1].metadata.get("tracestate").is_none());

    let lines = lines(&log, 4).await;
    let first = &lines[0];
    assert_eq!(
        first["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
        "{first}"
    );
    assert_eq!(first["route"], "users");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/v1/users/{id}");
    assert_eq!(first["protocol"], "rest");
    assert_eq!(first["status"], 200);
    assert_eq!(first["upstream"], "users");
    assert_eq!(first["consumer"], "tracer");
    assert_eq!(first["client"], "127.0.0.1");
    assert_eq!(first["bytes"], traced.body.len() as u64);
    assert!(first["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(lines[1]["trace_id"], started[3..35], "{}", lines[1]);
    assert_eq!(lines[2]["status"], 401);
    assert_eq!(lines[2]["consumer"], Value::Null);
    assert_eq!(lines[3]["route"], "-");
    assert_eq!(lines[3]["path"], "-", "no raw path: {}", lines[3]);
    assert_eq!(lines[3]["status"], 404);
    // Credentials and raw paths stay out.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("trace-test-key") && !text.contains("/v1/users/7"),
        "{text}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_sampled_out_success_is_not_logged_but_a_failure_always_is() {
    let upstream = upstream().await;
    let dir = scratch();
    let log = dir.join("access.jsonl");
    let gw = gateway(&upstream, &log, ", sample: 0", "").await;
    for id in 0..5 {
        assert_eq!(
            gw.get(&format!("/v1/users/{id}")).await.status,
            StatusCode::OK
        );
    }
    let failed = gw.get("/v1/users").await;
    assert_eq!(
        failed.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        failed.text()
    );
    let lines = lines(&log, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines_now = std::fs::read_to_string(&log).unwrap().lines().count();
    assert_eq!(lines_now, 1, "only the failure: {lines:?}");
    assert_eq!(lines[0]["status"], 503);
    assert_eq!(lines[0]["path"], "/v1/users");
    gw.stop().await;
}

#[tokio::test]
async fn a_sample_outside_zero_to_one_is_refused() {
    let yaml = format!(
        "protos: {{ sources: [\"{}\"] }}\nupstreams: {{ users: {{ endpoints: [\"http://127.0.0.1:1\"] }} }}\nroutes: [{{ service: demo.users.v1.UserService, upstream: users }}]\naccess_log: {{ sample: 1.5 }}\n",
        common::repo_root().join("proto").display()
    );
    let error = common::config_error(&yaml).await;
    assert!(
        error.contains("at `access_log.sample`: sample is 1.5; use a share from 0 to 1"),
        "{error}"
    );
}
