//! Every YAML under `config/` is a real, complete config: it parses and
//! compiles (protos, upstreams, routes, plugins). And `switchyard validate`
//! reports a broken one with file, line, column and key, exiting non-zero.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use switchyard::config;
use switchyard::runtime::Runtime;

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(yaml_files(&path));
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn every_config_file_in_the_repository_compiles() {
    let files = yaml_files(&common::repo_root().join("config"));
    assert!(
        files.len() >= 6,
        "expected the demo config and the examples, found {files:?}"
    );
    for file in files {
        let loaded = config::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let runtime = Runtime::check(loaded)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !runtime.table.is_empty(),
            "{} exposes no route",
            file.display()
        );
    }
}

#[test]
fn validate_accepts_the_demo_config() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["validate", "config/gateway.yaml"])
        .current_dir(common::repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("config/gateway.yaml: ok (3 routes,"),
        "{stdout}"
    );
}

fn validate_text(name: &str, text: &str) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("sy-validate-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gateway.yaml");
    std::fs::write(
        &file,
        text.replace(
            "PROTO",
            &common::repo_root().join("proto").display().to_string(),
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&file.display().to_string(), "gateway.yaml");
    (out.status.success(), stderr)
}

#[test]
fn validate_reports_an_unknown_upstream_with_its_location() {
    let (ok, stderr) = validate_text(
        "upstream",
        "protos: {sources: [PROTO]}\nupstreams:\n  users: {endpoints: [http://127.0.0.1:1]}\nroutes:\n  - service: demo.users.v1.UserService\n    upstream: user\n",
    );
    assert!(!ok);
    assert_eq!(
        stderr,
        "error: gateway.yaml:6:5: at `routes[0].upstream`: unknown upstream `user`; defined upstreams: [users]\n  |\n6 |     upstream: user\n  |     ^\n"
    );
}

#[test]
fn validate_reports_a_service_missing_from_the_protos() {
    let (ok, stderr) = validate_text(
        "service",
        "protos: {sources: [PROTO]}\nupstreams:\n  u: {endpoints: [http://127.0.0.1:1]}\nroutes:\n  - service: demo.users.v1.UserServis\n    upstream: u\n",
    );
    assert!(!ok);
    assert!(
        stderr.starts_with("error: gateway.yaml:5:5: at `routes[0].service`: service `demo.users.v1.UserServis` is not in the loaded protos; known services: ["),
        "{stderr}"
    );
}

#[test]
fn validate_reports_conflicting_bindings_across_routes() {
    let (ok, stderr) = validate_text(
        "conflict",
        "protos: {sources: [PROTO]}\nupstreams:\n  u: {endpoints: [http://127.0.0.1:1]}\nroutes:\n  - {name: a, service: demo.users.v1.UserService, upstream: u}\n  - {name: b, service: demo.users.v1.UserService, upstream: u}\n",
    );
    assert!(!ok);
    assert!(
        stderr.starts_with("error: gateway.yaml:6:5: at `routes[1]`: HTTP binding conflict: "),
        "{stderr}"
    );
    assert!(
        stderr.contains("of demo.users.v1.UserService.GetUser conflicts with"),
        "{stderr}"
    );
    assert!(stderr.contains("(route \"a\")"), "{stderr}");
}

#[test]
fn validate_reports_a_yaml_type_error() {
    let (ok, stderr) = validate_text(
        "type",
        "protos: {sources: [PROTO]}\nlimits: {max_headers: many}\n",
    );
    assert!(!ok);
    assert!(
        stderr.starts_with("error: gateway.yaml:2:23: at `limits.max_headers`: "),
        "{stderr}"
    );
}

#[test]
fn validate_reports_a_broken_proto_with_its_file_and_line() {
    let dir = std::env::temp_dir().join(format!("sy-validate-proto-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("broken.proto"),
        "syntax = \"proto3\";\npackage x;\nmessage M {\n  int32 n = one;\n}\n",
    )
    .unwrap();
    let text = format!("protos: {{sources: [\"{}\"]}}\n", dir.display());
    let (ok, stderr) = validate_text("proto", &text);
    std::fs::remove_dir_all(&dir).ok();
    assert!(!ok);
    assert!(
        stderr.starts_with("error: gateway.yaml:1:10: at `protos.sources`: broken.proto:4:"),
        "{stderr}"
    );
}
