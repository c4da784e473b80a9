//! The `nats` sink: NATS JetStream. Each event is published to the subject
//! `event.destination` with the header `Nats-Msg-Id` = the event id, so the
//! server drops a retried event it already stored (within the stream's
//! duplicate window), and the publish resolves only on the stream's ack.
//!
//! The message follows the CloudEvents NATS protocol binding (v1.0.3-wip,
//! `cloudevents/spec` `cloudevents/bindings/nats-protocol-binding.md`, the
//! first version with binary mode; NATS 2.2+ headers):
//! - **structured** (default): the payload is the stored event,
//!   `Content-Type: application/cloudevents+json`.
//! - **binary** (`mode: binary`): the payload is the event's data (the bytes
//!   of `data`, or `data_base64` decoded) and every attribute is a
//!   `ce-<name>` header, `datacontenttype` included (`ce-datacontenttype`,
//!   §3.1.3.1), each value percent-encoded per §3.1.3.2 (space, `"`, `%` and
//!   anything outside printable ASCII). `Content-Type` carries the data's
//!   media type too, as in structured mode it carries the payload's:
//!   receivers tell the modes apart by it (§3: only `application/cloudevents…`
//!   means structured). An event without data has an empty payload and
//!   neither header.
//!
//! The connection is made in the background and re-made forever, so the
//! gateway starts while NATS is down; a publish while disconnected waits for
//! the connection up to `ack_timeout`, then fails as transient (the relay
//! retries it). Nothing is queued in the client while disconnected.
//!
//! Errors: a publish fails [`SinkError::Permanent`] only when the event
//! itself can never be accepted: its destination is not a valid publish
//! subject (empty, whitespace, empty tokens, wildcards), its id cannot be a
//! header value, in binary mode its stored form cannot be read back (or an
//! attribute cannot be a header), or it is larger than the server's
//! `max_payload` or the stream's maximum message or header size. Everything
//! else is [`SinkError::Transient`]: not connected, no ack in time, no
//! stream on the subject (no responders: the stream may be created later),
//! storage limits or an unavailable cluster (an operator can fix those
//! without losing the event), and a failure to create the configured stream.
//!
//! With `stream.create`, the stream is created (if missing) before the first
//! publish; after a failure, or a publish that found no stream (it was
//! deleted), the next publish tries again.

use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::header::{HeaderMap, HeaderName, HeaderValue, NATS_MESSAGE_ID};
use async_nats::jetstream::stream::{Config as JsStreamConfig, StorageType};
use async_nats::jetstream::{self, ErrorCode};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::sync::Mutex;

use self::acks::{Ack, AckTasks, Acks};
use super::{Outgoing, Sink, SinkError, check_max_in_flight, default_max_in_flight};
use crate::config::units::HumanDuration;
use crate::events::cloudevent::{self, ContentMode, STRUCTURED_CONTENT_TYPE};

/// The header carrying the payload's media type.
const CONTENT_TYPE: &str = "Content-Type";

/// The prefix of a CloudEvents attribute header in binary mode (`ce-id`,
/// `ce-type`…).
const ATTRIBUTE_PREFIX: &str = "ce-";

/// How often a publish looks at the connection while it is not up.
const CONNECTED_POLL: Duration = Duration::from_millis(20);

/// A NATS JetStream sink.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsSinkConfig {
    /// The NATS server, e.g. `nats://127.0.0.1:4222` (`tls://` for TLS;
    /// credentials may be given as `nats://user:password@host:4222`). The
    /// gateway starts while it is unreachable and keeps reconnecting.
    pub url: String,
    /// The JetStream stream that stores the events. Absent: a stream whose
    /// subjects cover the events' destinations must already exist.
    #[serde(default)]
    pub stream: Option<StreamConfig>,
    /// How long a publish waits for the stream's ack (including for the
    /// connection, while it is down); past it the publish fails and is
    /// retried. Waits are checked every quarter of it, so an ack wait ends
    /// between 1 and 1.25 times it. Default 5s.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout: HumanDuration,
    /// `structured` (default): the payload is the whole CloudEvent
    /// (`Content-Type: application/cloudevents+json`); `binary`: the
    /// attributes are `ce-<name>` headers and the payload is the data alone
    /// (`Content-Type`: its media type), per the CloudEvents NATS binding.
    #[serde(default)]
    pub mode: ContentMode,
    /// Publishes awaiting their ack at once (1..=1024). Order is kept per
    /// ordering key (the event's `subject`, or its destination when it has
    /// none): two events with the same key are never in flight together.
    /// Default 64; 1 publishes one event at a time.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

/// The JetStream stream the sink publishes into.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// The stream's name, e.g. `EVENTS` (no spaces, `.`, `*`, `>`, `/` or `\`).
    pub name: String,
    /// The subjects the stream stores, e.g. `["orders.>"]`; they must cover
    /// the events' destinations. Required when `create` is true.
    #[serde(default)]
    pub subjects: Vec<String>,
    /// Create the stream (file storage, these subjects, this duplicate
    /// window) before the first publish if it does not exist. An existing
    /// stream is used as it is, never updated. Default true; false: the
    /// stream is managed elsewhere.
    #[serde(default = "default_create")]
    pub create: bool,
    /// For a created stream: how long the server remembers event ids to drop
    /// duplicates (a retried publish whose ack was lost). Default 2m.
    #[serde(default = "default_duplicate_window")]
    pub duplicate_window: HumanDuration,
}

fn default_ack_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}

fn default_create() -> bool {
    true
}

fn default_duplicate_window() -> HumanDuration {
    HumanDuration::from_secs(120)
}

/// Publishes events to NATS JetStream (see the module docs).
pub struct NatsSink {
    client: async_nats::Client,
    /// For creating the stream.
    jetstream: jetstream::Context,
    /// The publishes awaiting their acks.
    acks: Arc<Acks>,
    _ack_tasks: AckTasks,
    /// The stream to create before the first publish (`create: true`).
    create_stream: Option<JsStreamConfig>,
    /// Set once the stream exists; left unset after a failure so the next
    /// publish tries again, and unset when a publish finds no stream (it was
    /// deleted) so the next one creates it again.
    stream_ready: AtomicBool,
    /// One creation at a time.
    creating: Mutex<()>,
    ack_timeout: Duration,
    max_in_flight: usize,
    mode: ContentMode,
}

impl std::fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may carry credentials.
        f.debug_struct("NatsSink")
            .field("stream", &self.create_stream.as_ref().map(|s| &s.name))
            .field("ack_timeout", &self.ack_timeout)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl NatsSink {
    /// Validates `config` and starts connecting in the background: returns
    /// at once, whether or not the server is up. Errors are configuration
    /// errors (a bad URL, stream name or subjects). Must be called within a
    /// Tokio runtime.
    pub async fn connect(config: NatsSinkConfig) -> Result<NatsSink, String> {
        let ack_timeout = config.ack_timeout.0;
        if ack_timeout.is_zero() {
            return Err("nats sink: `ack_timeout` must be more than 0".to_owned());
        }
        let max_in_flight =
            check_max_in_flight(config.max_in_flight).map_err(|e| format!("nats sink: {e}"))?;
        let create_stream = match &config.stream {
            Some(stream) => {
                check_stream_name(&stream.name)?;
                if stream.create {
                    if stream.subjects.is_empty() {
                        return Err(format!(
                            "nats sink: stream {:?} has `create: true` but no `subjects`",
                            stream.name
                        ));
                    }
                    for subject in &stream.subjects {
                        check_stream_subject(subject)
                            .map_err(|e| format!("nats sink: stream {:?}: {e}", stream.name))?;
                    }
                    Some(JsStreamConfig {
                        name: stream.name.clone(),
                        subjects: stream.subjects.clone(),
                        storage: StorageType::File,
                        duplicate_window: stream.duplicate_window.0,
                        ..Default::default()
                    })
                } else {
                    None
                }
            }
            None => None,
        };

        let client = async_nats::ConnectOptions::new()
            .name("switchyard")
            // Every destination is checked before its publish
            // (`check_publish_subject`): not twice.
            .skip_subject_validation(true)
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connect(config.url.as_str())
            .await
            // The URL is not repeated: it may carry credentials.
            .map_err(|e| format!("nats sink: invalid `url`: {e}"))?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(ack_timeout)
            .build(client.clone());
        let (acks, ack_tasks) = Acks::start(&client, ack_timeout).await?;

        Ok(NatsSink {
            client,
            jetstream,
            acks,
            _ack_tasks: ack_tasks,
            create_stream,
            stream_ready: AtomicBool::new(false),
            creating: Mutex::new(()),
            ack_timeout,
            max_in_flight,
            mode: config.mode,
        })
    }

    /// Waits for the connection and the stream, then sends.
    async fn publish_within_timeout(
        &self,
        event: &Outgoing,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<(), SinkError> {
        // Wait for the connection rather than queue in the client: a queued
        // publish would still go out after we reported it failed.
        while self.client.connection_state() != State::Connected {
            tokio::time::sleep(CONNECTED_POLL).await;
        }
        self.ensure_stream().await?;
        self.send(event, headers, payload).await
    }

    /// Connected, and the stream (when the sink creates it) known to exist.
    fn ready(&self) -> bool {
        self.client.connection_state() == State::Connected
            && (self.create_stream.is_none() || self.stream_ready.load(Ordering::Acquire))
    }

    /// Publishes `event` and waits for its ack, bounded by the ack sweep
    /// (`ack_timeout`, at most 1.25 times it).
    async fn send(
        &self,
        event: &Outgoing,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<(), SinkError> {
        let (reply_subject, pending) = self.acks.expect();
        let sent = self
            .client
            .publish_with_reply_and_headers(
                event.destination.clone(),
                reply_subject,
                headers,
                payload,
            )
            .await;
        if let Err(e) = sent {
            return Err(not_sent(&event.destination, &e));
        }
        let subject = &event.destination;
        match pending.ack().await {
            Some(Ack::Stored) => Ok(()),
            Some(Ack::NoStream) => {
                self.stream_ready.store(false, Ordering::Release);
                Err(SinkError::Transient(format!(
                    "no JetStream stream stores subject {subject:?} (no responders)"
                )))
            }
            Some(Ack::Refused(e)) => Err(refused(subject, &e)),
            Some(Ack::Unreadable(reply)) => Err(SinkError::Transient(format!(
                "JetStream publish to {subject:?}: {reply}"
            ))),
            Some(Ack::TimedOut) => Err(SinkError::Transient(format!(
                "event {}: no JetStream ack within {:?}",
                event.id, self.ack_timeout
            ))),
            None => Err(SinkError::Transient(
                "the nats sink is shutting down".to_owned(),
            )),
        }
    }

    /// Creates the configured stream unless it exists: before the first
    /// publish, and again after a failure or a publish that found no stream.
    async fn ensure_stream(&self) -> Result<(), SinkError> {
        let Some(config) = &self.create_stream else {
            return Ok(());
        };
        if self.stream_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let _creating = self.creating.lock().await;
        if self.stream_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        self.jetstream
            .get_or_create_stream(config.clone())
            .await
            .map_err(|e| {
                SinkError::Transient(format!(
                    "cannot create the JetStream stream {:?}: {e}",
                    config.name
                ))
            })?;
        tracing::debug!(stream = %config.name, "nats sink: stream ready");
        self.stream_ready.store(true, Ordering::Release);
        Ok(())
    }
}

impl Sink for NatsSink {
    fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    fn publish<'a>(&'a self, event: &'a Outgoing) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            // An event that can never be a message fails for good, before
            // any wait for the server.
            check_publish_subject(&event.destination).map_err(|e| {
                SinkError::Permanent(format!("event {}: destination {e}", event.id))
            })?;
            let (headers, payload) = message(event, self.mode)
                .map_err(|e| SinkError::Permanent(format!("event {}: {e}", event.id)))?;
            // The common case, connected with the stream in place, arms no
            // timer: the ack wait is bounded by the ack sweep (`acks`), and
            // the send by the client's command buffer (2048, over the
            // largest `max_in_flight`). A timer per event would cost a
            // runtime wake-up per event (tokio unparks its driver when a
            // timer is armed while none was).
            if self.ready() {
                return self.send(event, headers, payload).await;
            }
            let publish = self.publish_within_timeout(event, headers, payload);
            match tokio::time::timeout(self.ack_timeout, publish).await {
                Ok(result) => result,
                Err(_) => Err(SinkError::Transient(match self.client.connection_state() {
                    State::Connected => format!(
                        "event {}: no JetStream ack within {:?}",
                        event.id, self.ack_timeout
                    ),
                    state => format!(
                        "event {}: not connected to NATS within {:?} ({state:?})",
                        event.id, self.ack_timeout
                    ),
                })),
            }
        })
    }
}

/// The headers and payload of `event` in `mode` (module docs). An error is
/// the event's own: an id that cannot be a header, or in binary mode a
/// stored event that cannot be read back or split into headers.
fn message(event: &Outgoing, mode: ContentMode) -> Result<(HeaderMap, Bytes), String> {
    let id = event
        .id
        .parse::<HeaderValue>()
        .map_err(|e| format!("the id {:?} cannot be a Nats-Msg-Id header: {e}", event.id))?;
    let mut headers = HeaderMap::new();
    headers.insert(NATS_MESSAGE_ID, id);
    let payload = match mode {
        ContentMode::Structured => {
            headers.insert(CONTENT_TYPE, STRUCTURED_CONTENT_TYPE);
            Bytes::copy_from_slice(&event.body)
        }
        ContentMode::Binary => {
            let parts = cloudevent::binary(&event.body)?;
            for (name, value) in &parts.attributes {
                insert_attribute(&mut headers, name, value)?;
            }
            if !parts.data.is_empty() {
                insert_attribute(&mut headers, "datacontenttype", &parts.content_type)?;
                let content_type = parts.content_type.parse::<HeaderValue>().map_err(|_| {
                    format!(
                        "datacontenttype {:?} cannot be a Content-Type header",
                        parts.content_type
                    )
                })?;
                headers.insert(CONTENT_TYPE, content_type);
            }
            Bytes::from(parts.data)
        }
    };
    Ok((headers, payload))
}

/// Adds attribute `name` as its `ce-<name>` header, the value
/// percent-encoded (NATS binding §3.1.3.2).
fn insert_attribute(headers: &mut HeaderMap, name: &str, value: &str) -> Result<(), String> {
    let header = HeaderName::from_str(&format!("{ATTRIBUTE_PREFIX}{name}"))
        .map_err(|_| format!("attribute {name:?} cannot be a NATS header name"))?;
    let value = cloudevent::header_value(value)
        .parse::<HeaderValue>()
        .map_err(|_| format!("attribute {name:?} cannot be a NATS header value"))?;
    headers.insert(header, value);
    Ok(())
}

/// A publish the client could not send: too large for the server
/// (permanent), or not handed to the connection (transient).
fn not_sent(subject: &str, err: &async_nats::client::PublishError) -> SinkError {
    let message = format!("JetStream publish to {subject:?}: {err}");
    match err.kind() {
        async_nats::client::PublishErrorKind::MaxPayloadExceeded
        | async_nats::client::PublishErrorKind::InvalidSubject => SinkError::Permanent(message),
        async_nats::client::PublishErrorKind::Send => SinkError::Transient(message),
    }
}

/// A publish the stream refused: permanent when the message itself breaks
/// the stream's rules (too large; we set no expected last id or sequence, so
/// those mean the stream's own rules too), else transient (storage limits,
/// no quorum: an operator can fix those without losing the event).
fn refused(subject: &str, err: &jetstream::Error) -> SinkError {
    let message = format!("JetStream publish to {subject:?}: {err}");
    let permanent = matches!(
        err.error_code(),
        ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM
            | ErrorCode::STREAM_HEADER_EXCEEDS_MAXIMUM
            | ErrorCode::STREAM_WRONG_LAST_MESSAGE_ID
            | ErrorCode::STREAM_WRONG_LAST_SEQUENCE
    );
    if permanent {
        SinkError::Permanent(message)
    } else {
        SinkError::Transient(message)
    }
}

/// A subject one can publish to: non-empty dot-separated tokens without
/// whitespace or wildcards.
fn check_publish_subject(subject: &str) -> Result<(), String> {
    check_subject_tokens(subject)?;
    // A wildcard token: `*` or `>` alone between dots (or the ends).
    let bytes = subject.as_bytes();
    let wildcard = bytes.iter().enumerate().any(|(i, &b)| {
        (b == b'*' || b == b'>')
            && (i == 0 || bytes[i - 1] == b'.')
            && bytes.get(i + 1).is_none_or(|&next| next == b'.')
    });
    if wildcard {
        return Err(format!(
            "{subject:?} is not a NATS subject one can publish to: it has a wildcard"
        ));
    }
    Ok(())
}

/// A stream subject: like a publish subject, wildcards allowed.
fn check_stream_subject(subject: &str) -> Result<(), String> {
    check_subject_tokens(subject)
}

/// Checked per event: byte scans, no splitting.
fn check_subject_tokens(subject: &str) -> Result<(), String> {
    if subject.is_empty() {
        return Err("is empty: not a NATS subject".to_owned());
    }
    let spaced = if subject.is_ascii() {
        subject
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    } else {
        subject.chars().any(|c| c.is_whitespace() || c.is_control())
    };
    if spaced {
        return Err(format!(
            "{subject:?} is not a NATS subject: it has whitespace"
        ));
    }
    if subject.starts_with('.') || subject.ends_with('.') || subject.contains("..") {
        return Err(format!(
            "{subject:?} is not a NATS subject: it has an empty token"
        ));
    }
    Ok(())
}

fn check_stream_name(name: &str) -> Result<(), String> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || ".*>/\\".contains(c);
    if name.is_empty() || name.chars().any(bad) {
        return Err(format!(
            "nats sink: invalid stream name {name:?}: it must be non-empty, without spaces, `.`, `*`, `>`, `/` or `\\`"
        ));
    }
    Ok(())
}

mod acks;

#[cfg(test)]
mod tests;
