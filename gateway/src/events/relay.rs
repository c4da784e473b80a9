//! One relay task per sink: reads the sink's oldest events from the outbox,
//! publishes them one at a time in order, retrying a failure with
//! exponential back-off and jitter (an event is never skipped while its
//! sink is merely unavailable, so order is kept), and removes them once
//! acknowledged. An event the sink refuses for good is dead-lettered.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounter, IntGauge};

use super::outbox::Outbox;
use super::sinks::{Sink, SinkError};

/// Events read from the outbox at a time.
const BATCH: usize = 256;

/// What one relay needs.
pub struct Relay {
    pub sink: usize,
    pub name: String,
    pub target: Arc<dyn Sink>,
    pub outbox: Arc<Outbox>,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub metrics: RelayMetrics,
}

/// The relay's counters and its sink's depth gauge.
#[derive(Clone)]
pub struct RelayMetrics {
    pub published: IntCounter,
    pub retried: IntCounter,
    pub dead: IntCounter,
    pub depth: IntGauge,
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
                // Woken by the writer's commit; the timeout is a safety net.
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    self.outbox.wake[self.sink].notified(),
                )
                .await;
                continue;
            }
            let mut delivered = Vec::with_capacity(batch.len());
            for (seq, event) in batch {
                let mut wait = self.retry_initial;
                loop {
                    match self.target.publish(&event).await {
                        Ok(()) => {
                            self.metrics.published.inc();
                            delivered.push(seq);
                            break;
                        }
                        Err(SinkError::Transient(e)) => {
                            self.metrics.retried.inc();
                            tracing::warn!(sink = %self.name, id = %event.id, error = %e, retry_in = ?wait, "event not delivered; will retry");
                            tokio::time::sleep(jitter(wait)).await;
                            wait = (wait * 2).min(self.retry_max);
                        }
                        Err(SinkError::Permanent(e)) => {
                            tracing::error!(sink = %self.name, id = %event.id, error = %e, "event refused by its sink; dead-lettered");
                            self.metrics.dead.inc();
                            let outbox = self.outbox.clone();
                            let moved = tokio::task::spawn_blocking(move || {
                                outbox.dead_letter(sink, seq, &event)
                            })
                            .await;
                            if let Ok(Err(e)) = moved {
                                tracing::error!(sink = %self.name, error = %e, "cannot dead-letter an event");
                            }
                            self.metrics.depth.dec();
                            break;
                        }
                    }
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
}

/// `wait` scaled by a random factor in [0.5, 1.5).
fn jitter(wait: Duration) -> Duration {
    wait.mul_f64(0.5 + fastrand::f64())
}
