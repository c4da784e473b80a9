//! The admin console proven in a real browser: headless Chromium, driven by
//! playwright-core (`tests/browser/console.mjs`), opens `/console` on the
//! admin listener of a gateway that has served traffic, and waits until
//! the page shows the route with its traffic figures and the upstream in
//! service; it saves a screenshot (`target/admin-console.png`). The script
//! fails on any console error, uncaught exception, CSP violation, failed
//! or non-2xx request, or request to another host (no CDN); see
//! `common::browser` for what it needs.

mod common;

use common::{TestGateway, browser};
use http::StatusCode;

#[tokio::test]
async fn the_console_shows_a_route_with_traffic_and_an_upstream_in_service() {
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
    let shot_path = shot.display().to_string();
    let stdout = browser::run("console.mjs", &[&url, "users", "users", &shot_path]).await;
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
