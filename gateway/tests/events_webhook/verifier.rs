//! The independent signature check: the official Python `standardwebhooks`
//! library (tests/peers/python/verify_webhook.py) run over the deliveries.

use std::path::PathBuf;

use base64::Engine as _;
use serde_json::{Value, json};

use super::common;
use super::receiver::Hit;

fn python() -> PathBuf {
    std::env::var_os("SWITCHYARD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::repo_root().join(".venv/bin/python"))
}

/// Per delivery, "ok" or "error: …" from the official library. Fails
/// (never skips) when the venv is missing.
pub fn verify(secret: &str, hits: &[Hit]) -> Vec<String> {
    let python = python();
    let help = format!(
        "this test verifies signatures with the Python `standardwebhooks` package.\n\
         Run `scripts/test.sh` (it creates the venv), or by hand:\n  \
         python3 -m venv .venv && .venv/bin/pip install -r gateway/tests/peers/python/requirements.txt\n\
         (interpreter tried: {python:?}, from $SWITCHYARD_PYTHON or else .venv/bin/python)"
    );
    let script = common::repo_root().join("gateway/tests/peers/python/verify_webhook.py");
    let deliveries: Vec<Value> = hits
        .iter()
        .map(|hit| {
            let headers: serde_json::Map<String, Value> = hit
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or_default())))
                .collect();
            json!({
                "headers": headers,
                "body_base64": base64::engine::general_purpose::STANDARD.encode(&hit.body),
            })
        })
        .collect();
    let mut child = std::process::Command::new(&python)
        .arg(&script)
        .arg(secret)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python:?}: {e}\n{help}"));
    let input = serde_json::to_vec(&deliveries).expect("JSON");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &input).expect("write");
    let out = child.wait_with_output().expect("verifier runs");
    assert!(
        out.status.success(),
        "verify_webhook.py failed:\n{}\n{help}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON list of verdicts")
}
