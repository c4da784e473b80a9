//! The `kafka` sink: Kafka, or a broker speaking its protocol, through
//! rskafka (pure Rust). docs/kafka.md has the user's side.
//!
//! Each event is one record in the topic named by the event's
//! `destination`, keyed by its subject (by its id when it has none, see
//! [`record::key`]), in the partition Kafka's default partitioner would pick
//! for that key ([`partition::partition_for`]) among the topic's partitions
//! (from metadata, cached, fetched again after any failure on the topic and
//! every [`METADATA_MAX_AGE`]). Produce requests ask for `acks=all` (rskafka
//! always sends `acks = -1`): a publish succeeds once every in-sync replica
//! has the record. `mode: structured` (default) sends the stored CloudEvent
//! as the value with `content-type: application/cloudevents+json` and
//! `ce_id`; `mode: binary` sends the attributes as `ce_<name>` headers and
//! the data alone as the value ([`record::build`]).
//!
//! **Order per key.** Up to `max_in_flight` produce requests are in flight
//! at once (default 64), never two for events with the same ordering key
//! (the event's subject, the record key; else its destination, the topic):
//! the relay starts an event only once the previous one with its key is
//! acknowledged, and after a failure retries it before anything later with
//! that key. So a retry cannot overtake or be overtaken by a later event of
//! its key (what Kafka's `max.in.flight.requests = 1` guarantees per
//! partition), while events of other keys, in the same partition or not,
//! overlap. `max_in_flight: 1` keeps one request in flight for the whole
//! sink. A retry after a lost acknowledgement can store an event twice (at
//! least once, no idempotent producer in rskafka): consumers deduplicate on
//! `ce_id` / the CloudEvent `id`.
//!
//! **Connection.** [`KafkaSink::connect`] checks the config and returns at
//! once; a background task connects to the bootstrap brokers, retrying
//! forever, so the gateway starts while Kafka is down. Once connected,
//! rskafka re-establishes broker connections itself. A publish waits for the
//! connection, the metadata and the acknowledgement together up to
//! `ack_timeout`, then fails as transient (the relay retries it); nothing is
//! queued in the client.
//!
//! **Topics.** With `create_topic`, a topic missing from the metadata is
//! created with that many partitions and that replication factor before the
//! event is produced; without it a missing topic is a transient failure (it
//! may be created, or the broker may create it on first use). Errors:
//! [`error`].

mod error;
pub mod partition;
pub mod record;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use rskafka::BackoffConfig;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::sync::{Mutex, watch};

use super::{Outgoing, Sink, SinkError, check_max_in_flight, default_max_in_flight};
use crate::config::units::HumanDuration;
use crate::events::cloudevent::ContentMode;

pub use partition::partition_for;

/// How the gateway names itself to the brokers (their logs and quotas).
const CLIENT_ID: &str = "switchyard";

/// How long a topic's partition count is trusted before it is fetched again
/// (Kafka producers' `metadata.max.age.ms` default): partitions added to a
/// topic are used within this long.
pub const METADATA_MAX_AGE: Duration = Duration::from_secs(300);

/// Waits between attempts to reach the bootstrap brokers: doubling from the
/// first to the last.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Partition clients kept at most (one per topic and partition used); past
/// it they are all dropped and made again as needed, so topics named by a
/// template cannot grow the cache without bound.
const MAX_PARTITION_CLIENTS: usize = 1024;

/// A Kafka sink.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// Bootstrap brokers, `host:port` (e.g. `["kafka-1:9092",
    /// "kafka-2:9092"]`); the rest of the cluster is found from their
    /// metadata. Plaintext, without authentication. The gateway starts while
    /// none is reachable and keeps trying.
    pub brokers: Vec<String>,
    /// `structured` (default): the value is the whole CloudEvent
    /// (`content-type: application/cloudevents+json`); `binary`: the
    /// attributes are `ce_<name>` headers and the value is the data alone,
    /// per the CloudEvents Kafka binding.
    #[serde(default)]
    pub mode: ContentMode,
    /// How long a publish may take, connecting, metadata and the
    /// acknowledgement of every in-sync replica (`acks=all`) included; past
    /// it the publish fails and is retried. Default 5s.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout: HumanDuration,
    /// Create a topic missing from the cluster's metadata before its first
    /// event, with these settings. Absent: topics must exist (or the broker
    /// creates them on first use, `auto.create.topics.enable`).
    #[serde(default)]
    pub create_topic: Option<CreateTopicConfig>,
    /// Produce requests awaiting their acknowledgement at once (1..=1024).
    /// Order is kept per ordering key (the event's `subject`, which is also
    /// the record key, or its topic when it has none): two events with the
    /// same key are never in flight together. Default 64; 1 produces one
    /// event at a time.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

/// How to create a missing topic.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreateTopicConfig {
    /// Its partitions (at least 1): keys are spread over them, each key's
    /// events staying in order in one.
    pub partitions: u32,
    /// Copies of each partition (at least 1, at most the brokers). With
    /// `acks=all` a record is acknowledged once every in-sync copy has it.
    pub replication_factor: u16,
}

fn default_ack_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}

/// Publishes events to Kafka (see the module docs).
pub struct KafkaSink {
    /// `Some` once the background task reached the brokers.
    client: watch::Receiver<Option<Arc<Client>>>,
    /// The background connection task (aborted when the sink is dropped).
    connector: tokio::task::JoinHandle<()>,
    /// Why the last attempt to reach the brokers failed, for error messages.
    last_connect_error: Arc<std::sync::Mutex<String>>,
    mode: ContentMode,
    ack_timeout: Duration,
    create_topic: Option<CreateTopicConfig>,
    max_in_flight: usize,
    /// Metadata and partition clients. Held while a publish finds its
    /// partition's client (fetching metadata or creating the topic when
    /// needed), not while it produces.
    state: Mutex<State>,
}

/// What the sink learnt about topics.
#[derive(Default)]
struct State {
    /// Topic → its partition count and when it was fetched.
    partitions: HashMap<String, (u32, Instant)>,
    /// (topic, partition) → a client bound to its leader.
    clients: HashMap<(String, i32), Arc<PartitionClient>>,
}

impl State {
    /// Forgets what is known of `topic`: the next publish to it fetches the
    /// metadata and finds the leaders again.
    fn forget(&mut self, topic: &str) {
        self.partitions.remove(topic);
        self.clients.retain(|(t, _), _| t != topic);
    }
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("mode", &self.mode)
            .field("ack_timeout", &self.ack_timeout)
            .field("create_topic", &self.create_topic)
            .finish_non_exhaustive()
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        self.connector.abort();
    }
}

impl KafkaSink {
    /// Validates `config` and starts connecting in the background: returns
    /// at once, whether or not a broker is up. Errors are configuration
    /// errors. Must be called within a Tokio runtime.
    pub async fn connect(config: &KafkaSinkConfig) -> Result<KafkaSink, String> {
        let ack_timeout = config.ack_timeout.0;
        if ack_timeout.is_zero() {
            return Err("kafka sink: `ack_timeout` must be more than 0".to_owned());
        }
        let max_in_flight =
            check_max_in_flight(config.max_in_flight).map_err(|e| format!("kafka sink: {e}"))?;
        if config.brokers.is_empty() {
            return Err("kafka sink: `brokers` is empty: give at least one `host:port`".to_owned());
        }
        for broker in &config.brokers {
            check_broker(broker).map_err(|e| format!("kafka sink: `brokers`: {e}"))?;
        }
        if let Some(create) = &config.create_topic {
            if create.partitions == 0 || create.partitions > i32::MAX as u32 {
                return Err(format!(
                    "kafka sink: `create_topic.partitions` must be from 1 to {}, not {}",
                    i32::MAX,
                    create.partitions
                ));
            }
            if create.replication_factor == 0 || create.replication_factor > i16::MAX as u16 {
                return Err(format!(
                    "kafka sink: `create_topic.replication_factor` must be from 1 to {}, not {}",
                    i16::MAX,
                    create.replication_factor
                ));
            }
        }

        // rskafka retries failed requests itself (a broken connection, a
        // leader move); bounded here so a publish reports the cause before
        // `ack_timeout` rather than only "timed out".
        let backoff = BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
            deadline: Some(ack_timeout / 2),
        };
        let (sender, client) = watch::channel(None);
        let last_connect_error = Arc::new(std::sync::Mutex::new(String::from("not tried yet")));
        let connector = tokio::spawn(connect_forever(
            config.brokers.clone(),
            backoff,
            sender,
            last_connect_error.clone(),
        ));
        Ok(KafkaSink {
            client,
            connector,
            last_connect_error,
            mode: config.mode,
            ack_timeout,
            create_topic: config.create_topic,
            max_in_flight,
            state: Mutex::new(State::default()),
        })
    }

    async fn publish_within_timeout(
        &self,
        event: &Outgoing,
        connected: &mut bool,
    ) -> Result<(), SinkError> {
        let topic = event.destination.as_str();
        record::check_topic(topic)
            .map_err(|e| SinkError::Permanent(format!("event {}: {e}", event.id)))?;
        let record = record::build(event, self.mode)
            .map_err(|e| SinkError::Permanent(format!("event {}: {e}", event.id)))?;

        let client = self.client().await?;
        *connected = true;
        let key = record::key(event);
        let produced = match self.partition_client(&client, topic, key).await {
            Ok((partition, target)) => target
                .produce(vec![record], Compression::NoCompression)
                .await
                .map(|_| ())
                .map_err(|e| {
                    error::classify(&format!("produce to {topic:?} partition {partition}"), &e)
                }),
            Err(e) => Err(e),
        };
        if let Err(SinkError::Transient(_)) = &produced {
            self.state.lock().await.forget(topic);
        }
        produced
    }

    /// The connected client, once the background task has one.
    async fn client(&self) -> Result<Arc<Client>, SinkError> {
        let mut client = self.client.clone();
        let ready = client
            .wait_for(Option::is_some)
            .await
            .map_err(|_| SinkError::Transient("the Kafka connection task ended".to_owned()))?;
        ready
            .as_ref()
            .cloned()
            .ok_or_else(|| SinkError::Transient("not connected to Kafka".to_owned()))
    }

    /// The partition `key` goes to in `topic`, and a client bound to its
    /// leader (cached; found under the state's lock).
    async fn partition_client(
        &self,
        client: &Client,
        topic: &str,
        key: &[u8],
    ) -> Result<(i32, Arc<PartitionClient>), SinkError> {
        let mut state = self.state.lock().await;
        let partitions = self.partition_count(client, &mut state, topic).await?;
        let partition = partition_for(key, partitions);
        let target = (topic.to_owned(), partition);
        if let Some(existing) = state.clients.get(&target) {
            return Ok((partition, existing.clone()));
        }
        // The topic is in the metadata: an unknown-partition answer now is
        // the cluster catching up (a topic just created), so rskafka retries
        // it (within the backoff deadline).
        let made = client
            .partition_client(topic, partition, UnknownTopicHandling::Retry)
            .await
            .map_err(|e| {
                error::classify(
                    &format!("finding the leader of {topic:?} partition {partition}"),
                    &e,
                )
            })?;
        if state.clients.len() >= MAX_PARTITION_CLIENTS {
            state.clients.clear();
        }
        let made = Arc::new(made);
        state.clients.insert(target, made.clone());
        Ok((partition, made))
    }

    /// `topic`'s partition count: cached, or from the cluster's metadata,
    /// creating the topic first when it is missing and `create_topic` says
    /// how.
    async fn partition_count(
        &self,
        client: &Client,
        state: &mut State,
        topic: &str,
    ) -> Result<u32, SinkError> {
        if let Some(&(count, fetched)) = state.partitions.get(topic)
            && fetched.elapsed() < METADATA_MAX_AGE
        {
            return Ok(count);
        }
        let count = match self.fetch_partition_count(client, topic).await? {
            Some(count) => count,
            None => match &self.create_topic {
                None => {
                    // Metadata naming the topic lets a broker that creates
                    // topics on first use (`auto.create.topics.enable`) do
                    // so; the answer itself is not needed.
                    let _ = client
                        .partition_client(topic, 0, UnknownTopicHandling::Error)
                        .await;
                    match self.fetch_partition_count(client, topic).await? {
                        Some(count) => count,
                        None => {
                            return Err(SinkError::Transient(format!(
                                "topic {topic:?} does not exist (the sink has no `create_topic` \
                                 and the broker does not create topics on first use)"
                            )));
                        }
                    }
                }
                Some(create) => {
                    self.create(client, topic, create).await?;
                    // Created now, or by someone else meanwhile: the
                    // metadata says how many partitions it has.
                    match self.fetch_partition_count(client, topic).await? {
                        Some(count) => count,
                        None => create.partitions,
                    }
                }
            },
        };
        state
            .partitions
            .insert(topic.to_owned(), (count, Instant::now()));
        Ok(count)
    }

    /// `topic`'s partition count from the cluster, `None` if it has no such
    /// topic (or it has no partitions yet).
    async fn fetch_partition_count(
        &self,
        client: &Client,
        topic: &str,
    ) -> Result<Option<u32>, SinkError> {
        // rskafka asks for every topic's metadata: done on a topic's first
        // event, after a failure and every METADATA_MAX_AGE, not per event.
        let topics = client
            .list_topics()
            .await
            .map_err(|e| error::classify("fetching the topics' metadata", &e))?;
        Ok(topics
            .iter()
            .find(|t| t.name == topic)
            .map(|t| u32::try_from(t.partitions.len()).unwrap_or(u32::MAX))
            .filter(|&count| count > 0))
    }

    async fn create(
        &self,
        client: &Client,
        topic: &str,
        create: &CreateTopicConfig,
    ) -> Result<(), SinkError> {
        let what = || format!("creating topic {topic:?}");
        let controller = client
            .controller_client()
            .map_err(|e| error::classify(&what(), &e))?;
        let timeout_ms = i32::try_from(self.ack_timeout.as_millis()).unwrap_or(i32::MAX);
        match controller
            .create_topic(
                topic,
                // Both checked to fit when the config was read.
                i32::try_from(create.partitions).unwrap_or(i32::MAX),
                i16::try_from(create.replication_factor).unwrap_or(i16::MAX),
                timeout_ms,
            )
            .await
        {
            Ok(()) => {
                tracing::info!(
                    topic,
                    partitions = create.partitions,
                    replication_factor = create.replication_factor,
                    "kafka sink: topic created"
                );
                Ok(())
            }
            Err(e) if error::is_topic_exists(&e) => Ok(()),
            Err(e) => Err(error::classify(&what(), &e)),
        }
    }
}

impl Sink for KafkaSink {
    fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    fn publish<'a>(&'a self, event: &'a Outgoing) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let mut connected = false;
            let attempt = self.publish_within_timeout(event, &mut connected);
            match tokio::time::timeout(self.ack_timeout, attempt).await {
                Ok(result) => result,
                Err(_) => {
                    // What was learnt may be stale (a leader moved, the
                    // broker restarted): look again next time.
                    self.state.lock().await.forget(&event.destination);
                    Err(SinkError::Transient(if connected {
                        format!(
                            "event {}: no answer from Kafka (metadata, topic creation or the acknowledgement) within {:?}",
                            event.id, self.ack_timeout
                        )
                    } else {
                        let last = self
                            .last_connect_error
                            .lock()
                            .map(|e| e.clone())
                            .unwrap_or_default();
                        format!(
                            "event {}: not connected to Kafka within {:?} (last attempt: {last})",
                            event.id, self.ack_timeout
                        )
                    }))
                }
            }
        })
    }
}

/// Reaches the bootstrap brokers, retrying until it works, then hands the
/// client over and ends (the client reconnects by itself from then on).
async fn connect_forever(
    brokers: Vec<String>,
    backoff: BackoffConfig,
    sender: watch::Sender<Option<Arc<Client>>>,
    last_error: Arc<std::sync::Mutex<String>>,
) {
    let mut wait = RECONNECT_FIRST;
    let mut failures = 0_u64;
    loop {
        let built = ClientBuilder::new(brokers.clone())
            .client_id(CLIENT_ID)
            .backoff_config(backoff.clone())
            .build()
            .await;
        match built {
            Ok(client) => {
                tracing::info!(brokers = ?brokers, "kafka sink: connected");
                let _ = sender.send(Some(Arc::new(client)));
                return;
            }
            Err(e) => {
                let message = e.to_string();
                if failures == 0 {
                    tracing::warn!(brokers = ?brokers, error = %message, "kafka sink: cannot reach the brokers yet; retrying in the background");
                } else {
                    tracing::debug!(brokers = ?brokers, error = %message, "kafka sink: still cannot reach the brokers");
                }
                if let Ok(mut last) = last_error.lock() {
                    *last = message;
                }
                failures += 1;
            }
        }
        let jitter = Duration::from_millis(fastrand::u64(0..=wait.as_millis() as u64 / 4));
        tokio::time::sleep(wait + jitter).await;
        wait = (wait * 2).min(RECONNECT_MAX);
    }
}

/// A bootstrap broker: `host:port`.
fn check_broker(broker: &str) -> Result<(), String> {
    let Some((host, port)) = broker.rsplit_once(':') else {
        return Err(format!("{broker:?} is not `host:port`"));
    };
    if host.is_empty() || host.contains("://") || host.chars().any(char::is_whitespace) {
        return Err(format!(
            "{broker:?} is not `host:port` (no scheme, no spaces)"
        ));
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(()),
        _ => Err(format!("{broker:?} has no valid port")),
    }
}

#[cfg(test)]
mod tests;
