//! The API docs page proven in a real browser: headless Chromium, driven by
//! playwright-core (`tests/browser/docs.mjs`), opens `GET /docs` on a
//! gateway in front of the demo services and reads the operations Swagger
//! UI lists from the generated OpenAPI document. The script fails on any
//! console error, uncaught exception, CSP violation, failed or non-2xx
//! request, or request to a host other than 127.0.0.1 (no CDN).
//!
//! Needs what `tests/graphiql_browser.rs` needs (Node.js, Chromium,
//! `gateway/tests/browser/node_modules`); `scripts/test.sh` installs them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::TestGateway;
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

/// Fails (never skips) when the browser side is missing, like the Python
/// peer test: a skipped browser test would silently stop proving anything.
fn require_browser(chromium: &Path, dir: &Path) {
    let help = format!(
        "the docs-page browser test needs Node.js, Chromium and playwright-core.\n\
         Run `scripts/test.sh` (it installs them), or by hand:\n  \
         apt-get install chromium && (cd gateway/tests/browser && npm ci)\n  \
         SWITCHYARD_CHROMIUM=/usr/bin/chromium cargo test -p switchyard --test openapi_browser\n\
         (Chromium tried: {chromium:?}, from $SWITCHYARD_CHROMIUM or else /usr/bin/chromium;\n \
         scripts tried: {dir:?}, from $SWITCHYARD_BROWSER_DIR or else gateway/tests/browser)"
    );
    assert!(chromium.is_file(), "no Chromium at {chromium:?}\n{help}");
    assert!(
        dir.join("node_modules/playwright-core/package.json")
            .is_file(),
        "playwright-core is not installed in {dir:?}\n{help}"
    );
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|out| out.status.success()),
        "cannot run `node`\n{help}"
    );
}

#[tokio::test]
async fn the_docs_page_lists_the_demos_operations_in_headless_chromium() {
    let chromium = chromium();
    let dir = browser_dir();
    require_browser(&chromium, &dir);

    let gw = TestGateway::demo_with("", "openapi: { docs: /docs }").await;
    let url = format!("http://{}/docs", gw.addr);
    let script = dir.join("docs.mjs");
    let started = Instant::now();
    let child = Command::new("node")
        .arg(&script)
        .arg(&url)
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
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("browser run: {elapsed:?}\n{stdout}");
    assert!(
        out.status.success(),
        "{script:?} {url} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    for operation in [
        "GET /v1/users/{id}",
        "POST /v1/orders",
        "POST /v1/orders/{id}:cancel",
        "GET /v1/inventory/{sku}",
    ] {
        assert!(
            stdout.lines().any(|l| l.trim() == operation),
            "{operation} is not listed:\n{stdout}"
        );
    }
    gw.stop().await;
}
