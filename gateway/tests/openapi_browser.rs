//! The API docs page proven in a real browser: headless Chromium, driven by
//! playwright-core (`tests/browser/docs.mjs`), opens `GET /docs` on a
//! gateway in front of the demo services and reads the operations Swagger
//! UI lists from the generated OpenAPI document. The script fails on any
//! console error, uncaught exception, CSP violation, failed or non-2xx
//! request, or request to a host other than 127.0.0.1 (no CDN); see
//! `common::browser` for what it needs.

mod common;

use common::{TestGateway, browser};

#[tokio::test]
async fn the_docs_page_lists_the_demos_operations_in_headless_chromium() {
    let gw = TestGateway::demo_with("", "openapi: { docs: /docs }").await;
    let url = format!("http://{}/docs", gw.addr);
    let stdout = browser::run("docs.mjs", &[&url]).await;
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
