//! Matches JetStream publish acks to the publishes awaiting them.
//!
//! Each publish carries the reply subject `<inbox>.<n>`, `n` a counter; one
//! subscription on `<inbox>.*` takes every ack of the sink, and a table of
//! pending publishes hands each ack to its publish. A sweep every quarter of
//! `ack_timeout` fails the publishes that waited longer than `ack_timeout`
//! (at most 1.25 × `ack_timeout`), so a publish arms no timer of its own.
//!
//! This replaces async-nats's `jetstream::Context::send_publish`, which per
//! publish makes an inbox, arms two timers, takes a semaphore permit, hands
//! its receiver to an acker task on drop and parses the ack as an untagged
//! enum. The connection (reconnects, TLS, credentials, the subscription
//! made again after a reconnect) stays async-nats's.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::{Message, StatusCode};
use futures_util::StreamExt as _;
use serde::Deserialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The stream's answer to one publish.
#[derive(Debug)]
pub(super) enum Ack {
    /// Stored (or a duplicate of a stored message: dropped by id).
    Stored,
    /// No stream stores the subject (the server's "no responders").
    NoStream,
    /// The stream refused it.
    Refused(jetstream::Error),
    /// A reply that is neither an ack nor an API error.
    Unreadable(String),
    /// No reply within the ack timeout.
    TimedOut,
}

/// How many sweeps a publish may wait through: sweeps come every quarter
/// of the ack timeout, and the one that finds an entry 5 sweeps old fails
/// it (it waited at least 4 whole periods).
const SWEEPS: u64 = 5;

/// The pending publishes of one sink.
pub(super) struct Acks {
    /// `<inbox>.`: a reply subject is this and the publish's number.
    prefix: String,
    next: AtomicU64,
    /// The sweeps so far: each entry remembers when it was made.
    sweeps: AtomicU64,
    pending: Mutex<HashMap<u64, Waiting>>,
}

struct Waiting {
    sweep: u64,
    reply: oneshot::Sender<Ack>,
}

/// A publish waiting for its ack; dropped before the ack came (its relay
/// gave up on it), it leaves the table.
pub(super) struct Pending<'a> {
    acks: &'a Acks,
    number: u64,
    ack: oneshot::Receiver<Ack>,
    settled: bool,
}

impl Pending<'_> {
    /// The stream's answer, or `None` when the sink is going away.
    pub(super) async fn ack(mut self) -> Option<Ack> {
        let ack = (&mut self.ack).await.ok();
        self.settled = true;
        ack
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.acks.lock().remove(&self.number);
        }
    }
}

/// The two tasks of [`Acks`], stopped when dropped.
pub(super) struct AckTasks([JoinHandle<()>; 2]);

impl Drop for AckTasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Acks {
    /// Subscribes to a new inbox of `client` and starts the reader and the
    /// sweep. The subscription is queued while the client is not connected
    /// (and made again after every reconnect).
    pub(super) async fn start(
        client: &async_nats::Client,
        ack_timeout: Duration,
    ) -> Result<(Arc<Acks>, AckTasks), String> {
        let inbox = client.new_inbox();
        let mut replies = client
            .subscribe(format!("{inbox}.*"))
            .await
            .map_err(|e| format!("nats sink: cannot subscribe to the ack inbox: {e}"))?;
        let acks = Arc::new(Acks {
            prefix: format!("{inbox}."),
            next: AtomicU64::new(0),
            sweeps: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
        });
        let reader = tokio::spawn({
            let acks = Arc::clone(&acks);
            async move {
                while let Some(message) = replies.next().await {
                    acks.resolve(&message);
                }
            }
        });
        let sweeper = tokio::spawn({
            let acks = Arc::clone(&acks);
            let period = (ack_timeout / 4).max(Duration::from_millis(1));
            async move {
                let mut every = tokio::time::interval(period);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                every.tick().await;
                loop {
                    every.tick().await;
                    acks.sweep();
                }
            }
        });
        Ok((acks, AckTasks([reader, sweeper])))
    }

    /// Registers a publish: send it with the reply subject returned, then
    /// await [`Pending::ack`].
    pub(super) fn expect(&self) -> (String, Pending<'_>) {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let (reply, ack) = oneshot::channel();
        let waiting = Waiting {
            sweep: self.sweeps.load(Ordering::Relaxed),
            reply,
        };
        self.lock().insert(number, waiting);
        let mut reply_subject = String::with_capacity(self.prefix.len() + 20);
        reply_subject.push_str(&self.prefix);
        // Writing to a String cannot fail.
        let _ = write!(reply_subject, "{number}");
        let pending = Pending {
            acks: self,
            number,
            ack,
            settled: false,
        };
        (reply_subject, pending)
    }

    /// Hands a reply to its publish; a reply nobody waits for (timed out,
    /// or not ours) is dropped.
    fn resolve(&self, message: &Message) {
        let Some(n) = self.number(&message.subject) else {
            return;
        };
        let Some(waiting) = self.lock().remove(&n) else {
            return;
        };
        // The publish may have gone (its relay stopped): nothing to tell.
        let _ = waiting.reply.send(read(message));
    }

    /// Fails every publish that waited [`SWEEPS`] sweeps.
    fn sweep(&self) {
        let now = self.sweeps.fetch_add(1, Ordering::Relaxed) + 1;
        let mut expired = Vec::new();
        self.lock().retain(|_, waiting| {
            let keep = now - waiting.sweep < SWEEPS;
            if !keep {
                expired.push(std::mem::replace(&mut waiting.reply, oneshot::channel().0));
            }
            keep
        });
        for reply in expired {
            let _ = reply.send(Ack::TimedOut);
        }
    }

    fn number(&self, subject: &str) -> Option<u64> {
        subject.strip_prefix(&self.prefix)?.parse().ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiting>> {
        // A panic while holding the lock leaves the table consistent (each
        // step is one map operation): go on with it.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        self.lock().len()
    }
}

/// A JetStream publish reply: `{"stream":…,"seq":…}` (maybe with
/// `"duplicate":true`) or `{"error":{…}}`.
#[derive(Deserialize)]
struct Reply<'a> {
    #[serde(default, borrow)]
    stream: Option<&'a str>,
    #[serde(default)]
    error: Option<jetstream::Error>,
}

fn read(message: &Message) -> Ack {
    if message.status == Some(StatusCode::NO_RESPONDERS) {
        return Ack::NoStream;
    }
    match serde_json::from_slice::<Reply<'_>>(&message.payload) {
        Ok(Reply { error: Some(e), .. }) => Ack::Refused(e),
        Ok(Reply {
            stream: Some(_), ..
        }) => Ack::Stored,
        Ok(_) => Ack::Unreadable(format!(
            "a reply without stream or error: {:?}",
            String::from_utf8_lossy(&message.payload)
        )),
        Err(e) => Ack::Unreadable(format!("an unreadable reply ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acks() -> Acks {
        Acks {
            prefix: "_INBOX.test.".to_owned(),
            next: AtomicU64::new(0),
            sweeps: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn reply(subject: &str, payload: &'static [u8]) -> Message {
        Message {
            subject: subject.into(),
            reply: None,
            payload: bytes::Bytes::from_static(payload),
            headers: None,
            status: None,
            description: None,
            length: payload.len(),
        }
    }

    #[test]
    fn each_reply_reaches_the_publish_whose_number_it_carries() {
        let acks = acks();
        let (first_reply, mut first) = acks.expect();
        let (second_reply, mut second) = acks.expect();
        assert_eq!(first_reply, "_INBOX.test.0");
        assert_eq!(second_reply, "_INBOX.test.1");
        acks.resolve(&reply(
            "_INBOX.test.1",
            br#"{"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}}"#,
        ));
        acks.resolve(&reply(
            "_INBOX.test.0",
            br#"{"stream":"EVENTS","seq":7,"duplicate":true}"#,
        ));
        assert!(matches!(first.ack.try_recv(), Ok(Ack::Stored)));
        match second.ack.try_recv() {
            Ok(Ack::Refused(e)) => assert_eq!(
                e.error_code(),
                jetstream::ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM
            ),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(acks.waiting(), 0);
    }

    #[test]
    fn no_responders_and_unreadable_replies_are_told_apart() {
        let acks = acks();
        let (_, mut none) = acks.expect();
        let (_, mut odd) = acks.expect();
        let mut no_responders = reply("_INBOX.test.0", b"");
        no_responders.status = Some(StatusCode::NO_RESPONDERS);
        acks.resolve(&no_responders);
        acks.resolve(&reply("_INBOX.test.1", b"{\"seq\":1}"));
        assert!(matches!(none.ack.try_recv(), Ok(Ack::NoStream)));
        assert!(matches!(odd.ack.try_recv(), Ok(Ack::Unreadable(_))));
    }

    #[test]
    fn replies_for_no_one_are_dropped() {
        let acks = acks();
        let (_, mut pending) = acks.expect();
        acks.resolve(&reply("_INBOX.test.9", b"{\"stream\":\"S\"}"));
        acks.resolve(&reply("_INBOX.other.0", b"{\"stream\":\"S\"}"));
        acks.resolve(&reply("_INBOX.test.x", b"{\"stream\":\"S\"}"));
        assert!(pending.ack.try_recv().is_err());
        assert_eq!(acks.waiting(), 1);
        drop(pending);
        assert_eq!(acks.waiting(), 0, "a publish given up leaves the table");
    }

    #[test]
    fn a_publish_times_out_on_the_fifth_sweep_after_it_was_sent() {
        let acks = acks();
        acks.sweep(); // sent after one sweep: waits for sweeps 2..=6
        let (_, mut pending) = acks.expect();
        for _ in 0..SWEEPS - 1 {
            acks.sweep();
            assert!(pending.ack.try_recv().is_err(), "timed out too early");
        }
        acks.sweep();
        assert!(matches!(pending.ack.try_recv(), Ok(Ack::TimedOut)));
        assert_eq!(acks.waiting(), 0);
        // Its late ack finds no one.
        acks.resolve(&reply("_INBOX.test.0", b"{\"stream\":\"S\"}"));
    }
}
