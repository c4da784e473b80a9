//! The `webhook` sink: each event is an HTTP POST to an endpoint, signed
//! per the Standard Webhooks spec (<https://www.standardwebhooks.com>).
//!
//! - **Request**: `POST <url>[/<destination>]` with `webhook-id` (the event
//!   id, the same on every attempt, so receivers deduplicate on it),
//!   `webhook-timestamp` (this attempt's Unix time) and `webhook-signature`
//!   ([`signing`]). The body is the structured CloudEvent
//!   (`application/cloudevents+json`), or in `mode: binary` the event's
//!   data with its attributes as `ce-*` headers.
//! - **Answers** ([`response`]): 2xx delivered; 410 Gone dead-letters the
//!   event at once; 429/503 with `Retry-After` wait that long; anything else
//!   (and no answer) is retried on `retry_schedule`, after which the relay
//!   dead-letters the event. Redirects are not followed. At most
//!   [`MAX_RESPONSE_BODY`] of an answer is read (and quoted in errors).
//! - **Targets** ([`ssrf`], [`connector`]): the host is resolved once per
//!   connection, every address is checked against the SSRF guard, and the
//!   connection goes to a checked address. A URL whose host is a blocked
//!   literal address is a config error; a name resolving to a blocked
//!   address fails the attempt (counted `error`, retried: DNS answers
//!   change, and the schedule bounds it).
//! - **Metrics**: `switchyard_webhook_deliveries_total{sink,status}` counts
//!   every attempt by HTTP status, or `error` when there was no answer.

mod connector;
mod response;
mod signing;
mod ssrf;
mod target;
mod tls;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prometheus::IntCounterVec;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::time::Instant;

use super::{Outgoing, Sink, SinkError};
use crate::config::units::HumanDuration;
use crate::events::cloudevent::{self, ContentMode, STRUCTURED_CONTENT_TYPE};
use connector::{ConnectError, GuardedConnector};
use signing::{Secret, Signer};
use target::Target;

/// The most of an endpoint's answer that is read (the rest is dropped with
/// the connection): answers are discarded, only quoted in errors.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// Idle connections to the endpoint are kept this long for the next event.
const POOL_IDLE: Duration = Duration::from_secs(30);

/// A webhook sink.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSinkConfig {
    /// The endpoint, `https://…` (or `http://`). An event's `destination`,
    /// when not empty, is appended to its path after a `/`
    /// (percent-encoded; `.`/`..` segments are refused); its query stays.
    pub url: String,
    /// Signing secrets in the Standard Webhooks format, `whsec_<base64>`
    /// (24 to 64 random bytes), e.g. `"${WEBHOOK_SECRET}"`. Each one signs
    /// every delivery (`webhook-signature` holds one `v1,…` per secret), so
    /// a receiver can roll: add the new secret, switch the receiver, remove
    /// the old one.
    pub secrets: Vec<String>,
    /// `structured` (default): the whole CloudEvent is the body
    /// (`application/cloudevents+json`); `binary`: the data is the body and
    /// the attributes are `ce-*` headers.
    #[serde(default)]
    pub mode: ContentMode,
    /// Extra request headers, e.g. `authorization: "Bearer ${TOKEN}"`.
    /// `webhook-*`, `ce-*`, `content-type`, `host` and transport headers
    /// are the sink's own.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The longest wait for one attempt: connection, request and the
    /// answer's headers. Default 10s.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// The longest wait for the name to resolve and the TCP connection to
    /// open (within `timeout`). Default 10s.
    #[serde(default = "default_timeout")]
    pub connect_timeout: HumanDuration,
    /// The waits after each failed attempt (each with ±50% jitter); once
    /// they are used up the event is dead-lettered. Default the Standard
    /// Webhooks recommendation: [5s, 5m, 30m, 2h, 5h, 10h, 10h], eight
    /// attempts over about 28 hours. `[]`: one attempt.
    #[serde(default = "default_retry_schedule")]
    pub retry_schedule: Vec<HumanDuration>,
    /// Networks deliveries may reach although they are not public (the SSRF
    /// guard refuses loopback, private, link-local, CGNAT, unique-local,
    /// multicast and other reserved addresses otherwise): CIDRs such as
    /// `10.20.0.0/16` or single addresses such as `127.0.0.1`.
    #[serde(default)]
    pub allow_networks: Vec<String>,
    /// A PEM file of CA certificates that `https://` endpoints are checked
    /// against instead of the public web roots built into the gateway (an
    /// internal endpoint with a private CA), relative to the config file.
    #[serde(default)]
    pub ca_file: Option<String>,
}

impl fmt::Debug for WebhookSinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the secrets nor the header values; not the URL either (its
        // query may hold a token).
        f.debug_struct("WebhookSinkConfig")
            .field("secrets", &self.secrets.len())
            .field("mode", &self.mode)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry_schedule", &self.retry_schedule)
            .field("allow_networks", &self.allow_networks)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

fn default_retry_schedule() -> Vec<HumanDuration> {
    [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600]
        .into_iter()
        .map(HumanDuration::from_secs)
        .collect()
}

/// POSTs events to an HTTP endpoint (see the module docs).
pub struct WebhookSink {
    target: Target,
    client: Client<tls::Connector, Full<Bytes>>,
    signer: Signer,
    headers: HeaderMap,
    mode: ContentMode,
    timeout: Duration,
    schedule: Vec<Duration>,
    /// `switchyard_webhook_deliveries_total`, this sink's label set.
    deliveries: IntCounterVec,
    name: String,
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSink")
            .field("name", &self.name)
            .field("endpoint", &self.target.authority())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The parts of one request that do not depend on the attempt.
struct Prepared {
    uri: Uri,
    /// `POST host/path` for messages (no query: it may hold a token).
    what: String,
    /// The event id: signed as text, sent as `webhook-id`.
    id: String,
    id_header: HeaderValue,
    payload: Payload,
}

/// What is sent of an event: the body and the headers describing it.
struct Payload {
    content_type: HeaderValue,
    /// `ce-*` headers in binary mode.
    attributes: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl WebhookSink {
    /// Checks `config` (URL, secrets, headers, timeouts, allowed networks)
    /// and builds the client; connects nothing yet. Errors are config
    /// errors. `ca_file` is relative to `base_dir`. `deliveries` counts
    /// attempts by `[sink name, HTTP status]`.
    pub async fn connect(
        name: &str,
        config: &WebhookSinkConfig,
        base_dir: &Path,
        deliveries: IntCounterVec,
    ) -> Result<WebhookSink, String> {
        let fail = |e: String| format!("webhook sink: {e}");
        let guard = Arc::new(ssrf::Guard::new(&config.allow_networks).map_err(fail)?);
        let target = Target::parse(&config.url, &guard).map_err(fail)?;
        if target.is_https() && !tls::HTTPS {
            return Err(fail(
                "`url`: https:// is not available in this build (the gateway was built without TLS for webhooks); use http://".to_owned(),
            ));
        }
        let secrets = config
            .secrets
            .iter()
            .enumerate()
            .map(|(i, s)| Secret::parse(s).map_err(|e| fail(format!("`secrets[{i}]`: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let signer = Signer::new(secrets).map_err(fail)?;
        let headers = target::extra_headers(&config.headers).map_err(fail)?;
        let (timeout, connect_timeout) = (config.timeout.0, config.connect_timeout.0);
        if timeout.is_zero() || connect_timeout.is_zero() {
            return Err(fail(
                "`timeout` and `connect_timeout` must be more than 0".to_owned(),
            ));
        }
        let ca_file = config.ca_file.as_ref().map(|f| base_dir.join(f));
        if ca_file.is_some() && !target.is_https() {
            return Err(fail("`ca_file` is for an https:// `url`".to_owned()));
        }
        let inner = GuardedConnector::new(guard, connect_timeout);
        let connector = tls::connector(inner, ca_file.as_deref()).map_err(fail)?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(1)
            .build(connector);
        Ok(WebhookSink {
            target,
            client,
            signer,
            headers,
            mode: config.mode,
            timeout,
            schedule: config.retry_schedule.iter().map(|d| d.0).collect(),
            deliveries,
            name: name.to_owned(),
        })
    }

    /// The request parts for `event`; an error is permanent (the event can
    /// never make a request: a bad destination, id or binary body).
    fn prepare(&self, event: &Outgoing) -> Result<Prepared, String> {
        let uri = self.target.uri_for(&event.destination)?;
        let what = format!("POST {}{}", self.target.authority(), uri.path());
        let id_header = HeaderValue::try_from(event.id.as_str())
            .map_err(|_| format!("event id {:?} cannot be a webhook-id header", event.id))?;
        let payload = match self.mode {
            ContentMode::Structured => Payload {
                content_type: HeaderValue::from_static(STRUCTURED_CONTENT_TYPE),
                attributes: Vec::new(),
                body: Bytes::copy_from_slice(&event.body),
            },
            ContentMode::Binary => binary_payload(&event.body)?,
        };
        Ok(Prepared {
            uri,
            what,
            id: event.id.clone(),
            id_header,
            payload,
        })
    }

    /// One attempt: sends, reads (a bounded part of) the answer, counts it.
    async fn attempt(&self, prepared: &Prepared) -> Result<(), SinkError> {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let signature = self
            .signer
            .sign(&prepared.id, timestamp, &prepared.payload.body);
        let request = self
            .request(prepared, timestamp, &signature)
            .map_err(|e| SinkError::Permanent(format!("{}: {e}", prepared.what)))?;
        let deadline = Instant::now() + self.timeout;
        let answer = tokio::time::timeout_at(deadline, self.client.request(request)).await;
        let response = match answer {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                self.count("error");
                return Err(SinkError::Transient(format!(
                    "{}: {}",
                    prepared.what,
                    describe(&e)
                )));
            }
            Err(_) => {
                self.count("error");
                return Err(SinkError::Transient(format!(
                    "{}: no answer within {:?}",
                    prepared.what, self.timeout
                )));
            }
        };
        self.count(response.status().as_str());
        let (parts, body) = response.into_parts();
        // A slow body does not undo a delivery: read what arrives in time.
        let body = tokio::time::timeout_at(deadline, read_bounded(body))
            .await
            .unwrap_or_default();
        response::outcome(&prepared.what, parts.status, &parts.headers, &body)
    }

    fn request(
        &self,
        prepared: &Prepared,
        timestamp: u64,
        signature: &str,
    ) -> Result<Request<Full<Bytes>>, http::Error> {
        let mut builder = Request::post(prepared.uri.clone()).header(
            USER_AGENT,
            concat!("switchyard/", env!("CARGO_PKG_VERSION")),
        );
        if let Some(headers) = builder.headers_mut() {
            headers.extend(self.headers.clone());
        }
        let mut builder = builder
            .header(CONTENT_TYPE, prepared.payload.content_type.clone())
            .header("webhook-id", prepared.id_header.clone())
            .header("webhook-timestamp", timestamp)
            .header("webhook-signature", signature);
        for (name, value) in &prepared.payload.attributes {
            builder = builder.header(name, value);
        }
        builder.body(Full::new(prepared.payload.body.clone()))
    }

    fn count(&self, status: &str) {
        self.deliveries
            .with_label_values(&[self.name.as_str(), status])
            .inc();
    }
}

impl Sink for WebhookSink {
    fn publish<'a>(&'a self, event: &'a Outgoing) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let prepared = self
                .prepare(event)
                .map_err(|e| SinkError::Permanent(format!("event {}: {e}", event.id)))?;
            self.attempt(&prepared).await
        })
    }

    fn retry_schedule(&self) -> Option<&[Duration]> {
        Some(&self.schedule)
    }
}

/// Binary mode: the data's media type, the attributes as `ce-*` headers
/// (values percent-encoded per the CloudEvents HTTP binding), the data.
fn binary_payload(structured: &[u8]) -> Result<Payload, String> {
    let parts = cloudevent::binary(structured)?;
    let content_type = HeaderValue::try_from(parts.content_type.as_str()).map_err(|_| {
        format!(
            "datacontenttype {:?} cannot be a content-type header",
            parts.content_type
        )
    })?;
    let attributes = parts
        .attributes
        .iter()
        .map(|(name, value)| {
            let header = HeaderName::try_from(format!("ce-{name}"))
                .map_err(|_| format!("attribute {name:?} cannot be a ce- header"))?;
            let value = HeaderValue::try_from(cloudevent::header_value(value))
                .map_err(|_| format!("attribute {name:?} cannot be a header value"))?;
            Ok((header, value))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Payload {
        content_type,
        attributes,
        body: Bytes::from(parts.data),
    })
}

/// Up to [`MAX_RESPONSE_BODY`] bytes of an answer; a failed read ends it.
async fn read_bounded(mut body: hyper::body::Incoming) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < MAX_RESPONSE_BODY {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let room = MAX_RESPONSE_BODY - out.len();
                    out.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            _ => break,
        }
    }
    out
}

/// A client error as one line: the guard's or the connector's own message
/// when that is what failed, else hyper's chain of causes.
fn describe(err: &hyper_util::client::legacy::Error) -> String {
    if let Some(connect) = connector::find_connect_error(err) {
        return match connect {
            ConnectError::Blocked(_) => connect.to_string(),
            ConnectError::Failed(m) => m.clone(),
        };
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
