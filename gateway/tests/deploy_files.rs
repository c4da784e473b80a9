//! The deployment files cannot rot: the Kubernetes manifests validate
//! against the Kubernetes API schemas (`kubernetes-validate --strict`, from
//! PyPI, installed in the test venv by scripts/test.sh: no cluster runs
//! here), the kustomization lists every one of them, the config in the
//! ConfigMap compiles, the drain fits in the pod's grace period, and the
//! image and the systemd unit provide what the manifests and docs expect.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard::config;
use switchyard::runtime::Runtime;

fn kubernetes() -> PathBuf {
    common::repo_root().join("deploy/kubernetes")
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(kubernetes())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    files
}

fn yaml(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_manifests_validate_against_the_kubernetes_schemas() {
    let python = std::env::var("SWITCHYARD_PYTHON").unwrap_or_else(|_| "python3".into());
    let files = manifests();
    assert!(files.len() >= 5, "{files:?}");
    let out = std::process::Command::new(&python)
        .args(["-m", "kubernetes_validate", "--strict", "--no-warn"])
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("No module named kubernetes_validate"),
        "kubernetes-validate is not installed for {python}: run scripts/test.sh (it installs gateway/tests/peers/python/requirements.txt into .venv)"
    );
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.matches(" passed for resource ").count(),
        files.len(),
        "{text}"
    );
}

#[test]
fn the_kustomization_lists_every_manifest() {
    let kustomization = yaml(&kubernetes().join("kustomization.yaml"));
    let mut listed: Vec<String> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    let files: Vec<String> = manifests()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, files);
}

/// The ConfigMap's `gateway.yaml`, its protos path pointed at the repo's.
fn configmap_config() -> config::LoadedConfig {
    let configmap = yaml(&kubernetes().join("configmap.yaml"));
    let text = configmap["data"]["gateway.yaml"].as_str().unwrap();
    let proto = common::repo_root().join("proto");
    let text = text.replace("/etc/switchyard/proto", &proto.display().to_string());
    config::parse(&kubernetes().join("configmap.yaml"), text).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn the_configmaps_config_compiles() {
    let runtime = Runtime::check(configmap_config())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!runtime.table.is_empty());
}

#[test]
fn the_drain_fits_in_the_pods_grace_period_and_the_probes_use_the_admin_port() {
    let loaded = configmap_config();
    let deployment = yaml(&kubernetes().join("deployment.yaml"));
    let pod = &deployment["spec"]["template"]["spec"];
    let grace = Duration::from_secs(pod["terminationGracePeriodSeconds"].as_u64().unwrap());
    let gateway = &pod["containers"][0];
    let pre_stop: u64 = gateway["lifecycle"]["preStop"]["exec"]["command"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let drain = loaded.config.limits.shutdown_grace.0 + Duration::from_secs(pre_stop);
    assert!(
        drain < grace,
        "preStop + shutdown_grace {drain:?} must fit in {grace:?}"
    );
    assert_eq!(gateway["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(gateway["livenessProbe"]["httpGet"]["path"], "/healthz");
    let admin_port = gateway["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "admin")
        .unwrap()["containerPort"]
        .as_u64()
        .unwrap();
    assert!(
        loaded
            .config
            .admin
            .address
            .ends_with(&format!(":{admin_port}"))
    );
    // The config mounted where the container's args look for it.
    let args: Vec<&str> = gateway["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        ["run", "--config", "/etc/switchyard/config/gateway.yaml"]
    );
}

#[test]
fn the_image_and_the_unit_provide_what_the_manifests_and_docs_expect() {
    let root = common::repo_root();
    let dockerfile = std::fs::read_to_string(root.join("deploy/Dockerfile")).unwrap();
    for needed in [
        "COPY proto /etc/switchyard/proto",
        "/usr/local/bin/switchyard-demo",
        "USER 10001:10001",
        "STOPSIGNAL SIGTERM",
    ] {
        assert!(dockerfile.contains(needed), "Dockerfile lacks {needed:?}");
    }
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l == "target/"),
        "the build context leaves target/ out"
    );
    let unit = std::fs::read_to_string(root.join("deploy/switchyard.service")).unwrap();
    for needed in [
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillSignal=SIGTERM",
        "StateDirectory=switchyard",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit.contains(needed), "switchyard.service lacks {needed:?}");
    }
}

/// The metric names an expression uses (`switchyard_…`), histogram series
/// (`_bucket`, `_sum`, `_count`) named by their family.
fn metric_names(expr: &str, known: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("switchyard_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| known.iter().any(|k| k == f))
            })
            .map_or(name.clone(), str::to_owned);
        out.push(family);
    }
    out
}

#[test]
fn the_grafana_dashboard_uses_only_metrics_the_gateway_has() {
    let path = common::repo_root().join("deploy/grafana/switchyard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let metrics = switchyard::observability::Metrics::new();
    let known = metrics.names();
    let mut used = std::collections::BTreeSet::new();
    let mut panels = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        let Some(targets) = panel["targets"].as_array() else {
            continue; // a row
        };
        panels += 1;
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            for name in metric_names(expr, known) {
                assert!(
                    known.contains(&name),
                    "panel {:?} uses {name}, which the gateway does not have",
                    panel["title"]
                );
                used.insert(name);
            }
        }
    }
    assert!(panels >= 20, "{panels} panels");
    // The RED metrics, upstream, GraphQL, events and reloads are all there.
    for needed in [
        "switchyard_http_requests_total",
        "switchyard_http_request_duration_seconds",
        "switchyard_upstream_requests_total",
        "switchyard_graphql_operations_total",
        "switchyard_outbox_depth",
        "switchyard_config_reload_total",
    ] {
        assert!(used.contains(needed), "the dashboard lacks {needed}");
    }
}
