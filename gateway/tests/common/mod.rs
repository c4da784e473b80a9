//! Black-box test harness: a real gateway started in-process from YAML, in
//! front of the real demo gRPC services on ephemeral ports, and a plain HTTP
//! client. Nothing inside the gateway is replaced.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use switchyard::app::{self, Running};
use switchyard::config;
use switchyard_demo::{DemoServer, Service};

pub mod browser;
pub mod nats;
pub mod pki;
pub mod scripted;
pub mod webhooks;

/// The repository root, for paths to `proto/` and `config/`.
pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A gateway and the demo services behind it.
pub struct TestGateway {
    pub running: Option<Running>,
    pub demo: DemoServer,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// One HTTP exchange's outcome.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The error a config (YAML text, named `test.yaml` at the repo root) is
/// refused with when it is compiled; panics if it compiles.
pub async fn config_error(yaml: &str) -> String {
    let loaded = match config::parse(&repo_root().join("test.yaml"), yaml.to_owned()) {
        Ok(loaded) => loaded,
        Err(e) => return e.to_string(),
    };
    match switchyard::runtime::Runtime::check(loaded).await {
        Ok(_) => panic!("the config compiled:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

/// For each `(fragment, key, says)`: the config `yaml(fragment)` is refused
/// at the key `{at}{key}` with an error that contains `says`.
#[allow(dead_code)] // not every test binary checks config errors
pub async fn assert_refused(yaml: impl Fn(&str) -> String, at: &str, cases: &[(&str, &str, &str)]) {
    for (fragment, key, says) in cases {
        let error = config_error(&yaml(fragment)).await;
        assert!(error.contains(&format!("{at}{key}")), "{fragment}: {error}");
        assert!(error.contains(says), "{fragment}: {error}");
    }
}

/// The Python of the test peers: `$SWITCHYARD_PYTHON`, else the repo's
/// `.venv` (both set up by `scripts/test.sh`), else `python3`.
pub fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("SWITCHYARD_PYTHON") {
        return python.into();
    }
    let venv = repo_root().join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    "python3".into()
}

/// This process's resident set, in KiB (from `/proc/self/status`).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// A new directory of its own under the system's temp dir, named
/// `switchyard-{name}-…` (unique per process and call).
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "switchyard-{name}-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// The demo services, each on an ephemeral port.
pub async fn spawn_demo() -> DemoServer {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    switchyard_demo::spawn(any, any, any)
        .await
        .expect("demo services start")
}

/// An "upstream" on an ephemeral port that accepts TCP connections and
/// never answers (nor closes them): calls to it end only at their deadline.
/// Plain std sockets on a thread of its own, so sync and async tests alike
/// can use it; it lives as long as the test process.
pub fn silent_upstream() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a silent upstream");
    let addr = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    addr
}

/// A config on ephemeral ports whose protos come from `protos` (the repo's
/// `proto/` when `None`), with one upstream `name` at `endpoints` (YAML list
/// items, e.g. `"http://127.0.0.1:1"`) plus `upstream_extra` keys, and one
/// route for `service` on it plus `route_extra` keys.
pub fn one_route_config(
    protos: Option<&str>,
    service: &str,
    endpoints: &str,
    upstream_extra: &str,
    route_extra: &str,
) -> String {
    let proto = protos.map_or_else(
        || repo_root().join("proto").display().to_string(),
        str::to_owned,
    );
    format!(
        r#"
listeners: [{{ address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
protos: {{ sources: ["{proto}"] }}
upstreams:
  up: {{ endpoints: [{endpoints}] {upstream_extra} }}
routes:
  - {{ service: {service}, upstream: up {route_extra} }}
"#
    )
}

/// The folder of the Node WebSocket clients (`gateway/tests/ws_clients`:
/// graphql-ws, ws), their node_modules installed by `scripts/test.sh`.
#[allow(dead_code)] // not every test binary runs a Node client
pub fn ws_clients_dir() -> PathBuf {
    let dir = std::env::var_os("SWITCHYARD_WS_CLIENTS_DIR").map_or_else(
        || repo_root().join("gateway/tests/ws_clients"),
        PathBuf::from,
    );
    assert!(
        dir.join("node_modules/ws/package.json").exists(),
        "the Node WebSocket clients are not installed: run scripts/test.sh, or (cd gateway/tests/ws_clients && npm ci)"
    );
    dir
}

/// Waits for a gateway stopping (`tokio::spawn(gw.stop())`) to be done:
/// its drain must end within 10 s.
#[allow(dead_code)] // not every test binary stops a gateway this way
pub async fn stopped(stopping: tokio::task::JoinHandle<()>) {
    tokio::time::timeout(std::time::Duration::from_secs(10), stopping)
        .await
        .expect("the gateway stops once its sockets are closed")
        .expect("stopping does not panic");
}

/// The demo routes with upstreams pointing at `demo`, plus `extra` YAML
/// appended at the top level (e.g. more routes or upstreams).
pub fn demo_config(demo: &DemoServer, route_extra: &str, top_extra: &str) -> String {
    format!(
        r#"
listeners: [{{ address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
protos: {{ sources: ["{proto}"] }}
upstreams:
  users: {{ endpoints: ["{users}"], timeout: 2s }}
  orders: {{ endpoints: ["{orders}"], timeout: 2s }}
  inventory: {{ endpoints: ["{inventory}"], timeout: 2s }}
routes:
  - {{ name: users, service: demo.users.v1.UserService, upstream: users {route_extra} }}
  - {{ name: orders, service: demo.orders.v1.OrderService, upstream: orders {route_extra} }}
  - {{ name: inventory, service: demo.inventory.v1.InventoryService, upstream: inventory {route_extra} }}
{top_extra}
"#,
        proto = repo_root().join("proto").display(),
        users = demo.url(Service::Users),
        orders = demo.url(Service::Orders),
        inventory = demo.url(Service::Inventory),
    )
}

// === impl TestGateway ===

impl TestGateway {
    /// The demo services on port 0 and a gateway with the demo routes.
    pub async fn demo() -> TestGateway {
        TestGateway::demo_with("", "").await
    }

    /// As [`TestGateway::demo`], with extra YAML per route (`, timeout: 1s`)
    /// and at the top level.
    pub async fn demo_with(route_extra: &str, top_extra: &str) -> TestGateway {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let demo = switchyard_demo::spawn(any, any, any)
            .await
            .expect("demo services start");
        let yaml = demo_config(&demo, route_extra, top_extra);
        TestGateway::start_yaml(demo, &yaml).await
    }

    /// A gateway from YAML text (relative paths resolve against the repo root).
    pub async fn start_yaml(demo: DemoServer, yaml: &str) -> TestGateway {
        let path = repo_root().join("test.yaml");
        let loaded =
            config::parse(&path, yaml.to_owned()).unwrap_or_else(|e| panic!("config: {e}"));
        let running = app::start(loaded)
            .await
            .unwrap_or_else(|e| panic!("start: {e}"));
        TestGateway::serving(demo, running)
    }

    /// A gateway from a config file, which its reloads read again.
    pub async fn start_file(
        demo: DemoServer,
        path: &std::path::Path,
        options: app::StartOptions,
    ) -> TestGateway {
        let loaded = config::load(path).unwrap_or_else(|e| panic!("config: {e}"));
        let running = app::start_with(loaded, options)
            .await
            .unwrap_or_else(|e| panic!("start: {e}"));
        TestGateway::serving(demo, running)
    }

    fn serving(demo: DemoServer, running: Running) -> TestGateway {
        let addr = running.listeners[0];
        let admin = running.admin.expect("admin enabled");
        TestGateway {
            running: Some(running),
            demo,
            addr,
            admin,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    pub async fn post_json(&self, path: &str, json: &str) -> Reply {
        self.send(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            Bytes::from(json.to_owned()),
        )
        .await
    }

    /// An h2c channel to the public listener, for gRPC clients.
    /// Calls the demo services have received in all (health checks not
    /// counted): what reached the upstreams.
    pub fn upstream_calls(&self) -> usize {
        Service::ALL.iter().map(|s| self.demo.calls(*s)).sum()
    }

    /// POST to `/graphql`, asking for `application/graphql-response+json`
    /// (so refusals are 400s, not 200s).
    pub async fn post_graphql(&self, body: &serde_json::Value) -> Reply {
        self.send(
            Method::POST,
            "/graphql",
            &[
                ("content-type", "application/json"),
                ("accept", "application/graphql-response+json"),
            ],
            Bytes::from(body.to_string()),
        )
        .await
    }

    pub async fn grpc_channel(&self) -> tonic::transport::Channel {
        tonic::transport::Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("the gateway accepts h2c")
    }

    /// Any request to the public listener.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Reply {
        self.send_to(self.addr, method, path, headers, body).await
    }

    /// The value of the first `/metrics` line that starts with
    /// `line_start` (a name and its labels, e.g.
    /// `switchyard_outbox_depth{sink="bus"}`).
    pub async fn metric(&self, line_start: &str) -> Option<f64> {
        let text = self.admin_get("/metrics").await.text();
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// Any request to the admin listener.
    pub async fn admin_get(&self, path: &str) -> Reply {
        self.send_to(self.admin, Method::GET, path, &[], Bytes::new())
            .await
    }

    /// Any request to the admin listener, with headers.
    pub async fn admin_send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send_to(self.admin, method, path, headers, Bytes::new())
            .await
    }

    async fn send_to(
        &self,
        addr: SocketAddr,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body)).expect("valid request");
        let res = self.client.request(req).await.expect("gateway answers");
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }
}

// === impl Reply ===

impl Reply {
    /// The `Cache-Status` header (the response cache's), or `(none)`.
    pub fn cache_status(&self) -> &str {
        self.headers
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the shared error shape and returns (code, message).
    pub fn error(&self) -> (i64, String) {
        let json = self.json();
        let code = json["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("no code in {json}"));
        let message = json["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message in {json}"))
            .to_owned();
        assert!(json["details"].is_array(), "details must be a list: {json}");
        (code, message)
    }
}
