//! The `webhook` sink: HTTP POST per Standard Webhooks. Not built yet: connecting fails.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Outgoing, Sink, SinkError};
use futures_util::future::BoxFuture;

/// A webhook sink.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSinkConfig {
    /// The endpoint.
    pub url: String,
}

/// POSTs events to an HTTP endpoint.
pub struct WebhookSink;

impl WebhookSink {
    /// `deliveries` counts attempts by `[sink name, HTTP status]`.
    pub async fn connect(
        _name: &str,
        _config: &WebhookSinkConfig,
        _deliveries: prometheus::IntCounterVec,
    ) -> Result<WebhookSink, String> {
        Err("webhook sink: not available yet".to_owned())
    }
}

impl Sink for WebhookSink {
    fn publish<'a>(&'a self, _event: &'a Outgoing) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async { Err(SinkError::Transient("not available".into())) })
    }
}
