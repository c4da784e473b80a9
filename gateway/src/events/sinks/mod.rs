//! Where events go: one module per broker, each behind [`Sink`]. A publish
//! returns only once the broker has taken responsibility for the event (a
//! JetStream ack, a publisher confirm…); a sink may take several publishes
//! at once ([`Sink::max_in_flight`]). The relay
//! (`events::relay`) retries failures and removes an event from the outbox
//! only after `Ok`.

pub mod kafka;
pub mod nats;
pub mod rabbitmq;
pub mod redis_streams;
pub mod stdout;
pub mod webhook;

use std::time::Duration;

use futures_util::future::BoxFuture;

/// One event as a sink receives it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outgoing {
    /// The CloudEvents `id`: unique, stable across retries (brokers that
    /// deduplicate use it, e.g. JetStream's `Nats-Msg-Id`).
    pub id: String,
    /// Where the sink routes it: a NATS subject, a routing key, a stream
    /// key (from the event definition's `subject` template).
    pub destination: String,
    /// The CloudEvents `type` (a metric label; the body has it too).
    pub event_type: String,
    /// The CloudEvents `subject`, when the event has one (Kafka's key).
    pub subject: Option<String>,
    /// The CloudEvent in structured mode: `application/cloudevents+json`.
    pub body: Vec<u8>,
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying (broker down, timeout, no ack).
    #[error("{0}")]
    Transient(String),
    /// Worth retrying, not before `after` (an HTTP `Retry-After`).
    #[error("{message} (retry after {after:?})")]
    RetryAfter { message: String, after: Duration },
    /// Retrying cannot help (rejected by the broker as invalid).
    #[error("{0}")]
    Permanent(String),
}

/// A destination for events.
pub trait Sink: Send + Sync {
    /// Publishes `event`; resolves once the broker acknowledged it.
    fn publish<'a>(&'a self, event: &'a Outgoing) -> BoxFuture<'a, Result<(), SinkError>>;

    /// How the relay retries this sink's failed publishes: `None` (the
    /// default) is the outbox's exponential back-off (`retry_initial` up to
    /// `retry_max`) without limit; `Some(waits)` waits `waits[n]` (with
    /// jitter) after the `n+1`th failed attempt and dead-letters the event
    /// once the schedule is exhausted.
    fn retry_schedule(&self) -> Option<&[Duration]> {
        None
    }

    /// How many publishes the relay may have awaiting their acks at once
    /// (concurrent calls to [`Sink::publish`]); the relay never has two
    /// events with the same ordering key ([`Outgoing::ordering_key`]) in
    /// flight together. Default 1: one event at a time.
    fn max_in_flight(&self) -> usize {
        1
    }
}

/// The largest `max_in_flight` a sink accepts.
pub const MAX_IN_FLIGHT: usize = 1024;

/// The default `max_in_flight` of the sinks that take one.
pub fn default_max_in_flight() -> usize {
    64
}

/// Checks a sink's `max_in_flight` (1..=[`MAX_IN_FLIGHT`]).
pub fn check_max_in_flight(n: usize) -> Result<usize, String> {
    if (1..=MAX_IN_FLIGHT).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "`max_in_flight` is {n}, expected 1..={MAX_IN_FLIGHT}"
        ))
    }
}

impl Outgoing {
    /// What the relay keeps in order: the CloudEvents `subject` (an
    /// entity, e.g. `orders/42`), or the destination when there is none.
    pub fn ordering_key(&self) -> &str {
        self.subject.as_deref().unwrap_or(&self.destination)
    }
}
