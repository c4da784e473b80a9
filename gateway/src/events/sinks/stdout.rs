//! The `stdout` sink: each event's CloudEvent JSON as one line on standard
//! output, for local development and piping into `jq`. A line is written and
//! flushed whole under a process-wide lock, so events from several sinks never
//! interleave (other writers to stdout, such as logs, are not under it).

use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::{Outgoing, Sink, SinkError};

/// Serializes the lines of every [`StdoutSink`] in the process.
static STDOUT: Mutex<()> = Mutex::const_new(());

/// The `stdout` sink: no settings.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {}

/// Writes each event as one line on standard output.
#[derive(Debug, Default)]
pub struct StdoutSink {}

impl StdoutSink {
    pub fn new(_config: StdoutSinkConfig) -> StdoutSink {
        StdoutSink {}
    }
}

impl Sink for StdoutSink {
    fn publish<'a>(&'a self, event: &'a Outgoing) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let line = line(&event.body);
            let _serialized = STDOUT.lock().await;
            let mut out = tokio::io::stdout();
            let written = async {
                out.write_all(&line).await?;
                out.flush().await
            };
            written
                .await
                .map_err(|e| SinkError::Transient(format!("cannot write to stdout: {e}")))
        })
    }
}

/// `body` as one line: raw CR and LF become spaces (in JSON they can only be
/// whitespace between tokens, so the JSON is unchanged), then a newline.
fn line(body: &[u8]) -> Vec<u8> {
    let mut line: Vec<u8> = body
        .iter()
        .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
        .collect();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_one_line() {
        assert_eq!(line(br#"{"id":"1"}"#), b"{\"id\":\"1\"}\n");
        assert_eq!(line(b""), b"\n");

        let pretty = b"{\r\n  \"id\": \"1\",\n  \"data\": \"a\\nb\"\n}\n";
        let one = line(pretty);
        assert_eq!(one.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(one.ends_with(b"\n"));
        let parsed: serde_json::Value = serde_json::from_slice(&one).expect("still JSON");
        assert_eq!(parsed, serde_json::json!({ "id": "1", "data": "a\nb" }));
    }

    #[tokio::test]
    async fn publishes() {
        let sink = StdoutSink::new(StdoutSinkConfig {});
        let event = Outgoing {
            id: "1".to_owned(),
            destination: "ignored".to_owned(),
            body: br#"{"id":"1"}"#.to_vec(),
            ..Default::default()
        };
        sink.publish(&event).await.expect("written");
    }
}
