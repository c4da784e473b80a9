//! Config reload without a restart: under load no request fails; a bad
//! file (YAML, types, upstreams, protos, restart-only settings, strict
//! mode) changes nothing and says where it is wrong; the file watch and
//! SIGHUP reload; `/admin/config` shows the version, the history and the
//! config with its secrets redacted; `admin.token` guards the admin API.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{TestGateway, repo_root};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use switchyard::app::StartOptions;
use switchyard_demo::{DemoServer, Service};

/// A directory of its own for one test's files.
fn scratch(name: &str) -> PathBuf {
    common::scratch_dir(&format!("reload-{name}"))
}

async fn demo() -> DemoServer {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    switchyard_demo::spawn(any, any, any)
        .await
        .expect("demo services start")
}

/// A config with the demo upstreams of `demo`, the protos under `protos`,
/// the given routes (YAML list items) and top-level `extra`; the watch is
/// off unless `extra` sets `reload:`.
fn yaml(demo: &DemoServer, protos: &Path, routes: &str, extra: &str) -> String {
    let reload = if extra.contains("reload:") {
        ""
    } else {
        "reload: { watch_interval: 0s }"
    };
    format!(
        r#"
listeners: [{{ address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
protos: {{ sources: ["{protos}"] }}
upstreams:
  users: {{ endpoints: ["{users}"], timeout: 2s }}
  orders: {{ endpoints: ["{orders}"], timeout: 2s }}
routes:
{routes}
{reload}
{extra}
"#,
        protos = protos.display(),
        users = demo.url(Service::Users),
        orders = demo.url(Service::Orders),
    )
}

const USERS: &str = "  - { name: users, service: demo.users.v1.UserService, upstream: users }";
const ORDERS: &str = "  - { name: orders, service: demo.orders.v1.OrderService, upstream: orders }";

fn protos() -> PathBuf {
    repo_root().join("proto")
}

/// The demo services and a gateway started from `dir/gateway.yaml`,
/// written first with `text` of them.
async fn start(
    dir: &Path,
    text: impl FnOnce(&DemoServer) -> String,
    options: StartOptions,
) -> TestGateway {
    let demo = demo().await;
    let path = dir.join("gateway.yaml");
    std::fs::write(&path, text(&demo)).expect("write config");
    TestGateway::start_file(demo, &path, options).await
}

async fn reload(gw: &TestGateway) -> common::Reply {
    gw.admin_send(Method::POST, "/admin/reload", &[]).await
}

/// Writes `text`, reloads, and returns the 422 reply's body.
async fn refused(gw: &TestGateway, dir: &Path, text: &str) -> serde_json::Value {
    write(dir, text);
    let res = reload(gw).await;
    assert_eq!(
        res.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        res.text()
    );
    res.json()
}

fn write(dir: &Path, text: &str) {
    // Written beside and renamed over, as editors and ConfigMaps do: a
    // reader never sees half a file.
    let tmp = dir.join(".gateway.yaml.tmp");
    std::fs::write(&tmp, text).expect("write config");
    std::fs::rename(&tmp, dir.join("gateway.yaml")).expect("rename config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_requests_across_repeated_reloads_all_succeed() {
    let dir = scratch("load");
    let gw = start(&dir, |d| yaml(d, &protos(), USERS, ""), Default::default()).await;
    // Two versions: with and without a second route and upstream timeout.
    let a = config_of(&gw, USERS, "");
    let b = config_of(&gw, &format!("{USERS}\n{ORDERS}"), "").replace("timeout: 2s", "timeout: 3s");

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let url = format!("http://{}/v1/users/1", gw.addr);
        clients.push(tokio::spawn(async move {
            let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
            while !stop.load(Ordering::Relaxed) {
                let req = http::Request::get(&url)
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let good = match client.request(req).await {
                    Ok(res) => {
                        let status = res.status();
                        res.into_body().collect().await.is_ok() && status == StatusCode::OK
                    }
                    Err(_) => false,
                };
                let counter = if good { &ok } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut versions = std::collections::HashSet::new();
    for i in 0..30 {
        write(&dir, if i % 2 == 0 { &b } else { &a });
        let res = reload(&gw).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        versions.insert(res.json()["version"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Enough traffic to have crossed every swap.
    while ok.load(Ordering::Relaxed) < 3000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert_eq!(versions.len(), 2, "two files, two versions: {versions:?}");
    assert_eq!(
        gw.metric("switchyard_config_reload_total{result=\"ok\"}")
            .await,
        Some(30.0)
    );
    assert_eq!(
        gw.metric("switchyard_config_reload_total{result=\"error\"}")
            .await,
        None
    );
    gw.stop().await;
}

/// The test's config with other routes and extra.
fn config_of(gw: &TestGateway, routes: &str, extra: &str) -> String {
    yaml(&gw.demo, &protos(), routes, extra)
}

#[tokio::test]
async fn a_bad_file_keeps_the_running_routes_and_says_where_it_is_wrong() {
    let dir = scratch("bad");
    let gw = start(&dir, |d| yaml(d, &protos(), USERS, ""), Default::default()).await;
    let good = config_of(&gw, USERS, "");
    let version = gw.admin_get("/admin/config").await.json()["version"].clone();

    let cases = [
        // YAML that does not parse.
        (good.replace("routes:\n", "routes:\n  - { name: [\n"), ""),
        // A route naming an upstream that does not exist.
        (
            good.replace("upstream: users }", "upstream: nobody }"),
            "routes[0].upstream",
        ),
        // A key the model does not know.
        (
            good.replace("timeout: 2s", "timeout: 2s, retires: 3"),
            "upstreams.users",
        ),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let body = refused(&gw, &dir, text).await;
        assert_eq!(body["result"], "error");
        assert_eq!(body["version"], version, "the running version stays");
        let error = &body["error"];
        assert!(
            error["file"].as_str().unwrap().ends_with("gateway.yaml"),
            "{body}"
        );
        assert!(error["line"].as_u64().unwrap() > 0, "case {i}: {body}");
        assert!(
            error["key"].as_str().unwrap().starts_with(key),
            "case {i}: {body}"
        );
        // Still serving the old routes.
        assert_eq!(gw.get("/v1/users/1").await.status, StatusCode::OK);
    }
    let config = gw.admin_get("/admin/config").await.json();
    assert_eq!(config["version"], version);
    assert_eq!(config["last_error"]["key"], "upstreams.users.retires");
    assert_eq!(config["history"][0]["result"], "error");
    assert_eq!(config["history"][0]["trigger"], "admin");
    assert_eq!(
        gw.metric("switchyard_config_reload_total{result=\"error\"}")
            .await,
        Some(3.0)
    );
    // A fixed file reloads.
    write(&dir, &config_of(&gw, &format!("{USERS}\n{ORDERS}"), ""));
    assert_eq!(reload(&gw).await.status, StatusCode::OK);
    assert_eq!(gw.get("/v1/orders/1").await.status, StatusCode::OK);
    gw.stop().await;
}

#[tokio::test]
async fn a_proto_that_no_longer_compiles_is_refused_with_its_file_and_line() {
    let dir = scratch("proto");
    let protos = dir.join("proto");
    copy_dir(&repo_root().join("proto"), &protos);
    let gw = start(&dir, |d| yaml(d, &protos, USERS, ""), Default::default()).await;
    let file = protos.join("demo/users/v1/users.proto");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("rpc GetUser(", "rpc GetUser(NoSuchMessage) returns ("),
    )
    .unwrap();
    let res = reload(&gw).await;
    assert_eq!(
        res.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        res.text()
    );
    let message = res.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("users.proto"), "{message}");
    assert_eq!(gw.get("/v1/users/1").await.status, StatusCode::OK);
    gw.stop().await;
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test]
async fn a_change_to_a_setting_bound_at_start_is_refused_until_a_restart() {
    let dir = scratch("restart");
    let gw = start(&dir, |d| yaml(d, &protos(), USERS, ""), Default::default()).await;
    let moved = config_of(&gw, USERS, "").replace(
        r#"listeners: [{ address: "127.0.0.1:0" }]"#,
        r#"listeners: [{ address: "127.0.0.1:0" }, { address: "127.0.0.1:0" }]"#,
    );
    let body = refused(&gw, &dir, &moved).await;
    assert_eq!(body["error"]["key"], "listeners");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("restart"),
        "{body}"
    );
    // Written-out defaults are no change.
    let explicit = config_of(&gw, USERS, "limits: { max_headers: 100 }\nworkers: null");
    write(&dir, &explicit);
    let res = reload(&gw).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    gw.stop().await;
}

#[tokio::test]
async fn strict_reload_refuses_to_drop_an_exposed_method() {
    let dir = scratch("strict");
    let both = format!("{USERS}\n{ORDERS}");
    let gw = start(
        &dir,
        |d| yaml(d, &protos(), &both, ""),
        StartOptions {
            strict_reload: true,
        },
    )
    .await;
    let fewer = config_of(
        &gw,
        &both.replace("upstream: users }", "upstream: users, methods: [GetUser] }"),
        "",
    );
    let body = refused(&gw, &dir, &fewer).await;
    let message = body["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("REST GET /v1/users (demo.users.v1.UserService/ListUsers)"),
        "{message}"
    );
    assert_eq!(gw.get("/v1/users").await.status, StatusCode::OK);
    // Adding is fine.
    write(&dir, &config_of(&gw, &both, "openapi: {}"));
    assert_eq!(reload(&gw).await.status, StatusCode::OK);
    gw.stop().await;
}

#[tokio::test]
async fn the_watch_reloads_a_changed_file_and_tries_a_bad_one_once() {
    let dir = scratch("watch");
    let watch = "reload: { watch_interval: 50ms }";
    let gw = start(
        &dir,
        |d| yaml(d, &protos(), USERS, watch),
        Default::default(),
    )
    .await;
    assert_eq!(gw.get("/v1/orders/1").await.status, StatusCode::NOT_FOUND);
    let both = config_of(&gw, &format!("{USERS}\n{ORDERS}"), watch);
    write(&dir, &both);
    wait_for(|| async { gw.get("/v1/orders/1").await.status == StatusCode::OK }).await;
    let bad = both.replace("upstream: orders }", "upstream: nowhere }");
    write(&dir, &bad);
    wait_for(|| async {
        gw.metric("switchyard_config_reload_total{result=\"error\"}")
            .await
            == Some(1.0)
    })
    .await;
    // Several intervals later: the same bad bytes were not tried again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        gw.metric("switchyard_config_reload_total{result=\"error\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(gw.get("/v1/orders/1").await.status, StatusCode::OK);
    let config = gw.admin_get("/admin/config").await.json();
    assert_eq!(config["history"][0]["trigger"], "watch");
    assert_eq!(config["history"][1]["trigger"], "watch");
    assert_eq!(config["history"][2]["trigger"], "start");
    gw.stop().await;
}

async fn wait_for<F, Fut>(mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 10 s");
}

#[tokio::test]
async fn admin_config_redacts_secrets_and_the_admin_token_guards_the_api() {
    let dir = scratch("admin");
    let extra = r#"
plugins:
  - auth:
      methods:
        - api_key:
            keys:
              - { consumer: ci, sha256: "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8" }
"#;
    let text = |d: &DemoServer| {
        yaml(d, &protos(), USERS, extra).replace(
            r#"admin: { address: "127.0.0.1:0" }"#,
            r#"admin: { address: "127.0.0.1:0", token: "adm1n-t0ken-0123456789" }"#,
        )
    };
    let gw = start(&dir, text, Default::default()).await;
    let bare = gw.admin_get("/admin/config").await;
    assert_eq!(bare.status, StatusCode::UNAUTHORIZED);
    assert!(bare.headers.contains_key("www-authenticate"));
    let wrong = gw
        .admin_send(
            Method::GET,
            "/admin/config",
            &[("authorization", "Bearer nope")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(gw.admin_get("/healthz").await.status, StatusCode::OK);
    assert_eq!(gw.admin_get("/readyz").await.status, StatusCode::OK);
    let auth = [("authorization", "Bearer adm1n-t0ken-0123456789")];
    let res = gw.admin_send(Method::GET, "/admin/config", &auth).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let body = res.text();
    assert!(!body.contains("adm1n-t0ken-0123456789"), "{body}");
    assert!(!body.contains("5e884898"), "{body}");
    let config = res.json();
    assert_eq!(config["config"]["admin"]["token"], "<redacted>");
    assert_eq!(config["config"]["routes"][0]["name"], "users");
    assert_eq!(config["history"][0]["trigger"], "start");
    assert_eq!(config["version"].as_str().unwrap().len(), 12);
    let routes = gw
        .admin_send(Method::GET, "/admin/routes", &auth)
        .await
        .json();
    assert_eq!(routes["routes"][0]["plugins"], serde_json::json!(["auth"]));
    let bindings = routes["bindings"].as_array().unwrap();
    assert!(
        bindings.iter().any(|b| b["path"] == "/v1/users/{id}"
            && b["method"] == "GET"
            && b["rpc"] == "demo.users.v1.UserService/GetUser"),
        "{routes}"
    );
    let get = gw.admin_send(Method::GET, "/admin/reload", &auth).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    gw.stop().await;
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_the_running_binary() {
    let dir = scratch("sighup");
    let demo = demo().await;
    let (public, admin) = (common::nats::free_port(), common::nats::free_port());
    let text = yaml(&demo, &protos(), USERS, "")
        .replacen(r#""127.0.0.1:0""#, &format!("\"127.0.0.1:{public}\""), 1)
        .replacen(r#""127.0.0.1:0""#, &format!("\"127.0.0.1:{admin}\""), 1);
    let path = dir.join("gateway.yaml");
    std::fs::write(&path, &text).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["run", "--config"])
        .arg(&path)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the gateway starts");
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let get = |url: String| {
        let client = client.clone();
        async move {
            let req = http::Request::get(url)
                .body(Full::new(Bytes::new()))
                .unwrap();
            match client.request(req).await {
                Ok(res) => Some((
                    res.status(),
                    res.into_body().collect().await.ok()?.to_bytes(),
                )),
                Err(_) => None,
            }
        }
    };
    let orders = format!("http://127.0.0.1:{public}/v1/orders/1");
    wait_for(|| async { get(orders.clone()).await.is_some() }).await;
    assert_eq!(get(orders.clone()).await.unwrap().0, StatusCode::NOT_FOUND);
    std::fs::write(&path, text.replace(USERS, &format!("{USERS}\n{ORDERS}"))).unwrap();
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for(|| async { get(orders.clone()).await.map(|r| r.0) == Some(StatusCode::OK) }).await;
    let (_, body) = get(format!("http://127.0.0.1:{admin}/admin/config"))
        .await
        .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(config["history"][0]["trigger"], "signal");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn an_empty_or_short_admin_token_is_refused() {
    let yaml = format!(
        "admin: {{ token: \"\" }}\nprotos: {{ sources: [\"{}\"] }}\nupstreams: {{ users: {{ endpoints: [\"http://127.0.0.1:1\"] }} }}\nroutes: [{{ service: demo.users.v1.UserService, upstream: users }}]\n",
        protos().display()
    );
    let error = common::config_error(&yaml).await;
    assert!(
        error.contains("at `admin.token`: admin.token is 0 characters; use at least 16"),
        "{error}"
    );
}

#[tokio::test]
async fn an_open_stream_keeps_its_version_across_a_reload_that_drops_its_method() {
    use http_body_util::{BodyExt, Empty};
    let dir = scratch("stream");
    let both = format!("{USERS}\n{ORDERS}");
    let gw = start(&dir, |d| yaml(d, &protos(), &both, ""), Default::default()).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let url = format!("http://{}/v1/users/1/orders:watch", gw.addr);
    let res = client
        .request(http::Request::get(&url).body(Empty::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let mut seen = String::new();
    // The snapshot's first order arrives on the version the stream began on.
    while !seen.contains('\n') {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the snapshot")
            .expect("a frame")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            seen.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    // The next version no longer exposes WatchOrders.
    let without_watch = both.replace(
        "upstream: orders }",
        "upstream: orders, methods: [GetOrder, CreateOrder, ListOrders, CancelOrder] }",
    );
    write(&dir, &config_of(&gw, &without_watch, ""));
    assert_eq!(reload(&gw).await.status, StatusCode::OK);
    assert_eq!(
        gw.get("/v1/users/1/orders:watch").await.status,
        StatusCode::NOT_FOUND
    );
    // The open stream still gets what happens next.
    let created = gw
        .post_json(
            "/v1/orders",
            r#"{"userId":"1","items":[{"sku":"B-2","qty":1}]}"#,
        )
        .await
        .json();
    let id = created["id"].as_str().unwrap().to_owned();
    while !seen.contains(&format!("\"id\":\"{id}\"")) {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the created order streams to the old version's client")
            .expect("a frame")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            seen.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    drop(body);
    gw.stop().await;
}
