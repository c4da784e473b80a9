//! Domain events: when a call succeeds, the route's event definitions
//! become CloudEvents ([`cloudevent`]) appended to a durable outbox
//! ([`outbox`]) on the request path, and one relay task per sink
//! ([`relay`]) delivers them to the broker ([`sinks`]), retrying until
//! acknowledged. docs/events.md has the guarantees.

pub mod cloudevent;
pub mod compile;
pub mod outbox;
pub mod relay;
pub mod sinks;
pub mod template;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use prometheus::IntCounter;
use prost_reflect::{DynamicMessage, MethodDescriptor, SerializeOptions};

use crate::config::events::{EventData, EventDefinition, EventsConfig, SinkConfig, WhenFull};
use crate::observability::metrics::EventMetrics;
use outbox::{AppendError, Outbox};
use relay::{Relay, RelayMetrics};
use sinks::{Outgoing, Sink};
use template::Template;

/// The events side of a running gateway: the outbox, the sinks and their
/// relays (stopped when this is dropped).
pub struct Events {
    pub outbox: Arc<Outbox>,
    /// Sink names → index in the outbox.
    sinks: BTreeMap<String, usize>,
    relays: Vec<tokio::task::JoinHandle<()>>,
    metrics: EventMetrics,
}

/// Where a setup error is: the key below `events` and what is wrong.
#[derive(Debug)]
pub struct SetupError {
    pub key: Vec<String>,
    pub message: String,
}

// === impl Events ===

impl Events {
    /// Opens the outbox (relative to `base_dir`), connects the sinks and
    /// starts their relays on the current runtime.
    pub async fn start(
        config: &EventsConfig,
        base_dir: &Path,
        metrics: EventMetrics,
    ) -> Result<Events, SetupError> {
        let names: Vec<String> = config.sinks.keys().cloned().collect();
        let outbox_config = &config.outbox;
        let path = base_dir.join(&outbox_config.path);
        let limits = outbox::Limits {
            max_events: outbox_config.max_events,
            max_event_size: outbox_config.max_event_size.as_usize(),
            max_dead_letters: outbox_config.max_dead_letters,
            flush_interval: outbox_config.flush_interval.0,
        };
        let outbox = Outbox::open(&path, &names, &limits).map_err(|message| SetupError {
            key: vec!["outbox".into(), "path".into()],
            message,
        })?;
        let outbox = Arc::new(outbox);
        let mut relays = Vec::with_capacity(names.len());
        for (index, (name, sink)) in config.sinks.iter().enumerate() {
            let target = connect(name, sink, &metrics)
                .await
                .map_err(|message| SetupError {
                    key: vec!["sinks".into(), name.clone()],
                    message,
                })?;
            let depth = metrics.depth.with_label_values(&[name]);
            let relay = Relay {
                sink: index,
                name: name.clone(),
                target,
                outbox: outbox.clone(),
                retry_initial: outbox_config.retry_initial.0,
                retry_max: outbox_config.retry_max.0,
                max_age: outbox_config.max_age.0,
                metrics: RelayMetrics {
                    published: metrics.events.with_label_values(&[name, "published"]),
                    retried: metrics.events.with_label_values(&[name, "retried"]),
                    dead: metrics.events.with_label_values(&[name, "dead_lettered"]),
                    depth,
                    oldest_age: metrics.oldest_age.with_label_values(&[name]),
                    latency: metrics.delivery.with_label_values(&[name]),
                },
            };
            relays.push(tokio::spawn(relay.run()));
        }
        // What a previous run left is waiting too.
        let left = outbox.depth();
        if left > 0 {
            tracing::info!(events = left, path = %path.display(), "outbox holds undelivered events from a previous run");
        }
        for (index, name) in names.iter().enumerate() {
            let waiting = outbox.len(index).unwrap_or(0);
            metrics.depth.with_label_values(&[name]).set(waiting as i64);
        }
        Ok(Events {
            outbox,
            sinks: names.into_iter().enumerate().map(|(i, n)| (n, i)).collect(),
            relays,
            metrics,
        })
    }

    /// What `/admin/events` shows: the outbox's depth and capacity, and per
    /// sink the events waiting, how long the oldest has waited (seconds) and
    /// the dead letters kept (blocking: reads the outbox).
    pub fn status(&self) -> serde_json::Value {
        let now = outbox::now_ms();
        let sinks: Vec<serde_json::Value> = self
            .sinks
            .iter()
            .map(|(name, &index)| {
                let oldest = self.outbox.oldest_appended_ms(index).ok().flatten();
                serde_json::json!({
                    "name": name,
                    "waiting": self.outbox.len(index).ok(),
                    "oldest_age_seconds": oldest.map(|ms| now.saturating_sub(ms) as f64 / 1000.0),
                    "dead_lettered": self.outbox.dead_len(index).ok(),
                })
            })
            .collect();
        serde_json::json!({
            "outbox": {"depth": self.outbox.depth(), "max_events": self.outbox.capacity()},
            "sinks": sinks,
        })
    }

    /// Up to `max` of sink `name`'s newest dead letters (blocking); `None`
    /// for an unknown sink.
    pub fn dead_letters(
        &self,
        name: &str,
        max: usize,
    ) -> Option<Result<Vec<outbox::DeadLetter>, String>> {
        let &index = self.sinks.get(name)?;
        Some(self.outbox.dead_letters(index, max))
    }

    /// The sink named `name`, for events built outside a route's event
    /// definitions (inbound webhooks).
    pub fn sink(&self, name: &str) -> Option<SinkHandle> {
        let &index = self.sinks.get(name)?;
        let counter = |outcome: &str| self.metrics.events.with_label_values(&[name, outcome]);
        Some(SinkHandle {
            index,
            outbox: self.outbox.clone(),
            depth: self.metrics.depth.with_label_values(&[name]),
            appended: counter("appended"),
        })
    }

    /// The sinks' names.
    pub fn sink_names(&self) -> impl Iterator<Item = &str> {
        self.sinks.keys().map(String::as_str)
    }

    /// Compiles one of a route's event definitions for `method`.
    pub fn definition(
        &self,
        definition: &EventDefinition,
        route: &str,
        method: &MethodDescriptor,
    ) -> Result<EventSpec, SetupError> {
        let at = |key: &str, message: String| SetupError {
            key: vec![key.to_owned()],
            message,
        };
        let sink = *self.sinks.get(&definition.sink).ok_or_else(|| {
            let known: Vec<&str> = self.sinks.keys().map(String::as_str).collect();
            at(
                "sink",
                format!(
                    "unknown sink `{}`; events.sinks has [{}]",
                    definition.sink,
                    known.join(", ")
                ),
            )
        })?;
        let (input, output) = (method.input(), method.output());
        let subject = definition
            .subject
            .as_deref()
            .map(|t| Template::compile(t, &input, &output))
            .transpose()
            .map_err(|e| at("subject", e))?;
        let destination = Template::compile(&definition.destination, &input, &output)
            .map_err(|e| at("destination", e))?;
        let counter = |outcome: &str| {
            self.metrics
                .events
                .with_label_values(&[definition.sink.as_str(), outcome])
        };
        Ok(EventSpec {
            sink,
            event_type: definition.event_type.clone(),
            source: definition
                .source
                .clone()
                .unwrap_or_else(|| format!("/switchyard/{route}")),
            subject,
            destination,
            data: definition.data,
            when_full: definition.when_full,
            outbox: self.outbox.clone(),
            depth: self.metrics.depth.with_label_values(&[&definition.sink]),
            appended: counter("appended"),
            dropped: counter("dropped"),
            rejected: counter("rejected"),
        })
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        for relay in &self.relays {
            relay.abort();
        }
    }
}

async fn connect(
    name: &str,
    config: &SinkConfig,
    metrics: &EventMetrics,
) -> Result<Arc<dyn Sink>, String> {
    Ok(match config {
        SinkConfig::Nats(nats) => Arc::new(sinks::nats::NatsSink::connect(nats.clone()).await?),
        SinkConfig::Rabbitmq(rabbit) => Arc::new(sinks::rabbitmq::RabbitMqSink::new(rabbit)?),
        SinkConfig::RedisStreams(redis) => {
            Arc::new(sinks::redis_streams::RedisStreamsSink::new(redis)?)
        }
        SinkConfig::Stdout(stdout) => Arc::new(sinks::stdout::StdoutSink::new(stdout.clone())),
        SinkConfig::Kafka(kafka) => Arc::new(sinks::kafka::KafkaSink::connect(kafka).await?),
        SinkConfig::Webhook(webhook) => {
            let deliveries = metrics.webhook.clone();
            Arc::new(sinks::webhook::WebhookSink::connect(name, webhook, deliveries).await?)
        }
    })
}

/// Appends ready-made events for one sink (see [`Events::sink`]).
#[derive(Clone)]
pub struct SinkHandle {
    index: usize,
    outbox: Arc<Outbox>,
    depth: prometheus::IntGauge,
    appended: IntCounter,
}

impl SinkHandle {
    /// Appends `event`: committed within the durability window.
    pub fn append(&self, event: &Outgoing) -> Result<(), AppendError> {
        self.outbox.append(self.index, event)?;
        self.appended.inc();
        self.depth.inc();
        Ok(())
    }
}

/// One event definition, compiled for its method.
pub struct EventSpec {
    sink: usize,
    event_type: String,
    source: String,
    subject: Option<Template>,
    destination: Template,
    data: EventData,
    when_full: WhenFull,
    outbox: Arc<Outbox>,
    depth: prometheus::IntGauge,
    appended: IntCounter,
    dropped: IntCounter,
    rejected: IntCounter,
}

impl std::fmt::Debug for EventSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSpec")
            .field("type", &self.event_type)
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}

/// The outbox cannot take a must-deliver event: the request is refused.
#[derive(Debug)]
pub struct OutboxFull;

// === impl EventSpec ===

impl EventSpec {
    /// Before the call: refuses it when its event must not be lost and the
    /// outbox has no room.
    pub fn admit(&self) -> Result<(), OutboxFull> {
        if self.when_full == WhenFull::Reject && !self.outbox.has_room() {
            self.rejected.inc();
            return Err(OutboxFull);
        }
        Ok(())
    }

    /// After a successful call: appends the event.
    pub fn emit(
        &self,
        request: &DynamicMessage,
        response: &DynamicMessage,
        options: &SerializeOptions,
    ) {
        let id = switchyard_plugins::request_id::FastUuid::generate();
        let id = std::str::from_utf8(&id).unwrap_or_default();
        let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let subject = self.subject.as_ref().map(|t| t.render(request, response));
        let attributes = cloudevent::Attributes {
            id,
            source: &self.source,
            event_type: &self.event_type,
            subject: subject.as_deref(),
            time: &time,
        };
        let data = match self.data {
            EventData::Response => response,
            EventData::Request => request,
        };
        let body = match cloudevent::structured(&attributes, data, options) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(event_type = %self.event_type, error = %e, "event not built");
                self.dropped.inc();
                return;
            }
        };
        let event = Outgoing {
            id: id.to_owned(),
            event_type: self.event_type.clone(),
            subject,
            destination: self.destination.render(request, response),
            body,
        };
        match self.outbox.append(self.sink, &event) {
            Ok(()) => {
                self.appended.inc();
                self.depth.inc();
            }
            Err(e @ (AppendError::Full(_) | AppendError::TooLarge { .. })) => {
                // Admitted while there was room; a burst filled it since.
                tracing::error!(event_type = %self.event_type, id = %event.id, error = %e, "event dropped");
                self.dropped.inc();
            }
        }
    }
}
