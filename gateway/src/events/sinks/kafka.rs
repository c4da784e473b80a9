//! The `kafka` sink: Kafka (rskafka). Not built yet: connecting fails.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Outgoing, Sink, SinkError};
use futures_util::future::BoxFuture;

/// A Kafka sink.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
}

/// Publishes events to Kafka.
pub struct KafkaSink;

impl KafkaSink {
    pub async fn connect(_config: &KafkaSinkConfig) -> Result<KafkaSink, String> {
        Err("kafka sink: not available yet".to_owned())
    }
}

impl Sink for KafkaSink {
    fn publish<'a>(&'a self, _event: &'a Outgoing) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async { Err(SinkError::Transient("not available".into())) })
    }
}
