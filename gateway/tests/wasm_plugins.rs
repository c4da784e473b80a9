//! WebAssembly plugins (`plugins: [{ wasm: … }]`) through the real gateway
//! and real upstreams: the example filters of `plugins/examples/`, built
//! from source here, edit requests, rewrite paths and answer by
//! themselves; a filter that loops or traps fails its own request only,
//! counted in the metrics; a reload swaps the filter with the config.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use common::TestGateway;
use common::scripted::{self, Handler};
use http::{Method, StatusCode};
use prost_reflect::DynamicMessage;
use switchyard_demo::Service;

/// `plugins/examples/{name}.wat` assembled into a binary module, as a
/// filter built by any toolchain would arrive.
fn built_example(name: &str) -> PathBuf {
    let source = common::repo_root().join(format!("plugins/examples/{name}.wat"));
    let binary = wat::parse_file(&source).expect("the example assembles");
    let path = common::scratch_dir("wasm").join(format!("{name}.wasm"));
    std::fs::write(&path, binary).unwrap();
    path
}

fn test_module(name: &str) -> PathBuf {
    common::repo_root().join(format!("gateway/tests/wasm/{name}.wat"))
}

/// A scripted users service answering GetUser with the id it was asked for.
async fn users_upstream() -> scripted::Scripted {
    let pool = scripted::pool(common::repo_root().join("proto"));
    let user = pool.get_message_by_name("demo.users.v1.User").unwrap();
    let handler: Handler = Arc::new(move |req: &DynamicMessage| {
        let mut reply = DynamicMessage::new(user.clone());
        let id = req
            .get_field_by_name("id")
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        reply.set_field_by_name("id", prost_reflect::Value::String(id));
        reply
    });
    scripted::start(pool, HashMap::from([("GetUser", handler)])).await
}

/// The users route (to `users`) with `plugins`, and the demo's orders route.
async fn gateway(users: &scripted::Scripted, plugins: &str) -> TestGateway {
    let demo = common::spawn_demo().await;
    let users = format!("http://{}", users.addr);
    let yaml = format!(
        r#"
listeners: [{{ address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
protos: {{ sources: ["{proto}"] }}
upstreams:
  users: {{ endpoints: ["{users}"], timeout: 2s }}
  orders: {{ endpoints: ["{orders}"], timeout: 2s }}
routes:
  - name: users
    service: demo.users.v1.UserService
    upstream: users
    headers: {{ forward: [x-edge, x-tenant] }}
    plugins: {plugins}
  - {{ name: orders, service: demo.orders.v1.OrderService, upstream: orders }}
"#,
        proto = common::repo_root().join("proto").display(),
        orders = demo.url(Service::Orders),
    );
    TestGateway::start_yaml(demo, &yaml).await
}

fn wasm(module: &Path, config: &str, extra: &str) -> String {
    format!(
        r#"[{{ wasm: {{ module: "{}", config: {config:?}, fuel: 2000000 {extra} }} }}]"#,
        module.display()
    )
}

#[tokio::test]
async fn the_add_header_example_edits_the_request_the_upstream_gets_and_the_response() {
    let upstream = users_upstream().await;
    let module = built_example("add-header");
    let config = "header=x-edge\nvalue=switchyard\nfrom=/v1/users/me\nto=/v1/users/42";
    let gw = gateway(&upstream, &wasm(&module, config, "")).await;
    let res = gw.get("/v1/users/me").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(
        res.json()["id"],
        "42",
        "the path was rewritten before the call"
    );
    assert_eq!(res.headers["x-edge"], "switchyard");
    let calls = upstream.recorded("GetUser");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].metadata["x-edge"], "switchyard");
    // Other paths keep theirs.
    assert_eq!(gw.get("/v1/users/7").await.json()["id"], "7");
    let continued = gw
        .metric(r#"switchyard_wasm_plugin_requests_total{outcome="continued",plugin="add-header",route="users"}"#)
        .await;
    assert_eq!(continued, Some(2.0));
    gw.stop().await;
}

#[tokio::test]
async fn a_path_rewritten_out_of_the_route_is_404_and_never_reaches_the_other_route() {
    let upstream = users_upstream().await;
    let module = built_example("add-header");
    // /v1/users/1/orders is the orders route's: the filter cannot send a
    // request there past that route's plugins.
    let config = "header=x-edge\nvalue=1\nfrom=/v1/users/other\nto=/v1/users/1/orders";
    let gw = gateway(&upstream, &wasm(&module, config, "")).await;
    let before = gw.upstream_calls();
    let res = gw.get("/v1/users/other").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "{}", res.text());
    assert!(
        res.error().1.contains("which the route does not serve"),
        "{}",
        res.text()
    );
    assert_eq!(gw.upstream_calls(), before);
    assert!(upstream.recorded("GetUser").is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn the_require_header_example_answers_403_without_calling_the_upstream() {
    let upstream = users_upstream().await;
    let module = built_example("require-header");
    let gw = gateway(&upstream, &wasm(&module, "x-tenant", "")).await;
    let res = gw.get("/v1/users/1").await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(res.headers["content-type"], "application/json");
    assert_eq!(res.json()["message"], "missing required header x-tenant");
    assert!(upstream.recorded("GetUser").is_empty());
    let res = gw
        .send(
            Method::GET,
            "/v1/users/1",
            &[("x-tenant", "acme")],
            Bytes::new(),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(upstream.recorded("GetUser")[0].metadata["x-tenant"], "acme");
    let local = gw
        .metric(r#"switchyard_wasm_plugin_requests_total{outcome="local_response",plugin="require-header",route="users"}"#)
        .await;
    assert_eq!(local, Some(1.0));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_that_loops_forever_fails_its_request_only_and_the_gateway_serves_on() {
    let upstream = users_upstream().await;
    let gw = gateway(
        &upstream,
        &wasm(&test_module("loop"), "", ", on_error: 503"),
    )
    .await;
    let gw = Arc::new(gw);
    // Looping requests and plain ones at once.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            let headers: &[(&str, &str)] = if i % 2 == 0 { &[("x-loop", "1")] } else { &[] };
            let res = gw
                .send(Method::GET, "/v1/users/1", headers, Bytes::new())
                .await;
            (i % 2 == 0, res)
        }));
    }
    for task in tasks {
        let (looping, res) = task.await.unwrap();
        if looping {
            assert_eq!(
                res.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{}",
                res.text()
            );
            assert!(
                res.error()
                    .1
                    .contains("`loop` plugin failed on this request (fuel)"),
                "{}",
                res.text()
            );
        } else {
            assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        }
    }
    assert_eq!(upstream.recorded("GetUser").len(), 10);
    let fuel = gw
        .metric(r#"switchyard_wasm_plugin_failures_total{kind="fuel",plugin="loop",route="users"}"#)
        .await;
    assert_eq!(fuel, Some(10.0));
    Arc::try_unwrap(gw).ok().unwrap().stop().await;
}

#[tokio::test]
async fn a_trapping_filter_answers_500_and_the_next_requests_are_served() {
    let upstream = users_upstream().await;
    let gw = gateway(&upstream, &wasm(&test_module("trap"), "", "")).await;
    for _ in 0..3 {
        let res = gw
            .send(Method::GET, "/v1/users/1", &[("x-trap", "1")], Bytes::new())
            .await;
        assert_eq!(res.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(res.error().1.contains("(trap)"), "{}", res.text());
        assert_eq!(gw.get("/v1/users/2").await.status, StatusCode::OK);
    }
    let traps = gw
        .metric(r#"switchyard_wasm_plugin_failures_total{kind="trap",plugin="trap",route="users"}"#)
        .await;
    assert_eq!(traps, Some(3.0));
    gw.stop().await;
}

#[tokio::test]
async fn a_module_that_is_not_a_filter_is_refused_at_load_with_its_key() {
    let dir = common::scratch_dir("wasm-bad");
    let plain = dir.join("plain.wasm");
    std::fs::write(&plain, wat::parse_str("(module)").unwrap()).unwrap();
    let yaml = common::one_route_config(
        None,
        "demo.users.v1.UserService",
        r#""http://127.0.0.1:1""#,
        "",
        &format!(", plugins: {}", wasm(&plain, "", "")),
    );
    let error = common::config_error(&yaml).await;
    assert!(error.contains("routes[0].plugins"), "{error}");
    assert!(error.contains("not a proxy-wasm filter"), "{error}");
}

#[tokio::test]
async fn a_reload_swaps_the_filter_and_a_broken_module_keeps_the_old_one() {
    let upstream = users_upstream().await;
    let dir = common::scratch_dir("wasm-reload");
    let module = dir.join("filter.wasm");
    std::fs::copy(built_example("add-header"), &module).unwrap();
    let users = format!("http://{}", upstream.addr);
    let text = |value: &str| {
        format!(
            r#"
listeners: [{{ address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
protos: {{ sources: ["{proto}"] }}
reload: {{ watch_interval: 0s }}
upstreams:
  users: {{ endpoints: ["{users}"], timeout: 2s }}
routes:
  - name: users
    service: demo.users.v1.UserService
    upstream: users
    plugins: {plugins}
"#,
            proto = common::repo_root().join("proto").display(),
            plugins = wasm(
                Path::new("filter.wasm"),
                &format!("header=x-edge\nvalue={value}"),
                ""
            ),
        )
    };
    let demo = common::spawn_demo().await;
    let path = dir.join("gateway.yaml");
    std::fs::write(&path, text("one")).unwrap();
    let gw = TestGateway::start_file(demo, &path, Default::default()).await;
    assert_eq!(gw.get("/v1/users/1").await.headers["x-edge"], "one");

    std::fs::write(&path, text("two")).unwrap();
    let res = gw.admin_send(Method::POST, "/admin/reload", &[]).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(gw.get("/v1/users/1").await.headers["x-edge"], "two");

    // A module that no longer loads: the reload is refused, the filter stays.
    std::fs::write(&module, b"not a module").unwrap();
    std::fs::write(&path, text("three")).unwrap();
    let res = gw.admin_send(Method::POST, "/admin/reload", &[]).await;
    assert_eq!(
        res.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        res.text()
    );
    assert!(res.text().contains("filter.wasm"), "{}", res.text());
    assert_eq!(gw.get("/v1/users/1").await.headers["x-edge"], "two");
    gw.stop().await;
}

/// `plugins/examples/assemblyscript` compiled from source with its own
/// toolchain (AssemblyScript's `asc`, from npm; `scripts/test.sh` installs
/// it): a filter written with an existing proxy-wasm SDK.
fn built_assemblyscript_filter() -> PathBuf {
    let dir = common::repo_root().join("plugins/examples/assemblyscript");
    assert!(
        dir.join("node_modules/assemblyscript/package.json")
            .is_file(),
        "the AssemblyScript filter's toolchain is not installed in {dir:?}: run \
         `scripts/test.sh` (it installs it), or `(cd {} && npm ci)`",
        dir.display()
    );
    let out = std::process::Command::new("npm")
        .args(["run", "--silent", "build"])
        .current_dir(&dir)
        .output()
        .expect("npm runs");
    assert!(
        out.status.success(),
        "asc failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("build/add-header.wasm")
}

#[tokio::test]
async fn a_filter_built_with_the_assemblyscript_sdk_runs_unchanged() {
    let upstream = users_upstream().await;
    let module = built_assemblyscript_filter();
    let gw = gateway(
        &upstream,
        &wasm(&module, "from switchyard", ", root_id: add_header"),
    )
    .await;
    for id in ["1", "2"] {
        let res = gw.get(&format!("/v1/users/{id}")).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        assert_eq!(res.json()["id"], id);
        assert_eq!(res.headers["hello"], "from switchyard");
    }
    let failures = gw
        .metric(r#"switchyard_wasm_plugin_failures_total{kind="trap",plugin="add-header",route="users"}"#)
        .await;
    assert_eq!(failures, None);
    gw.stop().await;
}

/// An authorization service on an ephemeral port: `GET /check` answers 200
/// when `x-user` is `alice`, 403 otherwise; it records the users it was
/// asked about.
async fn authz_service() -> (std::net::SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let asked: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let seen = asked.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_lowercase();
                let user = head
                    .lines()
                    .find_map(|l| l.strip_prefix("x-user:"))
                    .map(|u| u.trim().to_owned())
                    .unwrap_or_default();
                let status = if head.starts_with("get /check ") && user == "alice" {
                    "200 OK"
                } else {
                    "403 Forbidden"
                };
                seen.lock().unwrap().push(user);
                let reply =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    (addr, asked)
}

/// `GET /v1/users/1` as `user` (the `x-user` header).
async fn get_as(gw: &TestGateway, user: &str) -> common::Reply {
    gw.send(
        Method::GET,
        "/v1/users/1",
        &[("x-user", user)],
        Bytes::new(),
    )
    .await
}

#[tokio::test]
async fn a_filter_asks_an_allowed_upstream_over_http_and_answers_by_what_it_said() {
    let upstream = users_upstream().await;
    let (authz, asked) = authz_service().await;
    let callouts = format!(r#", http_callouts: {{ authz: "http://{authz}" }}"#);
    let gw = gateway(&upstream, &wasm(&test_module("authz"), "", &callouts)).await;
    let alice = get_as(&gw, "alice").await;
    assert_eq!(alice.status, StatusCode::OK, "{}", alice.text());
    let bob = get_as(&gw, "bob").await;
    assert_eq!(
        (bob.status, bob.text().as_str()),
        (StatusCode::FORBIDDEN, "denied")
    );
    assert_eq!(*asked.lock().unwrap(), ["alice", "bob"]);
    assert_eq!(
        upstream.recorded("GetUser").len(),
        1,
        "bob never reached the upstream"
    );
    gw.stop().await;

    // The authorization service gone: the callout fails, the filter denies.
    let closed = common::nats::free_port();
    let callouts = format!(r#", http_callouts: {{ authz: "http://127.0.0.1:{closed}" }}"#);
    let gw = gateway(&upstream, &wasm(&test_module("authz"), "", &callouts)).await;
    let res = get_as(&gw, "alice").await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    gw.stop().await;

    // No `http_callouts`: the filter is refused the call (and answers 502).
    let gw = gateway(&upstream, &wasm(&test_module("authz"), "", "")).await;
    let res = get_as(&gw, "alice").await;
    assert_eq!(
        (res.status, res.text().as_str()),
        (StatusCode::BAD_GATEWAY, "callout refused")
    );
    assert_eq!(upstream.recorded("GetUser").len(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn a_filter_staged_before_auth_can_prepare_the_credentials_auth_reads() {
    // The filter maps nothing to `x-api-key: demo-key-123` (a legacy
    // client's credential translated, in a real filter): before `auth`, the
    // key it adds lets the request in; after (the default), `auth` has
    // already refused it.
    let module = built_example("add-header");
    let sha = "a52782e3a2d4dd2f95f640b9abfb3b2a6b8e722c65f55be830f6e5f619f7f873";
    for (stage, expected) in [
        ("before_auth", StatusCode::OK),
        ("after_rate_limit", StatusCode::UNAUTHORIZED),
    ] {
        let plugins = format!(
            r#", plugins: [ {{ auth: {{ methods: [ {{ api_key: {{ header: x-api-key, keys: [ {{ consumer: demo-partner, sha256: {sha} }} ] }} }} ] }} }}, {{ wasm: {{ module: "{}", config: "header=x-api-key\nvalue=demo-key-123", stage: {stage} }} }} ]"#,
            module.display()
        );
        let gw = TestGateway::demo_with(&plugins, "").await;
        let res = gw.get("/v1/users/1").await;
        assert_eq!(res.status, expected, "{stage}: {}", res.text());
        gw.stop().await;
    }
}
