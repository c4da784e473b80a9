//! The `events:` section and a route's `events:` list: domain events
//! (CloudEvents) published to brokers through a durable outbox when a call
//! succeeds (docs/events.md).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::units::{ByteSize, HumanDuration};
use crate::events::sinks::kafka::KafkaSinkConfig;
use crate::events::sinks::nats::NatsSinkConfig;
use crate::events::sinks::rabbitmq::RabbitMqSinkConfig;
use crate::events::sinks::redis_streams::RedisStreamsSinkConfig;
use crate::events::sinks::stdout::StdoutSinkConfig;
use crate::events::sinks::webhook::WebhookSinkConfig;

/// Where events wait (the outbox) and where they go (the sinks).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// The durable outbox: events are appended to it after the call
    /// succeeds and removed once their sink acknowledged them.
    #[serde(default)]
    pub outbox: OutboxConfig,
    /// Sinks by name, referenced by the routes' event definitions.
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
}

/// The outbox: a redb database file on local disk.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// The database file, relative to the config file.
    #[serde(default = "default_outbox_path")]
    pub path: String,
    /// Most events waiting, all sinks together; beyond, each event
    /// definition's `when_full` applies.
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// Largest event (its CloudEvent JSON); a larger one is refused like a
    /// full outbox.
    #[serde(default = "default_max_event_size")]
    pub max_event_size: ByteSize,
    /// The durability window: appends are committed (fsync) in batches at
    /// most this far apart. A crash (`kill -9`, power loss) loses at most the
    /// events appended in the last window; the request does not wait for
    /// the commit.
    #[serde(default = "default_flush_interval")]
    pub flush_interval: HumanDuration,
    /// Retries of a failed publish back off exponentially (with jitter)
    /// from `retry_initial` up to `retry_max`, without limit in count: an
    /// event leaves the outbox only when its sink acknowledged it (or
    /// refused it for good: then it is dead-lettered).
    #[serde(default = "default_retry_initial")]
    pub retry_initial: HumanDuration,
    /// The longest wait between two attempts to publish an event.
    #[serde(default = "default_retry_max")]
    pub retry_max: HumanDuration,
    /// The age limit: an event not delivered this long after it was
    /// appended is given up and dead-lettered (with the last error), so a
    /// sink that never comes back cannot hold events forever.
    #[serde(default = "default_max_age")]
    pub max_age: HumanDuration,
    /// Dead letters kept per sink for inspection (`/admin/events/dead`,
    /// `switchyard events dead`); beyond it the oldest are discarded.
    #[serde(default = "default_max_dead_letters")]
    pub max_dead_letters: usize,
}

/// A sink: exactly one kind.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    /// NATS JetStream (`Nats-Msg-Id` = the event id, for server-side dedupe).
    Nats(NatsSinkConfig),
    /// RabbitMQ: persistent, mandatory messages with publisher confirms.
    Rabbitmq(RabbitMqSinkConfig),
    /// Redis Streams (`XADD`, trimmed with `MAXLEN ~`); at least once.
    RedisStreams(RedisStreamsSinkConfig),
    /// One JSON line per event on standard output (local development).
    Stdout(StdoutSinkConfig),
    /// Kafka (or a Kafka-protocol broker): key = the event's subject.
    Kafka(KafkaSinkConfig),
    /// HTTP POST to an endpoint, signed per the Standard Webhooks spec.
    Webhook(WebhookSinkConfig),
}

/// One event a route publishes when a method's call succeeds.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventDefinition {
    /// The method (simple name, e.g. `CreateOrder`) whose success publishes it.
    pub method: String,
    /// The CloudEvents `type`, e.g. `com.example.order.created`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The CloudEvents `source`; default `/switchyard/<route name>`.
    #[serde(default)]
    pub source: Option<String>,
    /// The CloudEvents `subject`, a template over the call's fields:
    /// `orders/{response.id}`, `{request.user_id}`. Absent: no subject.
    #[serde(default)]
    pub subject: Option<String>,
    /// The sink (a key of `events.sinks`).
    pub sink: String,
    /// Where the sink routes it (a NATS subject…), a template like `subject`.
    pub destination: String,
    /// The event's `data`: `response` (default), `request`, a message field
    /// of either (`response.order`, `request.items`… must be a singular
    /// message), or `none`. For a call that failed (see `on_status`),
    /// `response` is the error, `google.rpc.Status` as JSON.
    #[serde(default = "default_data")]
    pub data: String,
    /// How `data` is encoded: `json` (proto3 JSON, the default) or
    /// `protobuf` (binary protobuf as `data_base64`, `datacontenttype:
    /// application/protobuf`); either way `dataschema` is `proto:<message>`.
    #[serde(default)]
    pub format: DataFormat,
    /// Publish when the answer's HTTP status is one of these (e.g. `[201,
    /// 409]`, failures included); absent: when the call succeeds (gRPC OK).
    #[serde(default)]
    pub on_status: Option<Vec<u16>>,
    /// CloudEvents extension attributes, each a template like `subject`
    /// that may also use `{header.<name>}`, `{claim.<name>}` and
    /// `{consumer}`: e.g. `consumer: "{consumer}"`. Names are lower-case
    /// letters and digits (at most 20, per the spec); an attribute that
    /// renders empty is left out. `traceparent` and `tracestate` (the
    /// distributed tracing extension) carry the call's trace context
    /// unless set here.
    #[serde(default)]
    pub extensions: BTreeMap<String, String>,
    /// When the outbox is full: `reject` the request with 503 before the
    /// upstream is called (default: the event must not be lost), or `drop`:
    /// the request goes through and the oldest waiting `drop` event of the
    /// same sink is evicted to make room (`switchyard_events_total
    /// {outcome="evicted"}`; with none to evict, the new event is dropped).
    #[serde(default)]
    pub when_full: WhenFull,
}

/// How an event's `data` is encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    /// proto3 JSON, `datacontenttype: application/json`.
    #[default]
    Json,
    /// Binary protobuf in `data_base64`, `datacontenttype:
    /// application/protobuf`.
    Protobuf,
}

/// What happens to a request whose event does not fit in the outbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    #[default]
    Reject,
    Drop,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            path: default_outbox_path(),
            max_events: default_max_events(),
            max_event_size: default_max_event_size(),
            flush_interval: default_flush_interval(),
            retry_initial: default_retry_initial(),
            retry_max: default_retry_max(),
            max_age: default_max_age(),
            max_dead_letters: default_max_dead_letters(),
        }
    }
}

fn default_data() -> String {
    "response".to_owned()
}

fn default_outbox_path() -> String {
    "switchyard-outbox.redb".to_owned()
}

fn default_max_events() -> usize {
    1_000_000
}

fn default_max_event_size() -> ByteSize {
    ByteSize(1024 * 1024)
}

fn default_flush_interval() -> HumanDuration {
    HumanDuration(std::time::Duration::from_millis(5))
}

fn default_retry_initial() -> HumanDuration {
    HumanDuration(std::time::Duration::from_millis(100))
}

fn default_retry_max() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(30))
}

fn default_max_age() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(7 * 24 * 3600))
}

fn default_max_dead_letters() -> usize {
    100_000
}
