//! `switchyard events status|dead`: what waits in the outbox and what was
//! dead-lettered, asked of a running gateway's admin listener and read from
//! a stopped gateway's outbox file; the same on `/admin/events/dead/<sink>`.
//! `switchyard validate` beside a running gateway leaves its outbox alone.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::TestGateway;
use http::StatusCode;
use serde_json::{Value, json};

fn events_cli(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["--log", "warn", "events", "--config"])
        .arg(config)
        .args(args)
        .output()
        .expect("run switchyard events");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// Sink `down` never answers (a closed port): its events wait. Sink `bad`
/// gets an invalid NATS subject: refused for good, dead-lettered.
fn config_text(demo: &switchyard_demo::DemoServer, dir: &Path, admin: &str) -> String {
    let top = format!(
        r#"
events:
  outbox: {{ path: "{outbox}", flush_interval: 2ms, retry_initial: 50ms, retry_max: 100ms }}
  sinks:
    down: {{ nats: {{ url: "nats://127.0.0.1:1", ack_timeout: 200ms }} }}
    bad: {{ nats: {{ url: "nats://127.0.0.1:4222", ack_timeout: 1s }} }}
"#,
        outbox = dir.join("outbox.redb").display(),
    );
    common::demo_config(demo, "", &top)
        .replace(
            "upstream: orders ",
            r#"upstream: orders, events: [
              { method: CreateOrder, type: order.created, sink: down, destination: orders.created },
              { method: CreateOrder, type: order.created, sink: bad, destination: "not a subject" }] "#,
        )
        .replace(
            "admin: { address: \"127.0.0.1:0\" }",
            &format!("admin: {{ address: \"{admin}\" }}"),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_status_and_dead_letters_from_the_admin_listener_and_the_file() {
    let dir = std::env::temp_dir().join(format!("switchyard-cli-{:x}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let demo = common::spawn_demo().await;
    let yaml = config_text(&demo, &dir, "127.0.0.1:0");
    let gw = TestGateway::start_yaml(demo, &yaml).await;
    for _ in 0..3 {
        let reply = gw
            .post_json(
                "/v1/orders",
                &json!({"userId": "1", "items": [{"sku": "A-1", "qty": 1}]}).to_string(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    // The running gateway holds the outbox: the CLI asks its admin listener.
    let file = dir.join("gateway.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let admin = gw.admin.to_string();
    let mut status = Value::Null;
    for _ in 0..100 {
        let (ok, stdout, stderr) = events_cli(&file, &["--admin", &admin, "--json", "status"]);
        assert!(ok, "{stderr}");
        status = json_of(&stdout);
        if status["sinks"][0]["dead_lettered"] == 3 && status["sinks"][1]["waiting"] == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status["sinks"][0]["name"], "bad", "{status}");
    assert_eq!(status["sinks"][0]["dead_lettered"], 3, "{status}");
    assert_eq!(status["sinks"][1]["name"], "down", "{status}");
    assert_eq!(status["sinks"][1]["waiting"], 3, "{status}");
    assert!(status["sinks"][1]["oldest_age_seconds"].as_f64().unwrap() >= 0.0);

    // `validate` compiles the config without opening the outbox the running
    // gateway holds (redb would refuse: it is locked) and delivers nothing.
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["--log", "warn", "validate"])
        .arg(&file)
        .output()
        .expect("run switchyard validate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(": ok"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, stdout, _) = events_cli(&file, &["--admin", &admin, "--json", "status"]);
    assert_eq!(json_of(&stdout)["sinks"][1]["waiting"], 3, "still waiting");

    let (ok, stdout, stderr) =
        events_cli(&file, &["--admin", &admin, "dead", "bad", "--limit", "2"]);
    assert!(ok, "{stderr}");
    let dead = json_of(&stdout);
    let letters = dead["dead_letters"].as_array().expect("a list");
    assert_eq!(letters.len(), 2, "--limit: {dead}");
    assert_eq!(letters[0]["destination"], "not a subject");
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("refused") && reason.contains("whitespace"),
        "{reason}"
    );
    let event: Value = serde_json::from_str(letters[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        event["id"], letters[0]["id"],
        "the stored CloudEvent is shown"
    );

    let reply = gw.admin_get("/admin/events/dead/nope").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.text().contains("[bad, down]"), "{}", reply.text());
    let reply = gw.admin_get("/admin/events/dead/bad?limit=x").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    // Stopped: the CLI reads the outbox file (nothing answers on the admin address).
    drop(gw);
    let (ok, stdout, stderr) = events_cli(&file, &["--admin", "127.0.0.1:1", "status"]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("outbox: 3 waiting"), "{stdout}");
    assert!(
        lines
            .iter()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()[..2] == ["down", "3"]),
        "{stdout}"
    );
    let (ok, stdout, stderr) = events_cli(&file, &["--admin", "127.0.0.1:1", "dead", "bad"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        json_of(&stdout)["dead_letters"].as_array().unwrap().len(),
        3
    );
    let (ok, _, stderr) = events_cli(&file, &["--admin", "127.0.0.1:1", "dead", "nope"]);
    assert!(!ok && stderr.contains("no sink \"nope\""), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}
