//! The writer thread: gathers appends and the relays' removals for one
//! flush interval and commits them in one transaction (one fsync; none for
//! removals alone), evicting to make room for the droppable events that
//! came when the outbox was full, then hands the new events to their
//! sinks' tails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use redb::{Database, Durability, ReadableTableMetadata};
use tokio::sync::{Notify, mpsc, oneshot};

use super::record::{decode, encode_into};
use super::{Meters, Op, Pending, Records, Stored, Tables, Tail, WRITER_QUEUE, reserve};
use crate::events::sinks::Outgoing;

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) db: Arc<Database>,
    pub(super) tables: Tables,
    /// The next sequence number of each sink.
    pub(super) next: Vec<u64>,
    pub(super) wake: Arc<[Notify]>,
    pub(super) tails: Arc<[Tail]>,
    pub(super) depth: Arc<AtomicUsize>,
    pub(super) meters: Meters,
    pub(super) max_events: usize,
    pub(super) flush_interval: Duration,
    /// Set while commits fail, cleared by the next that succeeds.
    pub(super) failing: Arc<AtomicBool>,
}

/// What the writer gathered for one commit.
#[derive(Default)]
struct Batch {
    appends: Vec<Pending>,
    /// By sink index, what the relays delivered.
    removals: Vec<(usize, Vec<u64>)>,
    flushes: Vec<oneshot::Sender<()>>,
}

impl Batch {
    fn add(&mut self, op: Op) {
        match op {
            Op::Append(pending) => self.appends.push(pending),
            Op::Delivered { sink, seqs } => self.removals.push((sink, seqs)),
            Op::Flush(done) => self.flushes.push(done),
        }
    }

    fn ops(&self) -> usize {
        self.appends.len() + self.removals.len() + self.flushes.len()
    }
}

/// What one commit did besides inserting.
struct Tally {
    /// Places in `depth` the writer took for unreserved events (room freed
    /// since they were appended).
    reserved: usize,
    /// Places the removals freed and no unreserved event took: given back
    /// to `depth` after the commit.
    freed: usize,
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
    /// Events committed for the sink: their index in the batch's appends
    /// and their sequence numbers.
    committed: Vec<(usize, u64)>,
    /// Delivered events removed.
    removed: usize,
}

impl Writer {
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        // Removals whose commit failed, tried again with the next batch.
        let mut carried = Vec::new();
        // Whether the last commit was one without fsync.
        let mut unsynced = false;
        while let Some(first) = rx.blocking_recv() {
            // Gather what arrives within the window (the channel holds it
            // meanwhile), then commit it at once: one sleep, not a poll.
            if !self.flush_interval.is_zero() {
                std::thread::sleep(self.flush_interval);
            }
            let mut batch = Batch::default();
            batch.add(first);
            while batch.ops() < WRITER_QUEUE {
                match rx.try_recv() {
                    Ok(op) => batch.add(op),
                    Err(_) => break,
                }
            }
            batch.removals.splice(0..0, carried.drain(..));
            if !batch.appends.is_empty() || !batch.removals.is_empty() {
                let durable = !batch.appends.is_empty();
                let mut tally = Tally {
                    reserved: 0,
                    freed: 0,
                    sinks: self.next.iter().map(|_| SinkTally::default()).collect(),
                };
                match self.commit(&batch, durable, &mut tally) {
                    Ok(()) => {
                        self.failing.store(false, Ordering::Release);
                        unsynced = !durable;
                        self.committed(&tally, batch.appends);
                    }
                    Err(e) => {
                        self.failing.store(true, Ordering::Release);
                        self.lost(&batch.appends, tally.reserved, &e);
                        carried = batch.removals;
                    }
                }
            }
            for done in batch.flushes {
                let _ = done.send(());
            }
        }
        if unsynced {
            // The last removals reach the disk before the file is closed.
            let synced = self
                .db
                .begin_write()
                .map_err(|e| e.to_string())
                .and_then(|txn| txn.commit().map_err(|e| e.to_string()));
            if let Err(e) = synced {
                tracing::warn!(error = %e, "outbox: cannot persist the last removals (their events will be delivered again)");
            }
        }
    }

    fn commit(&mut self, batch: &Batch, durable: bool, tally: &mut Tally) -> Result<(), String> {
        let mut txn = self.db.begin_write().map_err(|e| e.to_string())?;
        if !durable {
            // Removals alone: persisted by the next append's commit. A crash
            // before it only redelivers (deduplicated by id), never loses.
            txn.set_durability(Durability::None)
                .map_err(|e| e.to_string())?;
        }
        {
            // One buffer for every record of the batch.
            let mut record = Vec::new();
            let mut tables = Vec::with_capacity(self.next.len());
            let mut droppable = Vec::with_capacity(self.next.len());
            for sink in 0..self.next.len() {
                let (live, index) = self.tables.queue(&txn, sink)?;
                tables.push(live);
                droppable.push(index);
            }
            for (sink, seqs) in &batch.removals {
                let removed = remove(&mut tables[*sink], &mut droppable[*sink], seqs)?;
                tally.sinks[*sink].removed += removed;
                tally.freed += removed;
            }
            for (index, pending) in batch.appends.iter().enumerate() {
                let sink = pending.sink;
                let counts = &mut tally.sinks[sink];
                if !pending.reserved {
                    if tally.freed > 0 {
                        tally.freed -= 1;
                    } else if reserve(&self.depth, self.max_events).is_ok() {
                        tally.reserved += 1;
                    } else if let Some(event) = evict(&mut tables[sink], &mut droppable[sink])? {
                        counts.evicted.push(event.event_type);
                        counts.first.get_or_insert_with(|| event.id.clone());
                        counts.last = Some(event.id);
                    } else {
                        counts.dropped.push(pending.event.event_type.clone());
                        continue;
                    }
                }
                let seq = self.next[sink];
                record.clear();
                encode_into(&mut record, &pending.event, pending.appended_ms);
                tables[sink]
                    .insert(seq, record.as_slice())
                    .map_err(|e| e.to_string())?;
                if pending.droppable {
                    droppable[sink]
                        .insert(seq, [].as_slice())
                        .map_err(|e| e.to_string())?;
                }
                self.next[sink] = seq + 1;
                counts.committed.push((index, seq));
            }
        }
        txn.commit().map_err(|e| e.to_string())
    }

    /// After a commit: depth, meters, logs; the new events go to their
    /// sinks' tails and those sinks' relays are woken.
    fn committed(&self, tally: &Tally, appends: Vec<Pending>) {
        self.depth.fetch_sub(tally.freed, Ordering::AcqRel);
        let mut appends: Vec<Option<Pending>> = appends.into_iter().map(Some).collect();
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
                    .sub((counts.evicted.len() + counts.dropped.len() + counts.removed) as i64);
                for event_type in &counts.evicted {
                    meters.counters.inc(event_type, "evicted");
                }
                for event_type in &counts.dropped {
                    meters.counters.inc(event_type, "dropped");
                }
            }
            if !counts.committed.is_empty() {
                let events = counts.committed.iter().filter_map(|&(index, seq)| {
                    let pending = appends[index].take()?;
                    Some(Stored {
                        seq,
                        appended_ms: pending.appended_ms,
                        event: pending.event,
                    })
                });
                self.tails[sink].push(events);
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
                    meters.counters.inc(&pending.event.event_type, "dropped");
                }
            }
        }
    }
}

/// Removes delivered events from a sink's queue (and its droppable index);
/// returns how many were still there (not evicted meanwhile). A relay
/// delivers runs of consecutive numbers: each run goes in one range removal
/// (one walk down the tree, not one per event).
fn remove(
    live: &mut Records<'_>,
    droppable: &mut Records<'_>,
    seqs: &[u64],
) -> Result<usize, String> {
    // Most sinks have no droppable event: no lookup per event then.
    let any_droppable = !droppable.is_empty().map_err(|e| e.to_string())?;
    let mut seqs = seqs.to_vec();
    seqs.sort_unstable();
    seqs.dedup();
    let mut removed = 0;
    for run in seqs.chunk_by(|a, b| a + 1 == *b) {
        let range = run[0]..=run[run.len() - 1];
        live.retain_in(range.clone(), |_, _| {
            removed += 1;
            false
        })
        .map_err(|e| e.to_string())?;
        if any_droppable {
            droppable
                .retain_in(range, |_, _| false)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(removed)
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
