//! One relay task per sink: takes the sink's events from the outbox in
//! order (from the sink's tail, the events just committed, while it keeps
//! up; from the store after a restart or when it fell behind), publishes
//! them in order per ordering key (the event's subject, else its
//! destination), retrying a failure (an event is never skipped while its
//! sink is merely unavailable), and hands the writer those acknowledged, to
//! be removed in its next commit. A cursor, the last sequence number taken,
//! says where it is: removals are not waited for.
//!
//! Up to the sink's [`Sink::max_in_flight`] publishes await their acks at
//! once, never two with the same ordering key; events start in outbox
//! order. After a failure no new publish starts: the ones in flight finish,
//! then each failed event is retried, oldest first, until it is delivered
//! or dead-lettered, before the relay moves on. So an event is never
//! overtaken by a later one with its key.
//!
//! Retries follow the sink's schedule when it has one (webhooks: a fixed
//! list of waits, then the event is dead-lettered), otherwise exponential
//! back-off with jitter from `retry_initial` to `retry_max`, without limit
//! in count; a `Retry-After` from the sink is honoured (never less than the
//! scheduled wait). An event the sink refuses for good, or one older than
//! `max_age`, is dead-lettered with the reason.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use prometheus::Histogram;

use super::counters::EventCounters;
use super::outbox::{Outbox, Stored, Taken, now_ms};
use super::sinks::{Sink, SinkError};

/// Events read from the outbox at a time.
const BATCH: usize = 256;

/// The age gauge is refreshed at least this often while a relay waits.
const TICK: Duration = Duration::from_secs(1);

/// What one relay needs.
pub struct Relay {
    pub sink: usize,
    pub name: String,
    pub target: Arc<dyn Sink>,
    pub outbox: Arc<Outbox>,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub max_age: Duration,
    pub metrics: RelayMetrics,
}

/// The relay's counters, its sink's age gauge and its delivery latency.
#[derive(Clone)]
pub struct RelayMetrics {
    /// `published`, `retried` (a failed attempt), `dead_lettered`.
    pub counters: EventCounters,
    /// Seconds the oldest waiting event has waited (0: none waits).
    pub oldest_age: prometheus::Gauge,
    /// From append to the sink's acknowledgement.
    pub latency: Histogram,
}

/// What became of one event.
enum Outcome {
    Delivered,
    Dead(String),
}

/// A timer kept armed in the runtime's timer wheel, never awaited (its
/// waker does nothing). Tokio wakes its driver whenever a timer is armed
/// while none was armed when the driver last parked; the sinks arm one per
/// publish (the ack timeout), so a relay back from waiting on the outbox
/// would cost the runtime a wake-up (a syscall) per event. With this one
/// due within [`TICK`], the later ack deadlines need none.
struct WheelAnchor(std::pin::Pin<Box<tokio::time::Sleep>>);

impl WheelAnchor {
    fn new() -> WheelAnchor {
        let mut anchor = WheelAnchor(Box::pin(tokio::time::sleep(TICK)));
        anchor.arm();
        anchor
    }

    /// Re-arms it once it fired.
    fn arm(&mut self) {
        use std::future::Future as _;
        if self.0.is_elapsed() {
            self.0.as_mut().reset(tokio::time::Instant::now() + TICK);
        }
        let mut cx = std::task::Context::from_waker(futures_util::task::noop_waker_ref());
        let _ = self.0.as_mut().poll(&mut cx);
    }
}

impl Relay {
    /// Runs until the task is aborted.
    pub async fn run(self) {
        let mut anchor = WheelAnchor::new();
        // The last sequence number taken (0: none yet).
        let mut cursor = 0;
        loop {
            anchor.arm();
            let batch = match self.outbox.take(self.sink, cursor, BATCH) {
                Taken::Events(batch) => batch,
                Taken::Behind { start } => match self.read_after(cursor).await {
                    // Nothing left in the store after the cursor (those
                    // events were evicted or dead-lettered meanwhile, or a
                    // previous run delivered them all): the tail has the rest.
                    Some((batch, last)) if last == cursor => {
                        cursor = cursor.max(start.saturating_sub(1));
                        batch
                    }
                    Some((batch, last)) => {
                        cursor = last;
                        batch
                    }
                    None => return,
                },
            };
            let Some(last) = batch.last() else {
                self.metrics.oldest_age.set(0.0);
                // Woken by the writer's commit; the timeout is a safety net.
                let _ = tokio::time::timeout(TICK, self.outbox.wake[self.sink].notified()).await;
                continue;
            };
            cursor = cursor.max(last.seq);
            let delivered = self.deliver_batch(&batch).await;
            self.outbox.delivered(self.sink, delivered).await;
        }
    }

    /// The store's events after `cursor` and the last number read (an error
    /// is logged and waited out); `None` when the runtime is shutting down.
    async fn read_after(&self, cursor: u64) -> Option<(Vec<Stored>, u64)> {
        loop {
            let outbox = self.outbox.clone();
            let sink = self.sink;
            match tokio::task::spawn_blocking(move || outbox.read_after(sink, cursor, BATCH)).await
            {
                Ok(Ok(read)) => return Some(read),
                Ok(Err(e)) => {
                    tracing::error!(sink = %self.name, error = %e, "cannot read the outbox");
                    tokio::time::sleep(self.retry_max).await;
                }
                Err(_) => return None,
            }
        }
    }

    /// Publishes `batch` (oldest first) as the module docs say; returns the
    /// sequence numbers of the events delivered (the dead-lettered ones are
    /// already out of the outbox).
    async fn deliver_batch(&self, batch: &[Stored]) -> Vec<u64> {
        let window = self.target.max_in_flight().max(1);
        let mut delivered = Vec::with_capacity(batch.len());
        // `published` by type, counted once per batch rather than per event.
        let mut published: Vec<(&str, u64)> = Vec::new();
        let mut next = 0;
        while next < batch.len() {
            self.set_age(batch[next].appended_ms);
            let mut in_flight = FuturesUnordered::new();
            let mut busy: HashSet<&str> = HashSet::new();
            let mut failed: Vec<(usize, SinkError)> = Vec::new();
            loop {
                while failed.is_empty() && next < batch.len() && in_flight.len() < window {
                    let stored = &batch[next];
                    if !busy.insert(stored.event.ordering_key()) {
                        break; // its key is in flight: wait for it
                    }
                    let index = next;
                    in_flight
                        .push(async move { (index, self.target.publish(&stored.event).await) });
                    next += 1;
                }
                let Some((index, result)) = in_flight.next().await else {
                    break;
                };
                let stored = &batch[index];
                busy.remove(stored.event.ordering_key());
                match result {
                    Ok(()) => {
                        self.waited(stored);
                        match published
                            .iter_mut()
                            .find(|(t, _)| *t == stored.event.event_type)
                        {
                            Some((_, n)) => *n += 1,
                            None => published.push((&stored.event.event_type, 1)),
                        }
                        delivered.push(stored.seq);
                    }
                    Err(error) => failed.push((index, error)),
                }
            }
            failed.sort_by_key(|&(index, _)| index);
            for (index, error) in failed {
                let stored = &batch[index];
                match self.retry(stored, error).await {
                    Outcome::Delivered => delivered.push(stored.seq),
                    Outcome::Dead(reason) => self.dead_letter(stored.clone(), reason).await,
                }
            }
        }
        for (event_type, n) in published {
            let counter = self.metrics.counters.counter(event_type, "published");
            counter.inc_by(n);
        }
        delivered
    }

    /// Counts a delivered event and how long it waited.
    fn published(&self, stored: &Stored) {
        self.metrics
            .counters
            .inc(&stored.event.event_type, "published");
        self.waited(stored);
    }

    /// Observes how long a delivered event waited.
    fn waited(&self, stored: &Stored) {
        if stored.appended_ms > 0 {
            let waited = now_ms().saturating_sub(stored.appended_ms);
            self.metrics.latency.observe(waited as f64 / 1000.0);
        }
    }

    /// Retries an event whose publish failed with `error` until it is
    /// acknowledged or given up.
    async fn retry(&self, stored: &Stored, mut error: SinkError) -> Outcome {
        let schedule = self.target.retry_schedule();
        let mut wait = self.retry_initial;
        let mut attempt = 0;
        loop {
            if let SinkError::Permanent(e) = &error {
                return Outcome::Dead(format!("refused: {e}"));
            }
            let scheduled = match schedule {
                Some(waits) => match waits.get(attempt) {
                    Some(&scheduled) => scheduled,
                    None => {
                        return Outcome::Dead(format!(
                            "gave up after {} attempts: {error}",
                            attempt + 1
                        ));
                    }
                },
                None => {
                    let this = wait;
                    wait = (wait * 2).min(self.retry_max);
                    this
                }
            };
            attempt += 1;
            let pause = match &error {
                SinkError::RetryAfter { after, .. } => jitter(scheduled).max(*after),
                _ => jitter(scheduled),
            };
            if self.too_old(stored, pause) {
                return Outcome::Dead(format!(
                    "not delivered within events.outbox.max_age ({:?}): {error}",
                    self.max_age
                ));
            }
            self.metrics
                .counters
                .inc(&stored.event.event_type, "retried");
            tracing::warn!(sink = %self.name, id = %stored.event.id, error = %error, retry_in = ?pause, "event not delivered; will retry");
            self.sleep(pause, stored.appended_ms).await;
            self.set_age(stored.appended_ms);
            match self.target.publish(&stored.event).await {
                Ok(()) => {
                    self.published(stored);
                    return Outcome::Delivered;
                }
                Err(e) => error = e,
            }
        }
    }

    /// Whether the event will be past `max_age` after waiting `pause`.
    fn too_old(&self, stored: &Stored, pause: Duration) -> bool {
        if stored.appended_ms == 0 {
            return false;
        }
        let age = now_ms().saturating_sub(stored.appended_ms);
        Duration::from_millis(age) + pause > self.max_age
    }

    async fn dead_letter(&self, stored: Stored, reason: String) {
        tracing::error!(sink = %self.name, id = %stored.event.id, reason = %reason, "event dead-lettered");
        self.metrics
            .counters
            .inc(&stored.event.event_type, "dead_lettered");
        let outbox = self.outbox.clone();
        let sink = self.sink;
        let moved =
            tokio::task::spawn_blocking(move || outbox.dead_letter(sink, &stored, &reason)).await;
        match moved {
            Ok(Ok(discarded)) if discarded > 0 => {
                tracing::warn!(sink = %self.name, discarded, "dead-letter table full: the oldest dead letters were discarded");
            }
            Ok(Err(e)) => {
                tracing::error!(sink = %self.name, error = %e, "cannot dead-letter an event");
            }
            _ => {}
        }
    }

    /// Sleeps `pause`, refreshing the age gauge every [`TICK`].
    async fn sleep(&self, pause: Duration, appended_ms: u64) {
        let mut left = pause;
        while !left.is_zero() {
            let step = left.min(TICK);
            tokio::time::sleep(step).await;
            left -= step;
            self.set_age(appended_ms);
        }
    }

    fn set_age(&self, appended_ms: u64) {
        let age = match appended_ms {
            0 => 0.0,
            ms => now_ms().saturating_sub(ms) as f64 / 1000.0,
        };
        self.metrics.oldest_age.set(age);
    }
}

/// `wait` scaled by a random factor in [0.5, 1.5).
fn jitter(wait: Duration) -> Duration {
    wait.mul_f64(0.5 + fastrand::f64())
}

#[cfg(test)]
mod tests;
