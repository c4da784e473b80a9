//! NATS for the event tests: a `nats-server` of a test's own (to play
//! outages without touching the machine's server), spare ports, and a
//! JetStream reader.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use serde_json::Value;

/// A loopback port nothing listens on (at the time of asking).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (up to 10 s) until something accepts connections on `port`.
pub async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on {port}");
}

/// A nats-server of the test's own, with JetStream storing in `dir`;
/// killed when dropped.
pub struct OwnNats {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl OwnNats {
    pub fn start(port: u16, dir: &Path) -> OwnNats {
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed (scripts/test.sh installs it)");
        OwnNats {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    pub async fn ready(&self) {
        wait_for_port(self.port).await;
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stopped and started again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        *self = OwnNats::start(self.port, &self.dir.clone());
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The messages of `stream` in stream order, as (Nats-Msg-Id, CloudEvent):
/// until `want` of them, or no message for `quiet`. Waits up to 10 s for
/// the stream (the relay creates it with its first publish).
pub async fn consume(
    url: &str,
    stream: &str,
    want: usize,
    quiet: Duration,
) -> Vec<(String, Value)> {
    let client = async_nats::connect(url).await.expect("NATS is reachable");
    let js = jetstream::new(client);
    let mut found = None;
    for _ in 0..200 {
        if let Ok(s) = js.get_stream(stream).await {
            found = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let consumer = found
        .expect("the sink created the stream")
        .create_consumer(jetstream::consumer::pull::Config::default())
        .await
        .unwrap();
    let mut messages = consumer
        .stream()
        .expires(Duration::from_millis(500))
        .messages()
        .await
        .unwrap();
    let mut out = Vec::new();
    while out.len() < want {
        let Ok(Some(message)) = tokio::time::timeout(quiet, messages.next()).await else {
            break;
        };
        let message = message.unwrap();
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        out.push((id, serde_json::from_slice(&message.payload).unwrap()));
        message.ack().await.unwrap();
    }
    out
}
