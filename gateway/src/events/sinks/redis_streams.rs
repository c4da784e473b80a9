//! Redis Streams: each event is one entry (`XADD <destination> MAXLEN ~
//! <max_len> * id <event id> type application/cloudevents+json event
//! <JSON>`), the stream trimmed to about `max_len` entries so it cannot grow
//! without bound. Redis does not deduplicate: delivery is at least once and
//! consumers deduplicate on the `id` field (a retried XADD whose reply was
//! lost adds the event twice).
//!
//! Up to `max_in_flight` XADDs wait for their replies at once, pipelined on
//! the one multiplexed connection (never two with the same ordering key:
//! the relay sees to it).

use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Outgoing, Sink, SinkError, check_max_in_flight, default_max_in_flight};
use crate::config::units::HumanDuration;

/// A Redis Streams sink.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisStreamsSinkConfig {
    /// The Redis server, e.g. `redis://127.0.0.1:6379` (`rediss://` for TLS).
    /// The gateway starts while it is unreachable.
    pub url: String,
    /// Each stream (the event's destination) is trimmed to about this many
    /// entries (`MAXLEN ~`).
    #[serde(default = "default_max_len")]
    pub max_len: u64,
    /// How long an XADD may take (connecting included) before it fails and
    /// is retried.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// XADDs awaiting their replies at once (1..=1024), pipelined on one
    /// connection. Order is kept per ordering key (the event's `subject`,
    /// or its destination when it has none). Default 64; 1 adds one event
    /// at a time.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

fn default_max_len() -> u64 {
    1_000_000
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}

/// Appends events to Redis streams.
pub struct RedisStreamsSink {
    conn: ConnectionManager,
    max_len: u64,
    timeout: Duration,
    max_in_flight: usize,
}

impl RedisStreamsSink {
    /// Checks the config; connects on first use (and reconnects after).
    pub fn new(config: &RedisStreamsSinkConfig) -> Result<RedisStreamsSink, String> {
        let timeout = config.timeout.0;
        if timeout.is_zero() || config.max_len == 0 {
            return Err("`timeout` and `max_len` must be more than zero".to_owned());
        }
        let max_in_flight = check_max_in_flight(config.max_in_flight)?;
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| format!("invalid redis `url`: {e}"))?;
        let conn = switchyard_plugins::redis_conn::lazy_manager(client, timeout)
            .map_err(|e| format!("redis: {e}"))?;
        Ok(RedisStreamsSink {
            conn,
            max_len: config.max_len,
            timeout,
            max_in_flight,
        })
    }
}

impl Sink for RedisStreamsSink {
    fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    fn publish<'a>(&'a self, event: &'a Outgoing) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let mut cmd = redis::cmd("XADD");
            cmd.arg(&event.destination)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.max_len)
                .arg("*")
                .arg("id")
                .arg(&event.id)
                .arg("type")
                .arg("application/cloudevents+json")
                .arg("event")
                .arg(&event.body);
            let add = cmd.query_async::<String>(&mut conn);
            match tokio::time::timeout(self.timeout, add).await {
                Ok(Ok(_entry)) => Ok(()),
                // WRONGTYPE and friends: the key is not a stream; retrying
                // cannot help until someone fixes it, but nothing is lost
                // by waiting either, so it stays transient.
                Ok(Err(e)) => Err(SinkError::Transient(format!("XADD failed: {e}"))),
                Err(_) => Err(SinkError::Transient(format!(
                    "XADD did not answer within {:?}",
                    self.timeout
                ))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REDIS: &str = "redis://127.0.0.1:6379";

    /// The entries of stream `key` (id and fields), oldest first; the
    /// stream is deleted.
    async fn take_stream(key: &str) -> Vec<(String, Vec<String>)> {
        let client = redis::Client::open(REDIS).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let entries = redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: () = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        entries
    }

    fn event(n: u32) -> Outgoing {
        Outgoing {
            id: format!("id-{n}"),
            destination: String::new(),
            body: format!("{{\"n\":{n}}}").into_bytes(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn events_become_stream_entries_in_order_and_the_stream_is_trimmed() {
        let key = format!("switchyard:test:events:{:x}", fastrand::u64(..));
        let sink = RedisStreamsSink::new(&RedisStreamsSinkConfig {
            url: REDIS.into(),
            max_len: 1,
            timeout: HumanDuration::from_secs(2),
            max_in_flight: 1,
        })
        .unwrap();
        for n in 0..3 {
            let out = Outgoing {
                destination: key.clone(),
                ..event(n)
            };
            sink.publish(&out)
                .await
                .expect("this test needs Redis on 127.0.0.1:6379 (scripts/test.sh starts one)");
        }
        let entries = take_stream(&key).await;
        // MAXLEN ~ trims whole nodes only: a short stream keeps what it has.
        assert!(!entries.is_empty() && entries.len() <= 3, "{entries:?}");
        let (_, fields) = entries.last().unwrap();
        assert_eq!(
            fields,
            &[
                "id".to_owned(),
                "id-2".to_owned(),
                "type".to_owned(),
                "application/cloudevents+json".to_owned(),
                "event".to_owned(),
                "{\"n\":2}".to_owned(),
            ]
        );
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_transient_within_the_timeout() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sink = RedisStreamsSink::new(&RedisStreamsSinkConfig {
            url: format!("redis://127.0.0.1:{port}"),
            max_len: 10,
            timeout: HumanDuration::from_millis(300),
            max_in_flight: 64,
        })
        .unwrap();
        let started = std::time::Instant::now();
        let out = Outgoing {
            destination: "k".into(),
            ..event(1)
        };
        assert!(matches!(
            sink.publish(&out).await,
            Err(SinkError::Transient(_))
        ));
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn concurrent_xadds_on_one_connection_each_add_one_entry() {
        use futures_util::StreamExt;

        let key = format!("switchyard:test:events:{:x}", fastrand::u64(..));
        let config = |max_in_flight| RedisStreamsSinkConfig {
            url: REDIS.into(),
            max_len: 1_000,
            timeout: HumanDuration::from_secs(2),
            max_in_flight,
        };
        for bad in [0, 1025] {
            let e = RedisStreamsSink::new(&config(bad)).err().unwrap();
            assert!(e.contains("expected 1..=1024"), "{e}");
        }
        let sink = RedisStreamsSink::new(&config(32)).unwrap();
        assert_eq!(sink.max_in_flight(), 32);
        let events: Vec<Outgoing> = (0..200)
            .map(|n| Outgoing {
                destination: key.clone(),
                ..event(n)
            })
            .collect();
        let results: Vec<_> = futures_util::stream::iter(&events)
            .map(|e| sink.publish(e))
            .buffer_unordered(32)
            .collect()
            .await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let entries = take_stream(&key).await;
        let mut ids: Vec<String> = entries.into_iter().map(|(_, f)| f[1].clone()).collect();
        ids.sort();
        let mut expected: Vec<String> = (0..200).map(|n| format!("id-{n}")).collect();
        expected.sort();
        assert_eq!(ids, expected, "each event once");
    }
}
