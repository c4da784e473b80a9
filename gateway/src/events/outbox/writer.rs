//! The writer thread: gathers appends for one flush interval and commits
//! them in one transaction (one fsync), evicting to make room for the
//! droppable events that came when the outbox was full.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redb::Database;
use tokio::sync::{Notify, mpsc};

use super::record::decode;
use super::{Meters, Pending, Records, Tables, WRITER_QUEUE, reserve};
use crate::events::sinks::Outgoing;

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) db: Arc<Database>,
    pub(super) tables: Tables,
    /// The next sequence number of each sink.
    pub(super) next: Vec<u64>,
    pub(super) wake: Arc<[Notify]>,
    pub(super) depth: Arc<AtomicUsize>,
    pub(super) meters: Meters,
    pub(super) max_events: usize,
    pub(super) flush_interval: Duration,
}

/// What one commit did besides inserting.
struct Tally {
    /// Places in `depth` the writer took for unreserved events (room freed
    /// since they were appended).
    reserved: usize,
    /// By sink index.
    sinks: Vec<SinkTally>,
}

#[derive(Default)]
struct SinkTally {
    /// The evicted events' types.
    evicted: Vec<String>,
    /// The first and the last evicted event's id.
    first: Option<String>,
    last: Option<String>,
    /// The types of the new events not kept: nothing of their sink to evict.
    dropped: Vec<String>,
    /// Events committed for the sink.
    committed: usize,
}

impl Writer {
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Pending>) {
        while let Some(first) = rx.blocking_recv() {
            // Gather what arrives within the window (the channel holds it
            // meanwhile), then commit it at once: one sleep, not a poll.
            if !self.flush_interval.is_zero() {
                std::thread::sleep(self.flush_interval);
            }
            let mut batch = vec![first];
            while batch.len() < WRITER_QUEUE {
                match rx.try_recv() {
                    Ok(pending) => batch.push(pending),
                    Err(_) => break,
                }
            }
            let mut tally = Tally {
                reserved: 0,
                sinks: self.next.iter().map(|_| SinkTally::default()).collect(),
            };
            match self.commit(&batch, &mut tally) {
                Ok(()) => self.committed(&tally),
                Err(e) => self.lost(&batch, tally.reserved, &e),
            }
        }
    }

    fn commit(&mut self, batch: &[Pending], tally: &mut Tally) -> Result<(), String> {
        let txn = self.db.begin_write().map_err(|e| e.to_string())?;
        {
            let mut tables = Vec::with_capacity(self.next.len());
            let mut droppable = Vec::with_capacity(self.next.len());
            for sink in 0..self.next.len() {
                let (live, index) = self.tables.queue(&txn, sink)?;
                tables.push(live);
                droppable.push(index);
            }
            for pending in batch {
                let sink = pending.sink;
                let counts = &mut tally.sinks[sink];
                if !pending.reserved {
                    if reserve(&self.depth, self.max_events).is_ok() {
                        tally.reserved += 1;
                    } else if let Some(event) = evict(&mut tables[sink], &mut droppable[sink])? {
                        counts.evicted.push(event.event_type);
                        counts.first.get_or_insert_with(|| event.id.clone());
                        counts.last = Some(event.id);
                    } else {
                        counts.dropped.push(event_type(&pending.record));
                        continue;
                    }
                }
                let seq = self.next[sink];
                tables[sink]
                    .insert(seq, pending.record.as_slice())
                    .map_err(|e| e.to_string())?;
                if pending.droppable {
                    droppable[sink]
                        .insert(seq, [].as_slice())
                        .map_err(|e| e.to_string())?;
                }
                self.next[sink] = seq + 1;
                counts.committed += 1;
            }
        }
        txn.commit().map_err(|e| e.to_string())
    }

    /// After a commit: meters, logs, and the relays of the sinks that got
    /// events are woken.
    fn committed(&self, tally: &Tally) {
        let meters = self.meters.get();
        for (sink, counts) in tally.sinks.iter().enumerate() {
            let name = self.tables.sinks[sink].as_str();
            let meters = meters.and_then(|m| m.get(sink));
            if !counts.evicted.is_empty() {
                tracing::warn!(
                    sink = name,
                    evicted = counts.evicted.len(),
                    oldest = counts.first.as_deref().unwrap_or_default(),
                    newest = counts.last.as_deref().unwrap_or_default(),
                    "outbox full: the sink's oldest `when_full: drop` events were evicted"
                );
            }
            if !counts.dropped.is_empty() {
                tracing::warn!(
                    sink = name,
                    dropped = counts.dropped.len(),
                    "outbox full and no `when_full: drop` event of the sink to evict: new events dropped"
                );
            }
            if let Some(meters) = meters {
                meters
                    .depth
                    .sub((counts.evicted.len() + counts.dropped.len()) as i64);
                for event_type in &counts.evicted {
                    meters.counters.inc(event_type, "evicted");
                }
                for event_type in &counts.dropped {
                    meters.counters.inc(event_type, "dropped");
                }
            }
            if counts.committed > 0 {
                self.wake[sink].notify_one();
            }
        }
    }

    /// After a failed commit: the batch is lost (its evictions undone with
    /// it); the places it held are given back.
    fn lost(&self, batch: &[Pending], reserved: usize, error: &str) {
        let held = batch.iter().filter(|p| p.reserved).count() + reserved;
        self.depth.fetch_sub(held, Ordering::AcqRel);
        tracing::error!(error = %error, events = batch.len(), "outbox commit failed: events lost");
        if let Some(meters) = self.meters.get() {
            for pending in batch {
                if let Some(meters) = meters.get(pending.sink) {
                    meters.depth.dec();
                    meters.counters.inc(&event_type(&pending.record), "dropped");
                }
            }
        }
    }
}

/// A record's event type (`""` when unreadable), for the metrics.
fn event_type(record: &[u8]) -> String {
    decode(record)
        .map(|(_, e)| e.event_type)
        .unwrap_or_default()
}

/// Removes the sink's oldest droppable event still waiting (its id and type
/// empty when unreadable); `None` when there is none.
fn evict(live: &mut Records<'_>, droppable: &mut Records<'_>) -> Result<Option<Outgoing>, String> {
    loop {
        let seq = match droppable.pop_first().map_err(|e| e.to_string())? {
            Some((seq, _)) => seq.value(),
            None => return Ok(None),
        };
        // An entry whose event is gone is skipped (removals take both out
        // in one transaction, so there should be none).
        if let Some(record) = live.remove(seq).map_err(|e| e.to_string())? {
            return Ok(Some(
                decode(record.value()).map(|(_, e)| e).unwrap_or_default(),
            ));
        }
    }
}
