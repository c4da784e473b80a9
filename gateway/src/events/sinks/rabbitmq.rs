//! RabbitMQ (AMQP 0-9-1, lapin): each event is a persistent message
//! (`delivery_mode` 2, `message_id` = the event id, `content_type:
//! application/cloudevents+json`) published to `exchange` with the event's
//! destination as the routing key, on a channel in **publisher-confirm**
//! mode: a publish succeeds only once the broker confirmed it. Messages are
//! `mandatory`: one no queue is bound for comes back and counts as a failed
//! (retried) publish instead of vanishing. RabbitMQ does not deduplicate:
//! delivery is at least once, consumers deduplicate on `message_id`.

use std::time::Duration;

use futures_util::future::BoxFuture;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::{Outgoing, Sink, SinkError};
use crate::config::units::HumanDuration;

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
    /// How long a publish may take, connecting and the confirm included.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
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
    /// The connection and its confirm-mode channel, opened on first use and
    /// again after a failure.
    open: Mutex<Option<(Connection, Channel)>>,
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
            config: config.clone(),
            open: Mutex::new(None),
        })
    }

    async fn channel(&self) -> Result<Channel, String> {
        let mut open = self.open.lock().await;
        if let Some((conn, channel)) = open.as_ref()
            && conn.status().connected()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        *open = None;
        let conn = Connection::connect(&self.config.url, ConnectionProperties::default())
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let channel = conn
            .create_channel()
            .await
            .map_err(|e| format!("cannot open a channel: {e}"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| format!("cannot enable publisher confirms: {e}"))?;
        self.declare(&channel).await?;
        *open = Some((conn, channel.clone()));
        Ok(channel)
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

    async fn send(&self, event: &Outgoing) -> Result<(), String> {
        let channel = self.channel().await?;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/cloudevents+json".into())
            .with_message_id(event.id.as_str().into());
        let confirm = channel
            .basic_publish(
                self.config.exchange.as_str().into(),
                event.destination.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &event.body,
                properties,
            )
            .await
            .map_err(|e| format!("publish failed: {e}"))?;
        match confirm.await.map_err(|e| format!("no confirm: {e}"))? {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err(format!(
                "unroutable: no queue is bound for routing key `{}` on exchange `{}`",
                event.destination, self.config.exchange
            )),
            Confirmation::Nack(_) => Err("the broker refused the message (nack)".to_owned()),
            Confirmation::NotRequested => Err("publisher confirms are off".to_owned()),
        }
    }
}

impl Sink for RabbitMqSink {
    fn publish<'a>(&'a self, event: &'a Outgoing) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            match tokio::time::timeout(self.timeout, self.send(event)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => {
                    // The next publish opens a fresh connection and channel.
                    *self.open.lock().await = None;
                    Err(SinkError::Transient(e))
                }
                Err(_) => {
                    *self.open.lock().await = None;
                    Err(SinkError::Transient(format!(
                        "no confirm within {:?}",
                        self.timeout
                    )))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use lapin::options::{BasicAckOptions, BasicConsumeOptions};

    use super::*;

    const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

    fn event(queue: &str, n: u32) -> Outgoing {
        Outgoing {
            id: format!("id-{n}"),
            destination: queue.to_owned(),
            body: format!("{{\"n\":{n}}}").into_bytes(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn confirmed_persistent_messages_reach_a_bound_queue_in_order() {
        let queue = format!("switchyard-test-{:x}", fastrand::u64(..));
        let sink = RabbitMqSink::new(&RabbitMqSinkConfig {
            url: AMQP.into(),
            exchange: String::new(),
            declare_exchange: None,
            declare_queue: Some(QueueConfig {
                name: queue.clone(),
                binding_key: String::new(),
            }),
            timeout: HumanDuration::from_secs(5),
        })
        .unwrap();
        for n in 0..3 {
            sink.publish(&event(&queue, n)).await.expect(
                "this test needs RabbitMQ on 127.0.0.1:5672 (guest/guest; scripts/test.sh starts it)",
            );
        }
        let conn = Connection::connect(AMQP, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = conn.create_channel().await.unwrap();
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "test".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        for n in 0..3 {
            let delivery = tokio::time::timeout(Duration::from_secs(5), consumer.next())
                .await
                .expect("a message")
                .expect("open")
                .expect("delivered");
            assert_eq!(delivery.data, format!("{{\"n\":{n}}}").into_bytes());
            let props = &delivery.properties;
            assert_eq!(props.delivery_mode(), &Some(2));
            assert_eq!(
                props.message_id().as_ref().map(|s| s.as_str()),
                Some(format!("id-{n}").as_str())
            );
            delivery.ack(BasicAckOptions::default()).await.unwrap();
        }
        let _ = channel
            .queue_delete(queue.as_str().into(), Default::default())
            .await;
    }

    #[tokio::test]
    async fn an_unroutable_event_is_a_retried_failure_not_a_silent_loss() {
        let sink = RabbitMqSink::new(&RabbitMqSinkConfig {
            url: AMQP.into(),
            exchange: String::new(),
            declare_exchange: None,
            declare_queue: None,
            timeout: HumanDuration::from_secs(5),
        })
        .unwrap();
        let nowhere = format!("switchyard-no-such-queue-{:x}", fastrand::u64(..));
        match sink.publish(&event(&nowhere, 1)).await {
            Err(SinkError::Transient(e)) => assert!(e.contains("unroutable"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unreachable_broker_is_transient_within_the_timeout() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sink = RabbitMqSink::new(&RabbitMqSinkConfig {
            url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            exchange: String::new(),
            declare_exchange: None,
            declare_queue: None,
            timeout: HumanDuration::from_millis(500),
        })
        .unwrap();
        let started = std::time::Instant::now();
        assert!(matches!(
            sink.publish(&event("q", 1)).await,
            Err(SinkError::Transient(_))
        ));
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
