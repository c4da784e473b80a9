//! Domain events: when a call succeeds, the route's event definitions
//! become CloudEvents ([`cloudevent`]) appended to a durable outbox
//! ([`outbox`]) on the request path, and one relay task per sink
//! ([`relay`]) delivers them to the broker ([`sinks`]), retrying until
//! acknowledged. docs/events.md has the guarantees.

pub mod cloudevent;
pub mod compile;
pub mod counters;
pub mod data;
pub mod inspect;
pub mod outbox;
pub mod relay;
pub mod sinks;
pub mod template;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderMap;
use prometheus::IntCounter;
use prost_reflect::{DynamicMessage, MethodDescriptor, SerializeOptions};
use switchyard_plugins::error::ErrorResponse;

use crate::config::events::{EventDefinition, EventsConfig, SinkConfig, WhenFull};
use crate::observability::metrics::EventMetrics;
use counters::{EventCounters, TypeLabels};
use data::DataSpec;
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
    /// `switchyard_events_total` of each sink, by index.
    counters: Vec<EventCounters>,
    /// The scratch directory of a checked config's outbox (removed on drop).
    scratch: Option<std::path::PathBuf>,
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
        let path = base_dir.join(&config.outbox.path);
        Events::open(config, base_dir, &path, metrics, true).await
    }

    /// Compiles `config` as [`Events::start`] does, to check it: the
    /// outbox is a scratch file in a fresh temporary directory (removed on
    /// drop) and no relay runs, so the configured outbox is never opened
    /// (a running gateway may hold it) and nothing is delivered.
    /// Files the sinks name (`ca_file`) are relative to `base_dir`.
    pub async fn check(
        config: &EventsConfig,
        base_dir: &Path,
        metrics: EventMetrics,
    ) -> Result<Events, SetupError> {
        let scratch =
            std::env::temp_dir().join(format!("switchyard-check-{:016x}", fastrand::u64(..)));
        let outbox = scratch.join("outbox.redb");
        let opened = Events::open(config, base_dir, &outbox, metrics, false).await;
        match opened {
            Ok(mut events) => {
                events.scratch = Some(scratch);
                Ok(events)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&scratch);
                Err(e)
            }
        }
    }

    async fn open(
        config: &EventsConfig,
        base_dir: &Path,
        path: &Path,
        metrics: EventMetrics,
        relay_events: bool,
    ) -> Result<Events, SetupError> {
        let names: Vec<String> = config.sinks.keys().cloned().collect();
        let outbox_config = &config.outbox;
        let limits = outbox::Limits {
            max_events: outbox_config.max_events,
            max_event_size: outbox_config.max_event_size.as_usize(),
            max_dead_letters: outbox_config.max_dead_letters,
            flush_interval: outbox_config.flush_interval.0,
        };
        let outbox = Outbox::open(path, &names, &limits).map_err(|message| SetupError {
            key: vec!["outbox".into(), "path".into()],
            message,
        })?;
        // One set of counters per sink, sharing the bound on type labels.
        let types = Arc::new(TypeLabels::default());
        let counters: Vec<EventCounters> = names
            .iter()
            .map(|name| EventCounters::new(metrics.events.clone(), name, types.clone()))
            .collect();
        meter(&outbox, &names, &metrics, &counters);
        // What a previous run left is waiting too.
        let left = outbox.depth();
        if left > 0 && relay_events {
            tracing::info!(events = left, path = %path.display(), "outbox holds undelivered events from a previous run");
        }
        let outbox = Arc::new(outbox);
        let mut relays = Vec::with_capacity(names.len());
        for (index, (name, sink)) in config.sinks.iter().enumerate() {
            let target = connect(name, sink, base_dir, &metrics)
                .await
                .map_err(|message| SetupError {
                    key: vec!["sinks".into(), name.clone()],
                    message,
                })?;
            let relay = Relay {
                sink: index,
                name: name.clone(),
                target,
                outbox: outbox.clone(),
                retry_initial: outbox_config.retry_initial.0,
                retry_max: outbox_config.retry_max.0,
                max_age: outbox_config.max_age.0,
                metrics: RelayMetrics {
                    counters: counters[index].clone(),
                    oldest_age: metrics.oldest_age.with_label_values(&[name]),
                    latency: metrics.delivery.with_label_values(&[name]),
                },
            };
            if relay_events {
                relays.push(tokio::spawn(relay.run()));
            }
        }
        Ok(Events {
            outbox,
            sinks: names.into_iter().enumerate().map(|(i, n)| (n, i)).collect(),
            relays,
            counters,
            scratch: None,
        })
    }

    /// What `/admin/events` shows (see [`Outbox::status`]; blocking).
    pub fn status(&self) -> serde_json::Value {
        let mut names: Vec<(&str, usize)> =
            self.sinks.iter().map(|(n, &i)| (n.as_str(), i)).collect();
        names.sort_by_key(|&(_, index)| index);
        let names: Vec<&str> = names.into_iter().map(|(name, _)| name).collect();
        self.outbox.status(&names)
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
        Some(SinkHandle {
            index,
            outbox: self.outbox.clone(),
            counters: self.counters[index].clone(),
        })
    }

    /// Whether the outbox commits appends (readiness).
    pub fn is_writable(&self) -> bool {
        self.outbox.is_writable()
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
        let sink = self.sink(&definition.sink).ok_or_else(|| {
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
        let data = DataSpec::compile(&definition.data, definition.format, &input, &output)
            .map_err(|e| at("data", e))?;
        let mut extensions = Vec::with_capacity(definition.extensions.len());
        for (name, template) in &definition.extensions {
            check_extension_name(name).map_err(|e| at("extensions", e))?;
            let template = Template::compile(template, &input, &output)
                .map_err(|e| at("extensions", format!("`{name}`: {e}")))?;
            extensions.push((name.clone(), template));
        }
        // The CloudEvents distributed tracing extension: the call's trace
        // context (the edge makes sure every request has one), unless the
        // definition says otherwise.
        if !definition.extensions.contains_key("traceparent") {
            for name in ["traceparent", "tracestate"] {
                let template = Template::compile(&format!("{{header.{name}}}"), &input, &output)
                    .map_err(|e| at("extensions", e))?;
                extensions.push((name.to_owned(), template));
            }
        }
        let on_status = match &definition.on_status {
            Some(statuses) => Some(
                statuses
                    .iter()
                    .map(|&s| {
                        http::StatusCode::from_u16(s)
                            .map_err(|_| at("on_status", format!("{s} is not an HTTP status")))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        let counter = |outcome: &str| sink.counters.counter(&definition.event_type, outcome);
        let (appended, dropped, rejected) =
            (counter("appended"), counter("dropped"), counter("rejected"));
        Ok(EventSpec {
            sink,
            event_type: definition.event_type.clone(),
            source: definition
                .source
                .clone()
                .unwrap_or_else(|| format!("/switchyard/{route}")),
            subject,
            destination,
            data,
            extensions,
            on_status,
            when_full: definition.when_full,
            appended,
            dropped,
            rejected,
        })
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        for relay in &self.relays {
            relay.abort();
        }
        if let Some(scratch) = &self.scratch {
            let _ = std::fs::remove_dir_all(scratch);
        }
    }
}

/// Sets the sinks' depth gauges to what waits (before any relay runs) and
/// gives the outbox the meters it keeps in step.
fn meter(outbox: &Outbox, names: &[String], metrics: &EventMetrics, counters: &[EventCounters]) {
    let meters = names
        .iter()
        .zip(counters)
        .enumerate()
        .map(|(index, (name, counters))| {
            let depth = metrics.depth.with_label_values(&[name]);
            depth.set(outbox.len(index).unwrap_or(0) as i64);
            outbox::SinkMeters {
                depth,
                counters: counters.clone(),
            }
        });
    outbox.meter(meters.collect());
}

async fn connect(
    name: &str,
    config: &SinkConfig,
    base_dir: &Path,
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
            let sink = sinks::webhook::WebhookSink::connect(name, webhook, base_dir, deliveries);
            Arc::new(sink.await?)
        }
    })
}

/// Appends ready-made events for one sink (see [`Events::sink`]); the
/// outbox keeps the sink's depth gauge.
#[derive(Clone)]
pub struct SinkHandle {
    index: usize,
    outbox: Arc<Outbox>,
    counters: EventCounters,
}

impl SinkHandle {
    /// Appends `event` and counts it `appended` under its type: committed
    /// within the durability window; refused when the outbox is full.
    pub fn append(&self, event: Outgoing) -> Result<(), AppendError> {
        let event_type = event.event_type.clone();
        self.push(event, WhenFull::Reject)?;
        self.counters.inc(&event_type, "appended");
        Ok(())
    }

    /// Appends `event` without counting it. `WhenFull::Drop`: it may be
    /// lost; when the outbox is full the sink's oldest such event is
    /// evicted to make room (see [`Outbox::append_evicting`]).
    fn push(&self, event: Outgoing, when_full: WhenFull) -> Result<(), AppendError> {
        match when_full {
            WhenFull::Reject => self.outbox.append(self.index, event),
            WhenFull::Drop => self.outbox.append_evicting(self.index, event),
        }
    }
}

/// One event definition, compiled for its method.
pub struct EventSpec {
    sink: SinkHandle,
    event_type: String,
    source: String,
    subject: Option<Template>,
    destination: Template,
    data: DataSpec,
    /// Extension attributes: names and templates.
    extensions: Vec<(String, Template)>,
    /// Publish on these answer statuses; `None`: on success.
    on_status: Option<Vec<http::StatusCode>>,
    when_full: WhenFull,
    /// This definition's `appended`, `dropped` and `rejected` counters
    /// (its type is fixed: resolved once, not per event).
    appended: IntCounter,
    dropped: IntCounter,
    rejected: IntCounter,
}

impl std::fmt::Debug for EventSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSpec")
            .field("type", &self.event_type)
            .field("sink", &self.sink.index)
            .finish_non_exhaustive()
    }
}

/// One call, as its events see it.
#[derive(Clone, Copy)]
pub struct Occurrence<'a> {
    pub request: &'a DynamicMessage,
    /// The reply, or the error answered.
    pub outcome: Result<&'a DynamicMessage, &'a ErrorResponse>,
    /// The reply as the client got it, when that is the whole message
    /// rendered as JSON with `options` (REST without `response_body`):
    /// `data: response` reuses it instead of rendering the reply again.
    pub response_json: Option<&'a [u8]>,
    /// The request's headers (`{header.<name>}`).
    pub headers: &'a HeaderMap,
    /// The authenticated consumer (`{consumer}`).
    pub consumer: Option<&'a str>,
    /// The caller's verified JWT claims (`{claim.<name>}`).
    pub claims: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// The variant of the route's split that served the call (the
    /// `variant` attribute, unless an extension of that name is declared).
    pub variant: Option<&'a str>,
    /// How messages become JSON (the route's `json:` options).
    pub options: &'a SerializeOptions,
}

impl<'a> Occurrence<'a> {
    /// A call made for an HTTP request: its headers, and the consumer and
    /// claims its plugins verified; no `response_json`.
    pub fn for_request(
        request: &'a DynamicMessage,
        outcome: Result<&'a DynamicMessage, &'a ErrorResponse>,
        parts: &'a http::request::Parts,
        options: &'a SerializeOptions,
    ) -> Occurrence<'a> {
        use switchyard_plugins::stage::{Claims, Consumer};
        Occurrence {
            request,
            outcome,
            response_json: None,
            headers: &parts.headers,
            consumer: parts.extensions.get::<Consumer>().map(|c| c.0.as_str()),
            claims: parts.extensions.get::<Claims>().map(|c| &*c.0),
            variant: None,
            options,
        }
    }
}

/// A CloudEvents extension attribute name: lower-case ASCII letters and
/// digits, at most 20 (the spec's advice), not a context attribute.
fn check_extension_name(name: &str) -> Result<(), String> {
    const RESERVED: &[&str] = &[
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "datacontenttype",
        "dataschema",
        "data",
        "data_base64",
    ];
    let valid = !name.is_empty()
        && name.len() <= 20
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !valid {
        return Err(format!(
            "{name:?} is not an extension attribute name: lower-case letters and digits, at most 20"
        ));
    }
    if RESERVED.contains(&name) {
        return Err(format!(
            "{name:?} is a CloudEvents context attribute, not an extension"
        ));
    }
    Ok(())
}

/// The outbox cannot take a must-deliver event: the request is refused.
#[derive(Debug)]
pub struct OutboxFull;

// === impl EventSpec ===

impl EventSpec {
    /// Before the call: refuses it when its event must not be lost and the
    /// outbox has no room.
    pub fn admit(&self) -> Result<(), OutboxFull> {
        if self.when_full == WhenFull::Reject && !self.sink.outbox.has_room() {
            self.rejected.inc();
            return Err(OutboxFull);
        }
        Ok(())
    }

    /// Whether `call` publishes this event (its outcome meets `on_status`,
    /// or succeeded).
    fn publishes(&self, call: &Occurrence<'_>) -> bool {
        match (&self.on_status, call.outcome) {
            (None, outcome) => outcome.is_ok(),
            (Some(statuses), Ok(_)) => statuses.contains(&http::StatusCode::OK),
            (Some(statuses), Err(error)) => statuses.contains(&error.http_status),
        }
    }

    /// After the call: appends the event if the outcome calls for it.
    pub fn emit(&self, call: &Occurrence<'_>) {
        if !self.publishes(call) {
            return;
        }
        let id = switchyard_plugins::request_id::FastUuid::generate();
        let id = std::str::from_utf8(&id).unwrap_or_default();
        let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let subject = self.subject.as_ref().map(|t| t.render(call));
        let mut extensions: Vec<(String, String)> = self
            .extensions
            .iter()
            .map(|(name, template)| (name.clone(), template.render(call)))
            .filter(|(_, value)| !value.is_empty())
            .collect();
        if let Some(variant) = call.variant
            && !self.extensions.iter().any(|(name, _)| name == "variant")
        {
            extensions.push(("variant".to_owned(), variant.to_owned()));
        }
        let attributes = cloudevent::Attributes {
            id,
            source: &self.source,
            event_type: &self.event_type,
            subject: subject.as_deref(),
            time: &time,
            extensions: &extensions,
        };
        let data = self.data.select(call);
        let body = match cloudevent::structured(&attributes, &data, call.options) {
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
            destination: self.destination.render(call),
            body,
        };
        match self.sink.push(event, self.when_full) {
            Ok(()) => self.appended.inc(),
            Err(e) => {
                // Admitted while there was room, and a burst filled it
                // since; or over the size limit; or the writer fell behind.
                tracing::error!(event_type = %self.event_type, id = %id, error = %e, "event dropped");
                self.dropped.inc();
            }
        }
    }
}
