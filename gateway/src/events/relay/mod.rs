//! One relay task per sink: reads the sink's oldest events from the outbox,
//! publishes them one at a time in order, retrying a failure (an event is
//! never skipped while its sink is merely unavailable, so order is kept, per
//! subject and overall), and removes them once acknowledged.
//!
//! Retries follow the sink's schedule when it has one (webhooks: a fixed
//! list of waits, then the event is dead-lettered), otherwise exponential
//! back-off with jitter from `retry_initial` to `retry_max`, without limit
//! in count; a `Retry-After` from the sink is honoured (never less than the
//! scheduled wait). An event the sink refuses for good, or one older than
//! `max_age`, is dead-lettered with the reason.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{Histogram, IntCounter, IntGauge};

use super::outbox::{Outbox, Stored, now_ms};
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

/// The relay's counters, its sink's gauges and its delivery latency.
#[derive(Clone)]
pub struct RelayMetrics {
    pub published: IntCounter,
    pub retried: IntCounter,
    pub dead: IntCounter,
    pub depth: IntGauge,
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

impl Relay {
    /// Runs until the task is aborted.
    pub async fn run(self) {
        loop {
            let outbox = self.outbox.clone();
            let sink = self.sink;
            let batch = tokio::task::spawn_blocking(move || outbox.oldest(sink, BATCH)).await;
            let batch = match batch {
                Ok(Ok(batch)) => batch,
                Ok(Err(e)) => {
                    tracing::error!(sink = %self.name, error = %e, "cannot read the outbox");
                    tokio::time::sleep(self.retry_max).await;
                    continue;
                }
                Err(_) => return,
            };
            if batch.is_empty() {
                self.metrics.oldest_age.set(0.0);
                // Woken by the writer's commit; the timeout is a safety net.
                let _ = tokio::time::timeout(TICK, self.outbox.wake[self.sink].notified()).await;
                continue;
            }
            let mut delivered = Vec::with_capacity(batch.len());
            for stored in batch {
                match self.deliver(&stored).await {
                    Outcome::Delivered => delivered.push(stored.seq),
                    Outcome::Dead(reason) => self.dead_letter(stored, reason).await,
                }
            }
            let n = delivered.len();
            let outbox = self.outbox.clone();
            match tokio::task::spawn_blocking(move || outbox.remove(sink, &delivered)).await {
                Ok(Ok(())) => self.metrics.depth.sub(n as i64),
                Ok(Err(e)) => {
                    tracing::error!(sink = %self.name, error = %e, "cannot remove delivered events (they will be delivered again)");
                }
                Err(_) => return,
            }
        }
    }

    /// Publishes one event, retrying until it is acknowledged or given up.
    async fn deliver(&self, stored: &Stored) -> Outcome {
        let event = &stored.event;
        let schedule = self.target.retry_schedule();
        let mut wait = self.retry_initial;
        let mut attempt = 0;
        loop {
            self.set_age(stored.appended_ms);
            let error = match self.target.publish(event).await {
                Ok(()) => {
                    self.metrics.published.inc();
                    if stored.appended_ms > 0 {
                        let waited = now_ms().saturating_sub(stored.appended_ms);
                        self.metrics.latency.observe(waited as f64 / 1000.0);
                    }
                    return Outcome::Delivered;
                }
                Err(SinkError::Permanent(e)) => return Outcome::Dead(format!("refused: {e}")),
                Err(e) => e,
            };
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
            self.metrics.retried.inc();
            tracing::warn!(sink = %self.name, id = %event.id, error = %error, retry_in = ?pause, "event not delivered; will retry");
            self.sleep(pause, stored.appended_ms).await;
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
        self.metrics.dead.inc();
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
        self.metrics.depth.dec();
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
