//! Redis Streams: each event is one entry (`XADD <destination> MAXLEN ~
//! <max_len> * id <event id> type application/cloudevents+json event
//! <JSON>`), the stream trimmed to about `max_len` entries so it cannot grow
//! without bound. Redis does not deduplicate: delivery is at least once and
//! consumers deduplicate on the `id` field (a retried XADD whose reply was
//! lost adds the event twice).

use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Outgoing, Sink, SinkError};
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
}

impl RedisStreamsSink {
    /// Checks the config; connects on first use (and reconnects after).
    pub fn new(config: &RedisStreamsSinkConfig) -> Result<RedisStreamsSink, String> {
        let timeout = config.timeout.0;
        if timeout.is_zero() || config.max_len == 0 {
            return Err("`timeout` and `max_len` must be more than zero".to_owned());
        }
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| format!("invalid redis `url`: {e}"))?;
        let conn = switchyard_plugins::redis_conn::lazy_manager(client, timeout)
            .map_err(|e| format!("redis: {e}"))?;
        Ok(RedisStreamsSink {
            conn,
            max_len: config.max_len,
            timeout,
        })
    }
}

impl Sink for RedisStreamsSink {
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
        let client = redis::Client::open(REDIS).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
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
        let _: () = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
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
}
