//! schemathesis (PyPI) against the demo gateway, driven by the OpenAPI
//! document the gateway serves: every REST operation is called with data
//! generated from the document (examples, coverage, fuzzing and stateful
//! phases, a bounded number of examples each), and the run must find no
//! server error and no response that breaks the document.
//!
//! The server-streaming `orders:watch` is left out: it streams until the
//! client leaves, which a request-response fuzzer reads as a timeout.

mod common;

use std::path::PathBuf;

use common::TestGateway;

/// The `schemathesis` command of the test venv (next to its python).
fn schemathesis() -> PathBuf {
    let python = std::env::var("SWITCHYARD_PYTHON").unwrap_or_else(|_| "python3".into());
    let python = PathBuf::from(python);
    let beside = python.with_file_name("schemathesis");
    if beside.is_file() {
        beside
    } else {
        PathBuf::from("schemathesis")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let gw = TestGateway::demo_with("", "openapi: {}").await;
    let url = format!("http://{}/openapi.json", gw.addr);
    let command = schemathesis();
    let out = tokio::process::Command::new(&command)
        .args(["run", &url])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--max-examples", "10", "--seed", "1"])
        .args(["--exclude-path-regex", "orders:watch"])
        .args(["--request-timeout", "5"])
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {command:?} (scripts/test.sh installs it in .venv; set SWITCHYARD_PYTHON): {e}"
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("passed"), "{stdout}");
    gw.stop().await;
}
