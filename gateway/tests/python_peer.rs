//! REST → gRPC against a gRPC implementation we did not write in Rust: a Python
//! `grpcio` server (`tests/peers/python/server.py`) serving `peer.v1.PeerService`
//! (`tests/protos/peer/v1/peer.proto`). Every method echoes its request, the
//! Python runtime's own proto3 JSON rendering of it (`seen`), and the request
//! metadata, so each case asserts exactly what the gateway sent upstream and
//! exactly what it renders back.
//!
//! Needs a Python with `grpcio`, `grpcio-tools` and `grpcio-status`
//! (`tests/peers/python/requirements.txt`): `$SWITCHYARD_PYTHON`, else `python3`.
//! `scripts/test.sh` creates the venv; by hand:
//!
//! ```text
//! python3 -m venv .venv
//! .venv/bin/pip install -r gateway/tests/peers/python/requirements.txt
//! SWITCHYARD_PYTHON=$PWD/.venv/bin/python cargo test -p switchyard --test python_peer
//! ```
//!
//! Numbers are compared by value (`1` equals `1.0`): proto3 JSON lets a
//! writer choose either spelling, and 64-bit integers are strings anyway.
//!
//! Every reply also carries a field peer.proto does not define (as from a
//! server with a newer schema), which the gateway must skip.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use switchyard::app::{self, Running};
use switchyard::config;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

// ============================================================================
// Harness: the Python peer, a gateway in front of it, an HTTP client.
// ============================================================================

/// The upstream's `timeout`: the deadline the Python server must see.
const UPSTREAM_TIMEOUT_SECS: f64 = 5.0;

fn gateway_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn repo_root() -> PathBuf {
    gateway_dir().join("..")
}

fn python() -> String {
    std::env::var("SWITCHYARD_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Fails (never skips) when the Python side is missing: a skipped peer test
/// would silently stop proving anything.
fn require_python_grpc(python: &str) {
    let help = format!(
        "the Python gRPC peer test needs grpcio, grpcio-tools and grpcio-status.\n\
         Run `scripts/test.sh` (it creates the venv and installs them), or by hand:\n  \
         python3 -m venv .venv && .venv/bin/pip install -r gateway/tests/peers/python/requirements.txt\n  \
         SWITCHYARD_PYTHON=$PWD/.venv/bin/python cargo test -p switchyard --test python_peer\n\
         (interpreter tried: {python:?}, from $SWITCHYARD_PYTHON or else python3)"
    );
    let out = std::process::Command::new(python)
        .args(["-c", "import grpc, grpc_tools, grpc_status"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python:?}: {e}\n{help}"));
    assert!(
        out.status.success(),
        "`import grpc, grpc_tools, grpc_status` failed:\n{}\n{help}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Python server. Killed when dropped; it also exits when its stdin
/// closes, so it does not outlive a test binary that is killed.
struct PythonPeer {
    child: Child,
    port: u16,
    stderr: Arc<Mutex<String>>,
}

impl PythonPeer {
    /// `args` go to server.py (e.g. `--compression gzip`).
    async fn start(args: &[&str]) -> PythonPeer {
        let python = python();
        require_python_grpc(&python);
        let script = gateway_dir().join("tests/peers/python/server.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .args(args)
            .env("GRPC_VERBOSITY", "ERROR")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {python} {}: {e}", script.display()));
        // Drained in the background so the child never blocks on a full pipe;
        // shown if start-up fails.
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr piped");
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdout = child.stdout.take().expect("stdout piped");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
        let port = match first {
            Ok(Ok(Some(ref line))) => line
                .strip_prefix("PORT ")
                .and_then(|p| p.trim().parse::<u16>().ok()),
            _ => None,
        };
        let Some(port) = port else {
            let _ = child.start_kill();
            tokio::time::sleep(Duration::from_millis(200)).await;
            panic!(
                "server.py did not print `PORT <n>` (got {first:?}); its stderr:\n{}",
                stderr.lock().unwrap()
            );
        };
        PythonPeer {
            child,
            port,
            stderr,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A gateway started in-process in front of one Python peer.
struct PeerGateway {
    running: Option<Running>,
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    peer: PythonPeer,
}

/// One HTTP exchange's outcome.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

impl PeerGateway {
    /// The peer route with default settings.
    async fn start() -> PeerGateway {
        PeerGateway::start_with("", &[]).await
    }

    /// `route_extra` is appended inside the route's flow mapping (`, headers: {…}`);
    /// `peer_args` go to server.py.
    async fn start_with(route_extra: &str, peer_args: &[&str]) -> PeerGateway {
        let peer = PythonPeer::start(peer_args).await;
        let yaml = format!(
            r#"
listeners: [{{ address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
protos:
  sources: ["{sources}"]
  includes: ["{includes}"]
upstreams:
  peer: {{ endpoints: ["{url}"], timeout: {UPSTREAM_TIMEOUT_SECS}s }}
routes:
  - {{ name: peer, service: peer.v1.PeerService, upstream: peer {route_extra} }}
"#,
            sources = gateway_dir().join("tests/protos/peer").display(),
            includes = repo_root().join("proto").display(),
            url = peer.url(),
        );
        let loaded = config::parse(&repo_root().join("python-peer-test.yaml"), yaml)
            .unwrap_or_else(|e| panic!("config: {e}"));
        let running = app::start(loaded)
            .await
            .unwrap_or_else(|e| panic!("start: {e}"));
        let addr = running.listeners[0];
        PeerGateway {
            running: Some(running),
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            peer,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        let typed = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        if body.is_some() && !typed {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = Bytes::from(body.unwrap_or("").to_owned());
        let req = req.body(Full::new(body)).expect("valid request");
        let res = tokio::time::timeout(Duration::from_secs(20), self.client.request(req))
            .await
            .unwrap_or_else(|_| panic!("no answer within 20s to {path}"))
            .unwrap_or_else(|e| panic!("gateway answers {path}: {e}"));
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    async fn get_path(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], None).await
    }

    async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        let _ = self.peer.child.start_kill();
        let _ = self.peer.child.wait().await;
    }
}

// ============================================================================
// Table-driven cases.
// ============================================================================

/// What a case expects back.
enum Want {
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

struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: Option<&'static str>,
    want: Want,
}

fn echo(rpc: &'static str, field: &'static str, request: Value) -> Want {
    Want::Echo {
        rpc,
        field,
        request,
        mask_paths: &[],
    }
}

fn echo_mask(
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

fn get(name: &'static str, path: &'static str, want: Want) -> Case {
    Case {
        name,
        method: Method::GET,
        path,
        headers: &[],
        body: None,
        want,
    }
}

fn with_body(
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
fn normalize(value: &Value) -> Value {
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
async fn run_cases(cases: &[Case]) {
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

// ============================================================================
// Path templates, bodies, verbs, bindings.
// ============================================================================

#[tokio::test]
async fn http_rule_mapping() {
    let cases = [
        get(
            "single path variable",
            "/v1/items/abc",
            echo("GetItem", "item", json!({"id": "abc"})),
        ),
        get(
            "single-segment variable is fully percent-decoded",
            "/v1/items/a%20b%2Fc%C3%A9",
            echo("GetItem", "item", json!({"id": "a b/cé"})),
        ),
        get(
            "additional binding (GET)",
            "/v1/legacy/items/x7?name=old",
            echo("GetItem", "item", json!({"id": "x7", "name": "old"})),
        ),
        with_body(
            "body \"*\"",
            Method::POST,
            "/v1/items",
            r#"{"id":"c1","name":"created","count":3}"#,
            echo(
                "CreateItem",
                "item",
                json!({"id": "c1", "name": "created", "count": 3}),
            ),
        ),
        Case {
            name: "body \"*\" with an empty body is the empty message",
            method: Method::POST,
            path: "/v1/items",
            headers: &[],
            body: None,
            want: echo("CreateItem", "item", json!({})),
        },
        Case {
            name: "body \"*\" and a query string: the query is ignored (all fields come from the body)",
            method: Method::POST,
            path: "/v1/items?name=from-query",
            headers: &[],
            body: Some(r#"{"id":"c2"}"#),
            want: echo("CreateItem", "item", json!({"id": "c2"})),
        },
        Case {
            name: "a body that is not JSON by content type is 415",
            method: Method::POST,
            path: "/v1/items",
            headers: &[("content-type", "text/plain")],
            body: Some(r#"{"id":"c3"}"#),
            want: Want::Rejected(415, 3, "content type"),
        },
        with_body(
            "additional binding with body \"*\": the path variable wins over the body",
            Method::PUT,
            "/v1/items/p1",
            r#"{"id":"from-body","name":"put"}"#,
            echo("CreateItem", "item", json!({"id": "p1", "name": "put"})),
        ),
        with_body(
            "body \"item\" with nested path variable {item.id}; query fills update_mask, \
             a query naming a field inside the body field is ignored",
            Method::PATCH,
            "/v1/items/u1?updateMask=name,filter.query&item.count=99",
            r#"{"id":"other","name":"renamed","filter":{"query":"q"}}"#,
            echo_mask(
                "UpdateItem",
                "update",
                json!({"item": {"id": "u1", "name": "renamed", "filter": {"query": "q"}}, "updateMask": "name,filter.query"}),
                &["name", "filter.query"],
            ),
        ),
        with_body(
            "body naming a repeated field takes a JSON list; query fills the rest",
            Method::PUT,
            "/v1/items/t1/tags?name=via-query&tags=ignored",
            r#"["red", "green"]"#,
            echo(
                "SetTags",
                "item",
                json!({"id": "t1", "name": "via-query", "tags": ["red", "green"]}),
            ),
        ),
        with_body(
            "custom verb :archive",
            Method::POST,
            "/v1/items/z9:archive",
            r#"{"name":"old"}"#,
            echo("ArchiveItem", "item", json!({"id": "z9", "name": "old"})),
        ),
        with_body(
            "custom verb on an id containing a colon (%3A is data, not a verb separator)",
            Method::POST,
            "/v1/items/ns%3Az9:archive",
            "{}",
            echo("ArchiveItem", "item", json!({"id": "ns:z9"})),
        ),
        get(
            "response_body gives the bare Item",
            "/v1/items/v1/view?name=viewed&big=5",
            Want::Exact(200, json!({"id": "v1", "name": "viewed", "big": "5"})),
        ),
        get(
            "multi-segment variable {name=shelves/*/books/*}",
            "/v1/shelves/s1/books/b2?view=FULL",
            echo(
                "GetBook",
                "book",
                json!({"name": "shelves/s1/books/b2", "view": "FULL"}),
            ),
        ),
        get(
            "multi-segment variable keeps %2F encoded, decodes the rest",
            "/v1/shelves/s%2F1/books/b%20two",
            echo(
                "GetBook",
                "book",
                json!({"name": "shelves/s%2F1/books/b two"}),
            ),
        ),
        get(
            "open-ended variable {name=**}: several segments, %2F kept",
            "/v1/archive/a/b%2Fc/d%20e",
            echo("GetBook", "book", json!({"name": "a/b%2Fc/d e"})),
        ),
        get(
            "open-ended variable {name=**} matches zero segments",
            "/v1/archive",
            echo("GetBook", "book", json!({})),
        ),
        with_body(
            "multi-segment variable then a custom verb, body \"*\" (the path wins)",
            Method::POST,
            "/v1/shelves/s1/books/b2:publish",
            r#"{"view":"v","name":"ignored"}"#,
            echo(
                "GetBook",
                "book",
                json!({"name": "shelves/s1/books/b2", "view": "v"}),
            ),
        ),
        get(
            "without a verb in the template, a colon is data",
            "/v1/shelves/s1/books/b2:publish",
            echo(
                "GetBook",
                "book",
                json!({"name": "shelves/s1/books/b2:publish"}),
            ),
        ),
        get(
            "path variables of int32, int64, enum, bool, nested int32 and double",
            "/v1/typed/-5/-9223372036854775808/COLOR_RED/true/7/1.5",
            echo(
                "GetItem",
                "item",
                json!({"count": -5, "big": "-9223372036854775808", "color": "COLOR_RED", "flag": true, "filter": {"min": 7}, "ratio": 1.5}),
            ),
        ),
        get(
            "typed path variables: enum by number, false, NaN; {filter.min}=0 still creates filter",
            "/v1/typed/0/18/3/false/0/NaN",
            echo(
                "GetItem",
                "item",
                json!({"big": "18", "color": "COLOR_BLUE", "ratio": "NaN", "filter": {}}),
            ),
        ),
        get(
            "a path variable that does not parse as its field's type is 400",
            "/v1/typed/x/1/2/0/-1/0",
            Want::Rejected(400, 3, "count"),
        ),
        Case {
            name: "a method the path does not allow is 405",
            method: Method::DELETE,
            path: "/v1/shelves/s1/books/b2",
            headers: &[],
            body: None,
            want: Want::Rejected(405, 12, "allowed: GET"),
        },
        get(
            "a path the template does not match is 404",
            "/v1/shelves/s1/books",
            Want::Rejected(404, 5, ""),
        ),
        with_body(
            "unknown body field is 400 by default",
            Method::POST,
            "/v1/items",
            r#"{"id":"c1","bogus":1}"#,
            Want::Rejected(400, 3, "bogus"),
        ),
    ];
    run_cases(&cases).await;
}

// ============================================================================
// Query parameters of every kind.
// ============================================================================

#[tokio::test]
async fn query_parameters() {
    let cases = [
        get(
            "scalars, enums, repeated and nested fields",
            "/v1/items/q1?count=-7&big=-9007199254740993&ubig=18446744073709551615&flag=true\
             &ratio=0.25&ratio32=1.5&color=COLOR_GREEN&tags=a&tags=b+c&ids=1&ids=-2\
             &colors=COLOR_RED&colors=3&filter.query=x%26y&filter.color=2&filter.min=5\
             &label=Disp&text=hello%20w%C3%B6rld",
            echo(
                "GetItem",
                "item",
                json!({
                    "id": "q1", "count": -7, "big": "-9007199254740993",
                    "ubig": "18446744073709551615", "flag": true, "ratio": 0.25,
                    "ratio32": 1.5, "color": "COLOR_GREEN", "tags": ["a", "b c"],
                    "ids": ["1", "-2"], "colors": ["COLOR_RED", "COLOR_BLUE"],
                    "filter": {"query": "x&y", "color": "COLOR_GREEN", "min": 5},
                    "label": "Disp", "text": "hello wörld"
                }),
            ),
        ),
        get(
            "proto (snake_case) names and json_name",
            "/v1/items/q2?display_name=snake&w_int64=3&create_time=2024-05-06T07:08:09Z&flag=0",
            echo(
                "GetItem",
                "item",
                json!({"id": "q2", "label": "snake", "wInt64": "3", "createTime": "2024-05-06T07:08:09Z"}),
            ),
        ),
        get(
            "well-known types from the query",
            "/v1/items/q3?createTime=2024-05-06T07:08:09.500Z&ttl=1.5s&mask=displayName,filter.query\
             &wInt64=-5&wString=&wBool=false&data=AAEC_w&number=42",
            echo_mask(
                "GetItem",
                "item",
                json!({
                    "id": "q3", "createTime": "2024-05-06T07:08:09.500Z", "ttl": "1.500s",
                    "mask": "displayName,filter.query", "wInt64": "-5", "wString": "",
                    "wBool": false, "data": "AAEC/w==", "number": "42"
                }),
                &["display_name", "filter.query"],
            ),
        ),
        get(
            "Timestamp with an offset is normalized to UTC",
            "/v1/items/q4?createTime=2024-05-06T09:08:09.123456789%2B02:00",
            echo(
                "GetItem",
                "item",
                json!({"id": "q4", "createTime": "2024-05-06T07:08:09.123456789Z"}),
            ),
        ),
        get(
            "double specials and uint64 max",
            "/v1/items/q5?ratio=-Infinity&ubig=18446744073709551615&ratio32=NaN",
            echo(
                "GetItem",
                "item",
                json!({"id": "q5", "ratio": "-Infinity", "ubig": "18446744073709551615", "ratio32": "NaN"}),
            ),
        ),
        get(
            "oneof member that is a message, set field by field",
            "/v1/items/q6?tag.key=k&tag.value=v",
            echo(
                "GetItem",
                "item",
                json!({"id": "q6", "tag": {"key": "k", "value": "v"}}),
            ),
        ),
        get(
            "a query parameter naming a path-bound field is ignored",
            "/v1/items/q7?id=other",
            echo("GetItem", "item", json!({"id": "q7"})),
        ),
        get(
            "unknown query parameter is 400",
            "/v1/items/q8?bogus=1",
            Want::Rejected(400, 3, "bogus"),
        ),
        get(
            "int32 out of range is 400",
            "/v1/items/q9?count=2147483648",
            Want::Rejected(400, 3, "count"),
        ),
        get(
            "undefined enum number is 400",
            "/v1/items/q10?color=7",
            Want::Rejected(400, 3, "color"),
        ),
        get(
            "two members of one oneof is 400",
            "/v1/items/q11?text=a&number=1",
            Want::Rejected(400, 3, "oneof"),
        ),
        get(
            "a non-repeated field set twice is 400",
            "/v1/items/q12?name=a&name=b",
            Want::Rejected(400, 3, "name"),
        ),
        get(
            "a Struct has no one-string form",
            "/v1/items/q13?attrs=x",
            Want::Rejected(400, 3, "attrs"),
        ),
    ];
    run_cases(&cases).await;
}

// ============================================================================
// Proto3 JSON of every kind, through a body, both directions.
// ============================================================================

const FULL_ITEM: &str = r#"{
  "id": "w1", "name": "full", "count": 3, "big": 123, "ubig": "18446744073709551615",
  "flag": true, "ratio": "Infinity", "ratio32": 0.5, "color": 2, "tags": ["x", "y"],
  "ids": [1, "-2", "9007199254740993"], "colors": ["COLOR_RED", 2],
  "filter": {"query": "q", "color": "COLOR_BLUE", "min": -1},
  "data": "AAEC/w==", "counters": {"a": 1, "b": "-2", "big": "9223372036854775807"},
  "tag": {"key": "k", "value": "v"}, "display_name": "D",
  "createTime": "2024-05-06T07:08:09.500Z", "ttl": "1.5s",
  "mask": "displayName,filter.query,createTime",
  "attrs": {"a": 1, "b": [true, null, "x"], "c": {"d": 1.5, "e": {}}},
  "value": {"k": [1, 2]}, "list": [1, "a", {"b": false}, null, []],
  "wInt64": "9007199254740993", "wString": "s", "wBool": false,
  "extra": {"@type": "type.googleapis.com/peer.v1.Tag", "key": "k2", "value": "v2"}
}"#;

#[tokio::test]
async fn proto3_json_and_well_known_types() {
    let cases = [
        with_body(
            "every field kind in one body",
            Method::POST,
            "/v1/items",
            FULL_ITEM,
            echo_mask(
                "CreateItem",
                "item",
                json!({
                    "id": "w1", "name": "full", "count": 3, "big": "123",
                    "ubig": "18446744073709551615", "flag": true, "ratio": "Infinity",
                    "ratio32": 0.5, "color": "COLOR_GREEN", "tags": ["x", "y"],
                    "ids": ["1", "-2", "9007199254740993"], "colors": ["COLOR_RED", "COLOR_GREEN"],
                    "filter": {"query": "q", "color": "COLOR_BLUE", "min": -1},
                    "data": "AAEC/w==", "counters": {"a": "1", "b": "-2", "big": "9223372036854775807"},
                    "tag": {"key": "k", "value": "v"}, "label": "D",
                    "createTime": "2024-05-06T07:08:09.500Z", "ttl": "1.500s",
                    "mask": "displayName,filter.query,createTime",
                    "attrs": {"a": 1, "b": [true, null, "x"], "c": {"d": 1.5, "e": {}}},
                    "value": {"k": [1, 2]}, "list": [1, "a", {"b": false}, null, []],
                    "wInt64": "9007199254740993", "wString": "s", "wBool": false,
                    "extra": {"@type": "type.googleapis.com/peer.v1.Tag", "key": "k2", "value": "v2"}
                }),
                &["display_name", "filter.query", "create_time"],
            ),
        ),
        with_body(
            "int64 extremes as JSON numbers (no float rounding) and strings",
            Method::POST,
            "/v1/items",
            r#"{"big":"-9223372036854775808","ubig":0,"number":9223372036854775807,"ids":["9223372036854775807",-1]}"#,
            echo(
                "CreateItem",
                "item",
                json!({"big": "-9223372036854775808", "number": "9223372036854775807", "ids": ["9223372036854775807", "-1"]}),
            ),
        ),
        with_body(
            "wrappers: null means unset, default values are kept",
            Method::POST,
            "/v1/items",
            r#"{"id":"w2","wInt64":null,"wString":"","wBool":false,"createTime":null,"attrs":null}"#,
            echo(
                "CreateItem",
                "item",
                json!({"id": "w2", "wString": "", "wBool": false}),
            ),
        ),
        with_body(
            "wrappers accept a number for Int64Value",
            Method::POST,
            "/v1/items",
            r#"{"wInt64":-42,"wBool":true}"#,
            echo(
                "CreateItem",
                "item",
                json!({"wInt64": "-42", "wBool": true}),
            ),
        ),
        with_body(
            "google.protobuf.Value: null is NULL_VALUE, scalars, lists",
            Method::POST,
            "/v1/items",
            r#"{"id":"v0","value":null}"#,
            echo("CreateItem", "item", json!({"id": "v0", "value": null})),
        ),
        with_body(
            "google.protobuf.Value holding a string",
            Method::POST,
            "/v1/items",
            r#"{"value":"text"}"#,
            echo("CreateItem", "item", json!({"value": "text"})),
        ),
        with_body(
            "google.protobuf.Value holding a number and ListValue empty",
            Method::POST,
            "/v1/items",
            r#"{"value":-2.5,"list":[]}"#,
            echo("CreateItem", "item", json!({"value": -2.5, "list": []})),
        ),
        with_body(
            "Timestamp and Duration forms",
            Method::POST,
            "/v1/items",
            r#"{"createTime":"2024-05-06T09:08:09.12+02:00","ttl":"-0.000001s"}"#,
            echo(
                "CreateItem",
                "item",
                json!({"createTime": "2024-05-06T07:08:09.120Z", "ttl": "-0.000001s"}),
            ),
        ),
        with_body(
            "Duration with whole seconds and nanos",
            Method::POST,
            "/v1/items",
            r#"{"ttl":"3600.000000001s"}"#,
            echo("CreateItem", "item", json!({"ttl": "3600.000000001s"})),
        ),
        with_body(
            "bytes: URL-safe unpadded base64 in, standard padded out",
            Method::POST,
            "/v1/items",
            r#"{"data":"-_8"}"#,
            echo("CreateItem", "item", json!({"data": "+/8="})),
        ),
        with_body(
            "enum: undefined number in a body is kept (proto3 enums are open)",
            Method::POST,
            "/v1/items",
            r#"{"color":7}"#,
            echo("CreateItem", "item", json!({"color": 7})),
        ),
        with_body(
            "enum: default value by name is omitted on output",
            Method::POST,
            "/v1/items",
            r#"{"id":"e0","color":"COLOR_UNSPECIFIED","count":0,"flag":false,"name":""}"#,
            echo("CreateItem", "item", json!({"id": "e0"})),
        ),
        with_body(
            "Any holding a well-known type uses \"value\"",
            Method::POST,
            "/v1/items",
            r#"{"extra":{"@type":"type.googleapis.com/google.protobuf.Duration","value":"2s"}}"#,
            echo(
                "CreateItem",
                "item",
                json!({"extra": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "2s"}}),
            ),
        ),
        with_body(
            "Any holding a Struct",
            Method::POST,
            "/v1/items",
            r#"{"extra":{"@type":"type.googleapis.com/google.protobuf.Struct","value":{"a":[1,"b"]}}}"#,
            echo(
                "CreateItem",
                "item",
                json!({"extra": {"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"a": [1, "b"]}}}),
            ),
        ),
        with_body(
            "Any holding a message with an Any inside",
            Method::POST,
            "/v1/items",
            r#"{"extra":{"@type":"type.googleapis.com/peer.v1.Item","id":"inner","extra":{"@type":"type.googleapis.com/peer.v1.Tag","key":"deep"}}}"#,
            echo(
                "CreateItem",
                "item",
                json!({"extra": {"@type": "type.googleapis.com/peer.v1.Item", "id": "inner", "extra": {"@type": "type.googleapis.com/peer.v1.Tag", "key": "deep"}}}),
            ),
        ),
        with_body(
            "oneof: two members in one body is 400",
            Method::POST,
            "/v1/items",
            r#"{"text":"a","number":1}"#,
            Want::Rejected(400, 3, ""),
        ),
        with_body(
            "int32 overflow in a body is 400",
            Method::POST,
            "/v1/items",
            r#"{"count":2147483648}"#,
            Want::Rejected(400, 3, ""),
        ),
        with_body(
            "unknown enum name in a body is 400",
            Method::POST,
            "/v1/items",
            r#"{"color":"COLOR_PURPLE"}"#,
            Want::Rejected(400, 3, ""),
        ),
        with_body(
            "Any with a type not in the descriptor pool is 400",
            Method::POST,
            "/v1/items",
            r#"{"extra":{"@type":"type.googleapis.com/nowhere.Missing","x":1}}"#,
            Want::Rejected(400, 3, ""),
        ),
    ];
    run_cases(&cases).await;
}

// ============================================================================
// Errors from the Python server.
// ============================================================================

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

// ============================================================================
// Header → metadata forwarding, and response metadata → headers.
// ============================================================================

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn default_header_forwarding() {
    let gw = PeerGateway::start().await;
    let reply = gw
        .send(
            Method::GET,
            "/v1/headers",
            &[
                ("authorization", "Bearer peer-token"),
                ("x-request-id", "rid-123"),
                ("traceparent", TRACEPARENT),
                ("x-secret-internal", "do-not-forward"),
                ("cookie", "session=1"),
                ("x-forwarded-for", "10.0.0.1"),
            ],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"authorization": "Bearer peer-token", "x-request-id": "rid-123", "traceparent": TRACEPARENT}),
        "exactly the default allow-list reaches the upstream"
    );
    assert_eq!(
        header(&reply, "grpc-metadata-x-peer-server"),
        Some("python-grpcio"),
        "initial response metadata comes back prefixed: {:?}",
        reply.headers
    );
    assert_eq!(
        header(&reply, "grpc-metadata-x-peer-trailer"),
        Some("done"),
        "trailing response metadata comes back prefixed: {:?}",
        reply.headers
    );
    assert!(
        reply.headers.get("x-peer-server").is_none(),
        "response metadata is not copied unprefixed"
    );
    // A header sent twice reaches the upstream with both values.
    let reply = gw
        .send(
            Method::GET,
            "/v1/headers",
            &[("x-request-id", "first"), ("x-request-id", "second")],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json(), json!({"x-request-id": "first,second"}));
    // Without any allowed header, the upstream sees no metadata at all.
    let reply = gw
        .send(
            Method::GET,
            "/v1/headers",
            &[("x-secret-internal", "do-not-forward")],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json(), json!({}));
    gw.stop().await;
}

#[tokio::test]
async fn configured_header_forwarding() {
    let gw = PeerGateway::start_with(
        r#", headers: { forward: ["authorization"], forward_prefixes: ["x-peer-"], response_prefix: "x-upstream-" }"#,
        &[],
    )
    .await;
    let reply = gw
        .send(
            Method::GET,
            "/v1/headers",
            &[
                ("authorization", "Basic YTpi"),
                ("x-request-id", "not-in-the-list-now"),
                ("x-peer-tenant", "acme"),
                ("x-peer-region", "eu"),
                ("x-secret-internal", "no"),
            ],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"authorization": "Basic YTpi", "x-peer-tenant": "acme", "x-peer-region": "eu"})
    );
    assert_eq!(
        header(&reply, "x-upstream-x-peer-server"),
        Some("python-grpcio"),
        "{:?}",
        reply.headers
    );
    assert!(reply.headers.get("grpc-metadata-x-peer-server").is_none());
    gw.stop().await;
}

// ============================================================================
// The route's JSON options.
// ============================================================================

#[tokio::test]
async fn route_json_options() {
    let gw = PeerGateway::start_with(
        ", json: { emit_defaults: true, use_proto_names: true, enums_as_ints: true, unknown_fields: ignore }",
        &[],
    )
    .await;
    // response_body, proto names, enum numbers, every default written (unset
    // message fields stay absent); unknown query parameters ignored.
    let reply = gw
        .get_path("/v1/items/o1/view?color=COLOR_BLUE&display_name=d&bogus=1&filter.bogus=2")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        normalize(&reply.json()),
        normalize(&json!({
            "id": "o1", "name": "", "count": 0, "big": "0", "ubig": "0", "flag": false,
            "ratio": 0, "ratio32": 0, "color": 3, "tags": [], "ids": [], "colors": [],
            "data": "", "counters": {}, "display_name": "d"
        }))
    );
    // Unknown body fields are ignored, at the top and nested.
    let reply = gw
        .send(
            Method::POST,
            "/v1/items/o2:archive",
            &[],
            Some(r#"{"bogus":{"x":1},"tag":{"key":"k","zzz":1},"createTime":"2024-01-02T03:04:05Z"}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["method"], "ArchiveItem");
    assert_eq!(
        normalize(&body["item"]),
        normalize(&json!({
            "id": "o2", "name": "", "count": 0, "big": "0", "ubig": "0", "flag": false,
            "ratio": 0, "ratio32": 0, "color": 0, "tags": [], "ids": [], "colors": [],
            "data": "", "counters": {}, "display_name": "", "tag": {"key": "k", "value": ""},
            "create_time": "2024-01-02T03:04:05Z"
        }))
    );
    assert_eq!(
        body["seen"]
            .as_str()
            .map(serde_json::from_str::<Value>)
            .and_then(Result::ok),
        Some(json!({"createTime": "2024-01-02T03:04:05Z", "id": "o2", "tag": {"key": "k"}})),
        "the upstream received only the known fields"
    );
    gw.stop().await;
}

// ============================================================================
// An upstream that compresses its responses.
// ============================================================================

/// A grpcio server created with `compression=grpc.Compression.Gzip`
/// compresses every response (gRPC core assumes a client that sends no
/// `grpc-accept-encoding` accepts gzip); the gateway must read it.
#[tokio::test]
async fn gzip_compressing_upstream_is_read() {
    let gw = PeerGateway::start_with("", &["--compression", "gzip"]).await;
    let reply = gw.get_path("/v1/items/gz1/view?name=zipped").await;
    let text = reply.text();
    let status = reply.status;
    gw.stop().await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, r#"{"id":"gz1","name":"zipped"}"#),
        "a gzip-compressing upstream (grpcio server compression) must be readable"
    );
}

// ============================================================================
// A slow upstream, and one that is gone.
// ============================================================================

#[tokio::test]
async fn slow_upstream_is_504_and_stopped_upstream_is_503() {
    let gw = PeerGateway::start_with(", timeout: 300ms", &[]).await;
    let started = std::time::Instant::now();
    let reply = gw
        .send(
            Method::POST,
            "/v1/items/slow:fail",
            &[],
            Some(r#"{"ttl":"3s","count":5}"#),
        )
        .await;
    let elapsed = started.elapsed();
    assert_eq!(
        reply.status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        reply.text()
    );
    assert_eq!(reply.json()["code"], 4, "{}", reply.text());
    assert!(
        elapsed < Duration::from_secs(2),
        "the route timeout (300ms) bounds the call, took {elapsed:?}"
    );
    // The deadline is shorter on this route: the server sees it.
    let reply = gw.get_path("/v1/items/d1").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let deadline = reply.json()["deadlineSeconds"].as_f64().unwrap_or(0.0);
    assert!(
        deadline > 0.0 && deadline <= 0.3,
        "grpc-timeout carries the route's 300ms, the server saw {deadline}s"
    );

    let PeerGateway {
        running,
        addr,
        client,
        mut peer,
    } = gw;
    peer.child.start_kill().expect("kill the peer");
    peer.child.wait().await.expect("peer exits");
    let gw = PeerGateway {
        running,
        addr,
        client,
        peer,
    };
    let reply = gw.get_path("/v1/items/gone").await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert_eq!(reply.json()["code"], 14, "{}", reply.text());
    gw.stop().await;
}
