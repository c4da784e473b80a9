//! Inbound webhook endpoints as the tests drive them: a gateway publishing
//! to NATS through the outbox ([`Setup`]), and signers (the official Python
//! `standardwebhooks` package, and the `hmac` crate).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::Method;
use sha2::Sha256;

use super::{Reply, TestGateway};

pub const NATS: &str = "nats://127.0.0.1:4222";
pub const REDIS: &str = "redis://127.0.0.1:6379";
pub const STD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const OLD_SECRET: &str = "whsec_b2xkLXNlY3JldC1vZi1hdC1sZWFzdC0yNC1ieXRlcw==";
pub const STRIPE_SECRET: &str = "whsec_stripe_test_secret_0123456789abcdef";

pub fn unique() -> String {
    format!("{:x}", fastrand::u64(..))
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A gateway whose `webhooks:` (YAML list items) publish to sink `bus`
/// (NATS at `url`, stream `stream` on `<subject>.>`), outbox in a temp dir.
pub struct Setup {
    pub gw: TestGateway,
    pub url: String,
    pub stream: String,
    pub dir: PathBuf,
}

impl Setup {
    pub async fn start(url: &str, webhooks: &str, outbox_extra: &str) -> Setup {
        let (stream, subject) = (format!("WH{}", unique()), format!("wh{}", unique()));
        let dir = std::env::temp_dir().join(format!("switchyard-webhooks-{}", unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let top = format!(
            r#"
events:
  outbox: {{ path: "{outbox}", flush_interval: 2ms, retry_initial: 50ms, retry_max: 200ms {outbox_extra} }}
  sinks:
    bus: {{ nats: {{ url: "{url}", ack_timeout: 500ms, stream: {{ name: {stream}, subjects: ["{subject}.>"] }} }} }}
webhooks:
{webhooks}
"#,
            outbox = dir.join("outbox.redb").display(),
            webhooks = webhooks.replace("SUBJECT", &subject),
        );
        let demo = super::spawn_demo().await;
        let yaml = super::demo_config(&demo, "", &top);
        let gw = TestGateway::start_yaml(demo, &yaml).await;
        Setup {
            gw,
            url: url.to_owned(),
            stream,
            dir,
        }
    }

    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        post_delivery(&self.gw, path, headers, body).await
    }

    /// Waits until the outbox has delivered everything.
    pub async fn drained(&self) {
        for _ in 0..500 {
            let text = self.gw.admin_get("/metrics").await.text();
            if text.contains("switchyard_outbox_depth{sink=\"bus\"} 0") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        panic!("the outbox did not drain");
    }

    /// Messages in the stream (after the outbox drained).
    pub async fn stream_messages(&self) -> u64 {
        let js = jetstream::new(async_nats::connect(&self.url).await.unwrap());
        let mut stream = js
            .get_stream(&self.stream)
            .await
            .expect("the stream exists");
        stream.info().await.unwrap().state.messages
    }

    pub async fn finish(self) {
        if let Ok(client) = async_nats::connect(&self.url).await {
            let _ = jetstream::new(client).delete_stream(&self.stream).await;
        }
        self.gw.stop().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// POSTs a JSON delivery with `headers` (the signature) to `gw`.
pub async fn post_delivery(
    gw: &TestGateway,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    gw.send(Method::POST, path, &all, Bytes::from(body.to_owned()))
        .await
}

/// A Standard Webhooks endpoint at `path` publishing `com.example.<body.type>`.
pub fn standard_endpoint(path: &str, extra: &str) -> String {
    format!(
        r#"  - path: {path}
    scheme: standard_webhooks
    secrets: ["{STD_SECRET}"]
    publish: {{ sink: bus, type: "com.example.{{body.type}}", destination: "SUBJECT.{{body.type}}" }}
    {extra}"#
    )
}

// === signers ===

/// The `webhook-signature` value from the official Python package.
pub fn python_sign(secret: &str, id: &str, timestamp: u64, body: &str) -> String {
    use std::io::Write;
    let root = super::repo_root();
    let python = std::env::var("SWITCHYARD_PYTHON").unwrap_or_else(|_| {
        let venv = root.join(".venv/bin/python");
        if venv.exists() {
            venv.display().to_string()
        } else {
            "python3".into()
        }
    });
    let help = "needs the Python `standardwebhooks` package: scripts/test.sh creates .venv, or \
                `python3 -m venv .venv && .venv/bin/pip install -r gateway/tests/peers/python/requirements.txt` \
                (interpreter: $SWITCHYARD_PYTHON, else .venv/bin/python, else python3)";
    let mut child = std::process::Command::new(&python)
        .arg(root.join("gateway/tests/peers/python/sign_webhook.py"))
        .args([secret, id, &timestamp.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}; {help}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sign_webhook.py failed: {}\n{help}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn hmac_sha256(key: &[u8], content: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(content.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Standard Webhooks headers signed with the `hmac` crate.
pub fn std_headers(secret: &str, id: &str, ts: u64, body: &str) -> Vec<(String, String)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(secret.trim_start_matches("whsec_")).unwrap();
    let signature = b64.encode(hmac_sha256(&key, &format!("{id}.{ts}.{body}")));
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        ("webhook-signature".into(), format!("v1,{signature}")),
    ]
}

pub fn stripe_header(ts: u64, body: &str) -> String {
    let hex: String = hmac_sha256(STRIPE_SECRET.as_bytes(), &format!("{ts}.{body}"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={ts},v1={hex}")
}

pub fn refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}
