//! The host driven through the plugin's tower service, with the example
//! filters (`plugins/examples/`) and small modules written here to loop,
//! trap, eat memory or edit bodies.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use tower::{Service, ServiceExt};

use super::{Wasm, WasmConfig};
use crate::metrics::PluginMetrics;
use crate::registry::{BuildContext, Plugin};
use crate::stage::{HttpService, PathRewritten, Request, Response, full_body};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// `text` assembled into a binary module in a fresh file.
fn module_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "switchyard-wasm-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, wat::parse_str(text).unwrap()).unwrap();
    path
}

fn config(module: &Path, config: serde_json::Value) -> WasmConfig {
    serde_json::from_value(serde_json::json!({
        "module": module,
        "config": config,
        "vms": 2,
        "fuel": 1_000_000,
        "max_memory": "2MiB",
    }))
    .unwrap()
}

/// What the next stage saw.
#[derive(Default)]
struct Seen {
    requests: Vec<(http::request::Parts, Bytes)>,
}

fn upstream(seen: Arc<Mutex<Seen>>, reply: &'static str) -> HttpService {
    HttpService::new(tower::service_fn(move |req: Request| {
        let seen = seen.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            seen.lock().unwrap().requests.push((parts, body));
            let mut res = http::Response::new(full_body(reply));
            res.headers_mut().insert("x-upstream", "1".parse().unwrap());
            Ok::<_, std::convert::Infallible>(res)
        }
    }))
}

async fn build(config: WasmConfig, metrics: &PluginMetrics) -> Result<Wasm, String> {
    let ctx = BuildContext {
        route: "r".into(),
        metrics: metrics.clone(),
        ..Default::default()
    };
    Wasm::build(config, &ctx).await.map_err(|e| e.to_string())
}

async fn send(
    service: &mut HttpService,
    req: http::Request<&'static str>,
) -> (StatusCode, http::HeaderMap, String) {
    let (parts, body) = req.into_parts();
    let res: Response = service
        .ready()
        .await
        .unwrap()
        .call(http::Request::from_parts(parts, full_body(body)))
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn get(path: &str) -> http::Request<&'static str> {
    http::Request::get(path)
        .header("host", "example.test")
        .body("")
        .unwrap()
}

#[tokio::test]
async fn add_header_adds_request_and_response_headers_and_rewrites_the_path() {
    let binary = module_file(
        "add-header",
        &std::fs::read_to_string(examples().join("add-header.wat")).unwrap(),
    );
    let metrics = PluginMetrics::new();
    let plugin = build(
        config(
            &binary,
            "header=x-edge\nvalue=switchyard\nfrom=/v1/legacy/\nto=/v1/".into(),
        ),
        &metrics,
    )
    .await
    .unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut service = plugin.wrap(upstream(seen.clone(), "ok"));
    let (status, headers, body) = send(&mut service, get("/v1/legacy/users/7?view=full")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    assert_eq!(headers["x-edge"], "switchyard");
    assert_eq!(headers["x-upstream"], "1");
    let (parts, _) = seen.lock().unwrap().requests.remove(0);
    assert_eq!(parts.headers["x-edge"], "switchyard");
    assert_eq!(parts.headers["host"], "example.test");
    assert_eq!(parts.uri.path(), "/v1/users/7");
    assert_eq!(parts.uri.query(), Some("view=full"));
    assert!(parts.extensions.get::<PathRewritten>().is_some());
    // A path without the prefix is left alone, and not marked.
    send(&mut service, get("/v2/other")).await;
    let (parts, _) = seen.lock().unwrap().requests.remove(0);
    assert_eq!(parts.uri.path(), "/v2/other");
    assert!(parts.extensions.get::<PathRewritten>().is_none());
    assert_eq!(metrics.wasm("r", "add-header").continued.get(), 2);
}

#[tokio::test]
async fn the_text_form_of_a_module_loads_as_is() {
    let plugin = build(
        config(
            &examples().join("add-header.wat"),
            "header=x-a\nvalue=b".into(),
        ),
        &PluginMetrics::new(),
    )
    .await
    .unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut service = plugin.wrap(upstream(seen, "ok"));
    let (_, headers, _) = send(&mut service, get("/")).await;
    assert_eq!(headers["x-a"], "b");
}

#[tokio::test]
async fn require_header_answers_403_itself_without_calling_the_next_stage() {
    let metrics = PluginMetrics::new();
    let plugin = build(
        config(&examples().join("require-header.wat"), "x-tenant".into()),
        &metrics,
    )
    .await
    .unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut service = plugin.wrap(upstream(seen.clone(), "ok"));
    let (status, headers, body) = send(&mut service, get("/v1/users/1")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers["content-type"], "application/json");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["message"], "missing required header x-tenant");
    assert!(seen.lock().unwrap().requests.is_empty());
    let with = http::Request::get("/v1/users/1")
        .header("x-tenant", "acme")
        .body("")
        .unwrap();
    let (status, _, _) = send(&mut service, with).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen.lock().unwrap().requests.len(), 1);
    let counters = metrics.wasm("r", "require-header");
    assert_eq!(
        (counters.local_response.get(), counters.continued.get()),
        (1, 1)
    );
}

/// A filter that misbehaves when the request has `x-misbehave`: loops,
/// traps or eats memory, by its configuration.
const MISBEHAVING: &str = r#"
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $mode (mut i32) (i32.const 0))
  (data (i32.const 64) "x-misbehave")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 4096))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $get_buffer (i32.const 7) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 4)))
    (global.set $mode (i32.load8_u (i32.load (i32.const 0))))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (call $get (i32.const 0) (i32.const 64) (i32.const 11) (i32.const 0) (i32.const 4))
      (then (return (i32.const 0))))
    ;; l: loop forever
    (if (i32.eq (global.get $mode) (i32.const 108)) (then (loop $forever (br $forever))))
    ;; t: trap
    (if (i32.eq (global.get $mode) (i32.const 116)) (then unreachable))
    ;; m: grow memory past any cap, trap when refused
    (if (i32.eq (memory.grow (i32.const 1000)) (i32.const -1)) (then unreachable))
    (i32.const 0)))
"#;

async fn misbehaving(mode: &str, metrics: &PluginMetrics) -> HttpService {
    let binary = module_file("misbehaving", MISBEHAVING);
    let mut config = config(&binary, mode.into());
    config.name = Some(format!("misbehaving-{mode}"));
    let plugin = build(config, metrics).await.unwrap();
    plugin.wrap(upstream(Arc::default(), "ok"))
}

fn misbehave() -> http::Request<&'static str> {
    http::Request::get("/")
        .header("x-misbehave", "1")
        .body("")
        .unwrap()
}

#[tokio::test]
async fn a_filter_that_loops_forever_is_stopped_by_its_fuel_and_fails_only_that_request() {
    let metrics = PluginMetrics::new();
    let mut service = misbehaving("l", &metrics).await;
    let (status, _, body) = send(&mut service, misbehave()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.contains("(fuel)"), "{body}");
    // The VM was replaced: the next requests are served.
    for _ in 0..3 {
        assert_eq!(send(&mut service, get("/")).await.0, StatusCode::OK);
    }
    let counters = metrics.wasm("r", "misbehaving-l");
    assert_eq!((counters.failed.get(), counters.continued.get()), (1, 3));
}

#[tokio::test]
async fn a_trapping_filter_answers_500_and_the_next_request_is_served() {
    let metrics = PluginMetrics::new();
    let mut service = misbehaving("t", &metrics).await;
    for _ in 0..3 {
        let (status, _, body) = send(&mut service, misbehave()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("(trap)"), "{body}");
        assert_eq!(send(&mut service, get("/")).await.0, StatusCode::OK);
    }
    assert_eq!(metrics.wasm("r", "misbehaving-t").failed.get(), 3);
}

#[tokio::test]
async fn a_filter_past_its_memory_cap_fails_as_memory() {
    let metrics = PluginMetrics::new();
    let mut service = misbehaving("m", &metrics).await;
    let (status, _, body) = send(&mut service, misbehave()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("(memory)"), "{body}");
    assert_eq!(send(&mut service, get("/")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn modules_that_are_not_filters_or_refuse_their_config_fail_the_build() {
    let metrics = PluginMetrics::new();
    let plain = module_file("plain", "(module (func (export \"f\")))");
    let err = build(config(&plain, serde_json::Value::Null), &metrics)
        .await
        .unwrap_err();
    assert!(err.contains("not a proxy-wasm filter"), "{err}");
    // add-header refuses a configuration without `header=`.
    let err = build(
        config(&examples().join("add-header.wat"), "value=x".into()),
        &metrics,
    )
    .await
    .unwrap_err();
    assert!(err.contains("refused its configuration"), "{err}");
    let err = build(
        config(
            Path::new("/nonexistent/filter.wasm"),
            serde_json::Value::Null,
        ),
        &metrics,
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("cannot read /nonexistent/filter.wasm"),
        "{err}"
    );
    // Initial memory past the cap: refused when the VMs start.
    let big = module_file(
        "big",
        "(module (memory (export \"memory\") 100) (func (export \"proxy_abi_version_0_2_1\")) (func (export \"proxy_on_context_create\") (param i32 i32)))",
    );
    let err = build(config(&big, serde_json::Value::Null), &metrics)
        .await
        .unwrap_err();
    assert!(err.contains("memory"), "{err}");
}

/// Replaces request bodies with `{}` and response bodies with `rewritten`;
/// counts its requests in shared data (`hits`, one `x` each) and answers
/// the count in `x-hits`. Links `proxy_future_call`, which no host has:
/// it loads, and would trap only if called.
const BODIES: &str = r#"
(module
  (import "env" "proxy_set_buffer_bytes" (func $set_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_shared_data" (func $get_shared (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $set_shared (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_future_call" (func $future (param i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (data (i32.const 64) "{}")
  (data (i32.const 80) "rewritten")
  (data (i32.const 96) "hits")
  (data (i32.const 112) "x-hits")
  (func (export "proxy_abi_version_0_2_1"))
  (func $alloc (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (i32.add (local.get $n) (i32.const 8))))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (local $new i32) (local $len i32)
    (global.set $heap (i32.const 8192))
    (if (call $get_shared (i32.const 96) (i32.const 4) (i32.const 0) (i32.const 4) (i32.const 8))
      (then (i32.store (i32.const 4) (i32.const 0)) (i32.store (i32.const 8) (i32.const 0))))
    (local.set $len (i32.add (i32.load (i32.const 4)) (i32.const 1)))
    (local.set $new (call $alloc (local.get $len)))
    (if (i32.load (i32.const 4)) (then (memory.copy (local.get $new) (i32.load (i32.const 0)) (i32.load (i32.const 4)))))
    (i32.store8 (i32.add (local.get $new) (i32.load (i32.const 4))) (i32.const 120))
    (drop (call $set_shared (i32.const 96) (i32.const 4) (local.get $new) (local.get $len) (i32.load (i32.const 8))))
    (i32.const 0))
  (func (export "proxy_on_request_body") (param i32) (param $size i32) (param i32) (result i32)
    (drop (call $set_buffer (i32.const 0) (i32.const 0) (local.get $size) (i32.const 64) (i32.const 2)))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (global.set $heap (i32.const 8192))
    (drop (call $get_shared (i32.const 96) (i32.const 4) (i32.const 0) (i32.const 4) (i32.const 8)))
    (drop (call $add (i32.const 2) (i32.const 112) (i32.const 6) (i32.load (i32.const 0)) (i32.load (i32.const 4))))
    (i32.const 0))
  (func (export "proxy_on_response_body") (param i32) (param $size i32) (param i32) (result i32)
    (drop (call $set_buffer (i32.const 1) (i32.const 0) (local.get $size) (i32.const 80) (i32.const 9)))
    (i32.const 0)))
"#;

#[tokio::test]
async fn body_callbacks_replace_bodies_and_shared_data_is_shared_by_the_vms() {
    let binary = module_file("bodies", BODIES);
    let mut config = config(&binary, serde_json::Value::Null);
    config.vm_id = Some(format!("bodies-{}", fastrand::u64(..)));
    let plugin = build(config, &PluginMetrics::new()).await.unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut service = plugin.wrap(upstream(seen.clone(), "original reply"));
    for n in 1..=3 {
        let req = http::Request::post("/")
            .header("content-length", "17")
            .body(r#"{"name":"alice"}."#)
            .unwrap();
        let (status, headers, body) = send(&mut service, req).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "rewritten"));
        assert_eq!(headers["content-length"], "9");
        // Two VMs, one count.
        assert_eq!(headers["x-hits"], "x".repeat(n));
    }
    let (parts, body) = seen.lock().unwrap().requests.remove(0);
    assert_eq!(&body[..], b"{}");
    assert_eq!(parts.headers["content-length"], "2");
}

#[tokio::test]
async fn a_request_body_past_max_body_is_413_before_the_filter_sees_it() {
    let binary = module_file("bodies", BODIES);
    let mut config = config(&binary, serde_json::Value::Null);
    config.max_body = crate::units::ByteSize::Bytes(8);
    let plugin = build(config, &PluginMetrics::new()).await.unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut service = plugin.wrap(upstream(seen.clone(), "ok"));
    let req = http::Request::post("/")
        .header("content-length", "17")
        .body(r#"{"name":"alice"}."#)
        .unwrap();
    let (status, _, _) = send(&mut service, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(seen.lock().unwrap().requests.is_empty());
}

#[tokio::test]
async fn callout_targets_must_be_plain_base_urls() {
    let metrics = PluginMetrics::new();
    for (url, expected) in [
        ("ftp://authz", "must be http:// or https://"),
        ("http://authz/check", "without a path"),
        ("not a url", "is not a URL"),
    ] {
        let mut config = config(&examples().join("require-header.wat"), "x-tenant".into());
        config.http_callouts.insert("authz".into(), url.into());
        let err = build(config, &metrics).await.unwrap_err();
        assert!(
            err.contains("http_callouts.authz") && err.contains(expected),
            "{url}: {err}"
        );
    }
    let mut config = config(&examples().join("require-header.wat"), "x-tenant".into());
    config.callout_timeout = "0s".into();
    let err = build(config, &metrics).await.unwrap_err();
    assert!(err.contains("callout_timeout"), "{err}");
}

/// Abuses the host when the request has `x-abuse`, by its configuration:
/// `c` copies a megabyte over and over (one unit of fuel per copy), `h`
/// adds 5 000 headers (the host refuses them past its bound; the filter
/// ignores the refusals and goes on).
const ABUSIVE: &str = r#"
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 32)
  (global $mode (mut i32) (i32.const 0))
  (data (i32.const 64) "x-abuse")
  (data (i32.const 80) "x-many")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 4096))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $get_buffer (i32.const 7) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 4)))
    (global.set $mode (i32.load8_u (i32.load (i32.const 0))))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (local $i i32)
    (if (call $get (i32.const 0) (i32.const 64) (i32.const 7) (i32.const 0) (i32.const 4))
      (then (return (i32.const 0))))
    (if (i32.eq (global.get $mode) (i32.const 99))
      (then (loop $copy
        (memory.copy (i32.const 0) (i32.const 1048576) (i32.const 1048576))
        (br $copy))))
    (loop $more
      (drop (call $add (i32.const 0) (i32.const 80) (i32.const 6) (i32.const 80) (i32.const 6)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 5000))))
    (i32.const 0)))
"#;

async fn abusive(mode: &str, metrics: &PluginMetrics) -> (HttpService, Arc<Mutex<Seen>>) {
    let binary = module_file("abusive", ABUSIVE);
    let mut config = config(&binary, mode.into());
    config.name = Some(format!("abusive-{mode}"));
    config.fuel = 20_000_000;
    // The header test is about the bound, not time: a debug build on a
    // busy machine must not meet the deadline first.
    if mode == "h" {
        config.deadline = "5s".into();
    }
    let plugin = build(config, metrics).await.unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    (plugin.wrap(upstream(seen.clone(), "ok")), seen)
}

fn abuse() -> http::Request<&'static str> {
    http::Request::get("/")
        .header("x-abuse", "1")
        .body("")
        .unwrap()
}

#[tokio::test]
async fn a_callback_is_stopped_at_its_deadline_even_when_each_instruction_costs_megabytes() {
    let metrics = PluginMetrics::new();
    let (mut service, _) = abusive("c", &metrics).await;
    let (status, _, body) = send(&mut service, abuse()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.contains("(deadline)"), "{body}");
    assert_eq!(send(&mut service, get("/")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn header_maps_stay_within_their_bound_whatever_a_filter_adds() {
    let metrics = PluginMetrics::new();
    let (mut service, seen) = abusive("h", &metrics).await;
    let (status, _, body) = send(&mut service, abuse()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (parts, _) = seen.lock().unwrap().requests.remove(0);
    let added = parts.headers.get_all("x-many").iter().count();
    assert!(
        added > 0 && added + parts.headers.len() - added <= super::abi::MAX_PAIRS,
        "{added}"
    );
}

#[tokio::test]
async fn a_module_with_two_memories_is_refused() {
    let two = module_file(
        "two",
        "(module (memory (export \"memory\") 1) (memory 1) (func (export \"proxy_abi_version_0_2_1\")) (func (export \"proxy_on_context_create\") (param i32 i32)))",
    );
    let err = build(config(&two, serde_json::Value::Null), &PluginMetrics::new())
        .await
        .unwrap_err();
    assert!(err.contains("memor"), "{err}");
}

#[tokio::test]
async fn trailers_survive_a_filter_with_body_callbacks() {
    let binary = module_file("bodies", BODIES);
    let mut config = config(&binary, serde_json::Value::Null);
    config.vm_id = Some(format!("trailers-{}", fastrand::u64(..)));
    let plugin = build(config, &PluginMetrics::new()).await.unwrap();
    let inner = HttpService::new(tower::service_fn(|_req: Request| async {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let frames = [
            http_body::Frame::data(Bytes::from_static(b"payload")),
            http_body::Frame::trailers(trailers),
        ]
        .map(Ok::<_, std::convert::Infallible>);
        let body = crate::stage::box_body(http_body_util::StreamBody::new(
            futures_util::stream::iter(frames),
        ));
        Ok::<_, std::convert::Infallible>(http::Response::new(body))
    }));
    let mut service = plugin.wrap(inner);
    let res: Response = service
        .ready()
        .await
        .unwrap()
        .call(
            http::Request::get("/")
                .body(crate::stage::empty_body())
                .unwrap(),
        )
        .await
        .unwrap();
    let collected = res.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
    assert_eq!(&collected.to_bytes()[..], b"rewritten");
}
