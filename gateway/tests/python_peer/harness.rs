//! Harness: the Python peer, a gateway in front of it, an HTTP client.

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
use serde_json::Value;
use switchyard::app::{self, Running};
use switchyard::config;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// The upstream's `timeout`: the deadline the Python server must see.
pub(crate) const UPSTREAM_TIMEOUT_SECS: f64 = 5.0;

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
pub(crate) struct PythonPeer {
    pub(crate) child: Child,
    port: u16,
    pub(crate) stderr: Arc<Mutex<String>>,
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
pub(crate) struct PeerGateway {
    pub(crate) running: Option<Running>,
    pub(crate) addr: SocketAddr,
    pub(crate) client: Client<HttpConnector, Full<Bytes>>,
    pub(crate) peer: PythonPeer,
}

/// One HTTP exchange's outcome.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

impl PeerGateway {
    /// The peer route with default settings.
    pub(crate) async fn start() -> PeerGateway {
        PeerGateway::start_with("", &[]).await
    }

    /// `route_extra` is appended inside the route's flow mapping (`, headers: {…}`);
    /// `peer_args` go to server.py.
    pub(crate) async fn start_with(route_extra: &str, peer_args: &[&str]) -> PeerGateway {
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

    pub(crate) async fn send(
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

    pub(crate) async fn get_path(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], None).await
    }

    pub(crate) async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        let _ = self.peer.child.start_kill();
        let _ = self.peer.child.wait().await;
    }
}
