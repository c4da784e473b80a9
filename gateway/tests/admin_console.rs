//! The admin console proven in a real browser: headless Chromium, driven by
//! playwright-core (`tests/browser/console.mjs`), opens `/console` on the
//! admin listener of a gateway that has served traffic, and waits until
//! the page shows the route with its traffic figures and the upstream in
//! service; it saves a screenshot (`target/admin-console.png`). The script
//! fails on any console error, uncaught exception, CSP violation, failed
//! or non-2xx request, or request to another host (no CDN). Needs what
//! `graphiql_browser.rs` needs (`scripts/test.sh` installs it).

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::TestGateway;
use http::StatusCode;
use tokio::process::Command;

/// Longest the whole browser run may take (the script gives up at 30 s).
const DEADLINE: Duration = Duration::from_secs(45);

fn chromium() -> PathBuf {
    std::env::var_os("SWITCHYARD_CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), Into::into)
}

fn browser_dir() -> PathBuf {
    std::env::var_os("SWITCHYARD_BROWSER_DIR").map_or_else(
        || common::repo_root().join("gateway/tests/browser"),
        Into::into,
    )
}

#[tokio::test]
async fn the_console_shows_a_route_with_traffic_and_an_upstream_in_service() {
    let (chromium, dir) = (chromium(), browser_dir());
    assert!(
        chromium.is_file() && dir.join("node_modules/playwright-core").is_dir(),
        "needs Chromium ({chromium:?}) and playwright-core in {dir:?}: run scripts/test.sh"
    );
    let gw = TestGateway::demo_with(
        "",
        "reload: { watch_interval: 0s }\nplugins: [{ request_id: {} }]",
    )
    .await;
    for id in 1..=20 {
        let reply = gw.get(&format!("/v1/users/{}", id % 3 + 1)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let url = format!("http://{}/console", gw.admin);
    let shot = common::repo_root().join("target/admin-console.png");
    let script = dir.join("console.mjs");
    let child = Command::new("node")
        .arg(&script)
        .args([url.as_str(), "users", "users"])
        .arg(&shot)
        .env("SWITCHYARD_CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node {script:?}: {e}"));
    let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the browser run took longer than {DEADLINE:?}"))
        .expect("wait for node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{script:?} {url} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(stdout.contains("ready: ready"), "{stdout}");
    let route = stdout.lines().find(|l| l.starts_with("route: ")).unwrap();
    // name | service | upstream | plugins | bindings | req/s | errors | p99
    let cells: Vec<&str> = route["route: ".len()..].split(" | ").collect();
    assert_eq!(cells[0], "users", "{route}");
    assert_eq!(cells[1], "demo.users.v1.UserService", "{route}");
    assert_eq!(cells[3], "request_id", "{route}");
    assert_eq!(cells[6], "0.0 %", "no 5xx: {route}");
    assert!(cells[7].ends_with(" ms"), "a p99 figure: {route}");
    let upstream = stdout
        .lines()
        .find(|l| l.starts_with("upstream: "))
        .unwrap();
    assert!(upstream.contains("in service"), "{upstream}");
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_console_files_are_served_with_a_strict_policy_and_no_token() {
    let gw = TestGateway::demo_with("", "reload: { watch_interval: 0s }").await;
    let root = gw.admin_get("/").await;
    assert_eq!(root.status, StatusCode::FOUND);
    assert_eq!(root.headers["location"], "/console");
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let reply = gw.admin_get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        let content_type = reply.headers["content-type"].to_str().unwrap();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        let csp = reply.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );
    }
    let page = gw.admin_get("/console").await.text();
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no outside URL"
    );
    gw.stop().await;
}
