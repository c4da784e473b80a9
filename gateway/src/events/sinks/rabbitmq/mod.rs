//! RabbitMQ (AMQP 0-9-1, lapin): each event is a persistent message
//! (`delivery_mode` 2, `message_id` = the event id) published to `exchange`
//! with the event's destination as the routing key, on a channel in
//! **publisher-confirm** mode: a publish succeeds only once the broker
//! confirmed it. Messages are `mandatory`: one no queue is bound for comes
//! back and counts as a failed (retried) publish instead of vanishing.
//! RabbitMQ does not deduplicate: delivery is at least once, consumers
//! deduplicate on `message_id`.
//!
//! Content modes, after the CloudEvents AMQP protocol binding (written for
//! AMQP 1.0; RabbitMQ carries its application properties as AMQP 0-9-1
//! message headers and converts one into the other between protocols):
//! - **structured** (default): the body is the stored event, `content_type:
//!   application/cloudevents+json`.
//! - **binary** (`mode: binary`): the body is the event's data (the bytes of
//!   `data`, or `data_base64` decoded), `content_type` is its
//!   `datacontenttype` (binding §3.1.1; absent for an event without data),
//!   and every other attribute is a message header `cloudEvents_<name>`
//!   (§3.1.3.1) holding its canonical string form (a long string; §3.1.3.2
//!   allows strings for every type). The binding allows the `cloudEvents_`
//!   or the `cloudEvents:` prefix and says `_` SHOULD be preferred (JMS 2.0
//!   selectors cannot name `:`); the official CloudEvents Java SDK's Spring
//!   AMQP (RabbitMQ) binding writes `cloudEvents_` and reads both
//!   (`io.cloudevents.spring.amqp.CloudEventsHeaders`).
//!
//! Up to `max_in_flight` publishes await their confirms at once on the one
//! channel (RabbitMQ confirms by delivery tag; never two with the same
//! ordering key: the relay sees to it). A failure closes the connection
//! the failed publish used, not a newer one another publish opened since.
//!
//! Errors: an event that can never be a message (in binary mode a stored
//! event that cannot be read back, an attribute name or media type longer
//! than AMQP's 255-byte short strings; an id that long in either mode) is
//! [`SinkError::Permanent`]; every failure to deliver is
//! [`SinkError::Transient`].

use std::borrow::Cow;
use std::time::Duration;

use futures_util::future::BoxFuture;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::{Outgoing, Sink, SinkError, check_max_in_flight, default_max_in_flight};
use crate::config::units::HumanDuration;
use crate::events::cloudevent::{self, ContentMode, STRUCTURED_CONTENT_TYPE};

/// The prefix of a CloudEvents attribute header in binary mode
/// (`cloudEvents_id`, `cloudEvents_type`…).
pub const ATTRIBUTE_PREFIX: &str = "cloudEvents_";

/// A RabbitMQ sink.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RabbitMqSinkConfig {
    /// The broker, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`
    /// (`amqps://` for TLS). The gateway starts while it is unreachable.
    pub url: String,
    /// The exchange events are published to; `""` (the default exchange)
    /// routes by queue name.
    #[serde(default)]
    pub exchange: String,
    /// Declare `exchange` (durable) with this kind before the first publish.
    #[serde(default)]
    pub declare_exchange: Option<ExchangeType>,
    /// Declare a durable queue and bind it to `exchange` before the first
    /// publish (handy for development; production queues are usually
    /// managed by their consumers).
    #[serde(default)]
    pub declare_queue: Option<QueueConfig>,
    /// `structured` (default): the body is the whole CloudEvent
    /// (`content_type: application/cloudevents+json`); `binary`: the body
    /// is the data alone (`content_type`: its media type) and the attributes
    /// are `cloudEvents_<name>` headers, per the CloudEvents AMQP binding.
    #[serde(default)]
    pub mode: ContentMode,
    /// How long a publish may take, connecting and the confirm included.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Publishes awaiting their confirms at once (1..=1024). Order is kept
    /// per ordering key (the event's `subject`, or its destination when it
    /// has none). Default 64; 1 publishes one event at a time.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

/// An exchange kind.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeType {
    Direct,
    Fanout,
    Topic,
}

/// A queue to declare and bind.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    /// The binding key (`orders.#` on a topic exchange); ignored for the
    /// default exchange.
    #[serde(default)]
    pub binding_key: String,
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}

/// Publishes events to RabbitMQ with confirms.
pub struct RabbitMqSink {
    config: RabbitMqSinkConfig,
    timeout: Duration,
    max_in_flight: usize,
    /// The connection and its idle confirm-mode channels, opened on first
    /// use and again after a failure.
    open: Mutex<Option<Open>>,
    /// Numbers the connections opened, so a failure drops its own only.
    opened: std::sync::atomic::AtomicU64,
}

/// An open connection, its idle channels and its number.
///
/// Each publish has a channel of its own until its confirm arrives: a
/// message that comes back (`basic.return`) is then the publish's own. On
/// one channel shared by concurrent publishes, lapin hands returned
/// messages to whichever confirms it resolves first (a multiple ack
/// resolves them in hash order), so a routed event could be reported
/// unroutable and an unroutable one delivered. At most `max_in_flight`
/// channels are open, one per publish in flight.
struct Open {
    conn: Connection,
    idle: Vec<Channel>,
    number: u64,
}

impl RabbitMqSink {
    /// Checks the config; connects on first use.
    pub fn new(config: &RabbitMqSinkConfig) -> Result<RabbitMqSink, String> {
        if config.timeout.0.is_zero() {
            return Err("`timeout` must be more than zero".to_owned());
        }
        if !(config.url.starts_with("amqp://") || config.url.starts_with("amqps://")) {
            return Err("`url` must start with amqp:// or amqps://".to_owned());
        }
        Ok(RabbitMqSink {
            timeout: config.timeout.0,
            max_in_flight: check_max_in_flight(config.max_in_flight)?,
            config: config.clone(),
            open: Mutex::new(None),
            opened: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// A channel of its own for one publish and its connection's number:
    /// an idle one, or a new one (on a new connection when there is none
    /// or it broke).
    async fn channel(&self) -> Result<(Channel, u64), String> {
        let mut open = self.open.lock().await;
        if let Some(current) = open.as_mut()
            && current.conn.status().connected()
        {
            while let Some(channel) = current.idle.pop() {
                if channel.status().connected() {
                    return Ok((channel, current.number));
                }
            }
            let channel = self.confirm_channel(&current.conn).await?;
            return Ok((channel, current.number));
        }
        *open = None;
        let conn = Connection::connect(&self.config.url, ConnectionProperties::default())
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let channel = self.confirm_channel(&conn).await?;
        self.declare(&channel).await?;
        let number = self
            .opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        *open = Some(Open {
            conn,
            idle: Vec::new(),
            number,
        });
        Ok((channel, number))
    }

    /// A new channel on `conn` in publisher-confirm mode.
    async fn confirm_channel(&self, conn: &Connection) -> Result<Channel, String> {
        let channel = conn
            .create_channel()
            .await
            .map_err(|e| format!("cannot open a channel: {e}"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| format!("cannot enable publisher confirms: {e}"))?;
        Ok(channel)
    }

    /// Gives a channel back after its publish was confirmed.
    async fn release(&self, channel: Channel, number: u64) {
        let mut open = self.open.lock().await;
        if let Some(current) = open.as_mut()
            && current.number == number
            && current.idle.len() < self.max_in_flight
        {
            current.idle.push(channel);
        }
    }

    /// Drops connection `number` after a failure on it (the next publish
    /// opens a fresh one); a newer connection is left alone.
    async fn drop_connection(&self, number: u64) {
        let mut open = self.open.lock().await;
        if open.as_ref().is_some_and(|o| o.number == number) {
            *open = None;
        }
    }

    async fn declare(&self, channel: &Channel) -> Result<(), String> {
        let exchange = self.config.exchange.as_str();
        if let Some(kind) = self.config.declare_exchange {
            let kind = match kind {
                ExchangeType::Direct => ExchangeKind::Direct,
                ExchangeType::Fanout => ExchangeKind::Fanout,
                ExchangeType::Topic => ExchangeKind::Topic,
            };
            channel
                .exchange_declare(
                    exchange.into(),
                    kind,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| format!("cannot declare exchange `{exchange}`: {e}"))?;
        }
        if let Some(queue) = &self.config.declare_queue {
            channel
                .queue_declare(
                    queue.name.as_str().into(),
                    QueueDeclareOptions::durable(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| format!("cannot declare queue `{}`: {e}", queue.name))?;
            if !exchange.is_empty() {
                channel
                    .queue_bind(
                        queue.name.as_str().into(),
                        exchange.into(),
                        queue.binding_key.as_str().into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| format!("cannot bind queue `{}`: {e}", queue.name))?;
            }
        }
        Ok(())
    }

    async fn send(
        &self,
        channel: &Channel,
        event: &Outgoing,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<Verdict, String> {
        let confirm = channel
            .basic_publish(
                self.config.exchange.as_str().into(),
                event.destination.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                properties,
            )
            .await
            .map_err(|e| format!("publish failed: {e}"))?;
        Ok(
            match confirm.await.map_err(|e| format!("no confirm: {e}"))? {
                Confirmation::Ack(None) => Ok(()),
                Confirmation::Ack(Some(_)) => Err(format!(
                    "unroutable: no queue is bound for routing key `{}` on exchange `{}`",
                    event.destination, self.config.exchange
                )),
                Confirmation::Nack(_) => Err("the broker refused the message (nack)".to_owned()),
                Confirmation::NotRequested => {
                    return Err("publisher confirms are off".to_owned());
                }
            },
        )
    }
}

/// The broker's verdict on a confirmed publish: accepted, or why not.
type Verdict = Result<(), String>;

impl Sink for RabbitMqSink {
    fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    fn publish<'a>(&'a self, event: &'a Outgoing) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let (body, properties) = message(event, self.config.mode)
                .map_err(|e| SinkError::Permanent(format!("event {}: {e}", event.id)))?;
            // One deadline for connecting and the confirm (no timer is
            // armed when the channel is open already).
            let deadline = tokio::time::Instant::now() + self.timeout;
            let late = || format!("no confirm within {:?}", self.timeout);
            let (channel, number) = match tokio::time::timeout_at(deadline, self.channel()).await {
                Ok(Ok(open)) => open,
                Ok(Err(e)) => return Err(SinkError::Transient(e)),
                Err(_) => return Err(SinkError::Transient(late())),
            };
            let send = self.send(&channel, event, &body, properties);
            let error = match tokio::time::timeout_at(deadline, send).await {
                Ok(Ok(verdict)) => {
                    // The channel is fine whatever the broker said.
                    self.release(channel, number).await;
                    return verdict.map_err(SinkError::Transient);
                }
                Ok(Err(e)) => e,
                Err(_) => late(),
            };
            // The next publish opens a fresh connection and channel.
            self.drop_connection(number).await;
            Err(SinkError::Transient(error))
        })
    }
}

/// The body and properties of `event` in `mode` (module docs). An error is
/// the event's own: retrying cannot help.
fn message(
    event: &Outgoing,
    mode: ContentMode,
) -> Result<(Cow<'_, [u8]>, BasicProperties), String> {
    let short = |text: String, what: &str| {
        ShortString::try_new(text)
            .map_err(|e| format!("{what} cannot be an AMQP short string: {e}"))
    };
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_message_id(short(event.id.clone(), "the id")?);
    match mode {
        ContentMode::Structured => Ok((
            Cow::Borrowed(&event.body),
            properties.with_content_type(STRUCTURED_CONTENT_TYPE.into()),
        )),
        ContentMode::Binary => {
            let parts = cloudevent::binary(&event.body)?;
            let mut headers = FieldTable::default();
            for (name, value) in parts.attributes {
                let key = short(format!("{ATTRIBUTE_PREFIX}{name}"), "an attribute name")?;
                headers.insert(key, AMQPValue::LongString(LongString::from(value)));
            }
            let mut properties = properties.with_headers(headers);
            if !parts.data.is_empty() {
                properties =
                    properties.with_content_type(short(parts.content_type, "datacontenttype")?);
            }
            Ok((Cow::Owned(parts.data), properties))
        }
    }
}

#[cfg(test)]
mod tests;
