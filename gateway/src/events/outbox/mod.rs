//! The durable outbox: events wait here, on local disk, between the call
//! that produced them and their sink's acknowledgement.
//!
//! Storage is redb (an embedded, ACID, copy-on-write B-tree store: a
//! `kill -9` or power loss leaves the last committed state, never a torn
//! one), one table per sink keyed by a sequence number, so each sink's
//! events are read back in the order they were appended.
//!
//! Appends do not wait for the disk: [`Outbox::append`] reserves a place
//! (bounded by `max_events`) and hands the event to a writer thread, which
//! commits everything that arrived within `flush_interval` in one
//! transaction (one fsync). That interval is the durability window: a crash
//! loses at most the events of the batch being gathered or committed.
//!
//! The writer thread does every routine write: the relays hand it the
//! sequence numbers they delivered ([`Outbox::delivered`]) and it removes
//! them in its next commit, with that batch's appends (a batch of removals
//! alone is committed without its own fsync; the next append's commit
//! persists it). A crash can only make an event be delivered again, never
//! lost, and sinks deduplicate on the event id. After each commit the
//! writer puts the new events in their sink's [`tail`] (in memory, bounded),
//! where a relay that keeps up takes them ([`Outbox::take`]) without
//! reading the store back.
//!
//! Events of `when_full: drop` definitions ([`Outbox::append_evicting`])
//! are also listed, by sequence number, in their sink's `droppable/` table.
//! Such an append is accepted when the outbox is full: the writer, in the
//! transaction that inserts it, evicts the oldest droppable event of the
//! same sink (one in, one out, so `max_events` stays a hard bound). Events
//! that must not be lost are never evicted; when the sink has no droppable
//! event waiting (the room is taken by must-deliver events, or by other
//! sinks), the new event is dropped instead.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::IntGauge;
use redb::{
    Database, ReadableTable, ReadableTableMetadata, Table, TableDefinition, WriteTransaction,
};
use tokio::sync::{Notify, mpsc, oneshot};

use super::counters::EventCounters;
use super::sinks::Outgoing;
pub use record::{DeadLetter, Stored, now_ms};
use record::{encode, encode_dead, encoded_len};
use tail::Tail;
pub use tail::Taken;
use writer::Writer;

mod read;
mod record;
mod tail;
mod writer;

/// Events handed to the writer but not yet committed, beyond which appends
/// are refused like a full outbox (the writer has fallen behind the disk).
const WRITER_QUEUE: usize = 65_536;

/// The outbox of one gateway process.
pub struct Outbox {
    db: Arc<Database>,
    tables: Tables,
    /// `None` once dropping (the writer thread then finishes and exits).
    writer: Option<mpsc::Sender<Op>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Events stored, or handed to the writer with a place reserved, and
    /// not removed, all sinks: never above `max_events`.
    depth: Arc<AtomicUsize>,
    /// The sinks' meters, once [`Outbox::meter`] gave them.
    meters: Meters,
    max_events: usize,
    max_event_size: usize,
    max_dead_letters: usize,
    /// Woken when a sink's table gets events (by sink index).
    pub(super) wake: Arc<[Notify]>,
    /// The events each sink's last commits added (by sink index).
    tails: Arc<[Tail]>,
    /// Set while the writer's commits fail (a full or read-only disk).
    failing: Arc<AtomicBool>,
}

/// The outbox's bounds (`events.outbox`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Events waiting, all sinks together.
    pub max_events: usize,
    /// Largest stored event.
    pub max_event_size: usize,
    /// Dead letters kept per sink (the oldest go first).
    pub max_dead_letters: usize,
    /// The durability window: appends are committed this far apart.
    pub flush_interval: Duration,
}

/// Each sink's tables, by sink index: its queue (`sink/<name>`), the
/// sequence numbers of its evictable events (`droppable/<name>`) and its
/// dead letters (`dead/<name>`).
#[derive(Clone)]
struct Tables {
    sinks: Arc<[String]>,
    live: Arc<[String]>,
    droppable: Arc<[String]>,
    dead: Arc<[String]>,
}

impl Tables {
    fn new(sinks: &[String]) -> Tables {
        let names = |kind: &str| sinks.iter().map(|s| format!("{kind}/{s}")).collect();
        Tables {
            sinks: sinks.into(),
            live: names("sink"),
            droppable: names("droppable"),
            dead: names("dead"),
        }
    }

    /// Sink `sink`'s queue and its droppable index, open for writing.
    fn queue<'t>(
        &self,
        txn: &'t WriteTransaction,
        sink: usize,
    ) -> Result<(Records<'t>, Records<'t>), String> {
        let open = |name: &str| txn.open_table(table_def(name)).map_err(|e| e.to_string());
        Ok((open(&self.live[sink])?, open(&self.droppable[sink])?))
    }
}

/// A table of records keyed by sequence number, open for writing.
type Records<'t> = Table<'t, u64, &'static [u8]>;

/// One sink's metrics that the outbox keeps in step with what it stores.
#[derive(Clone)]
pub struct SinkMeters {
    /// `switchyard_outbox_depth{sink}`: raised by appends, lowered by
    /// removals and dead letters, by evictions and by events lost or
    /// dropped in the writer (the outbox alone keeps it).
    pub depth: IntGauge,
    /// `evicted` (the oldest `when_full: drop` events, to make room) and
    /// `dropped` (events the writer could not keep: a full outbox with
    /// nothing of their sink to evict, or a failed commit), by type.
    pub counters: EventCounters,
}

/// Set once, by sink index; shared with the writer.
type Meters = Arc<OnceLock<Box<[SinkMeters]>>>;

/// Why an event was not appended.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("the outbox is full ({0} events waiting)")]
    Full(usize),
    #[error("the event is {size} bytes, over events.outbox.max_event_size ({max})")]
    TooLarge { size: usize, max: usize },
}

/// What the writer is asked to do.
enum Op {
    Append(Pending),
    /// Remove events a relay delivered.
    Delivered {
        sink: usize,
        seqs: Vec<u64>,
    },
    /// Answer once everything asked before is committed.
    Flush(oneshot::Sender<()>),
}

/// An event handed to the writer: moved, not encoded, so the request path
/// neither copies it into a record nor frees it, and the writer hands the
/// same event to the sink's tail after encoding it for the file.
struct Pending {
    sink: usize,
    event: Outgoing,
    /// When it was appended, ms since the Unix epoch.
    appended_ms: u64,
    /// Appended with [`Outbox::append_evicting`]: it may be evicted later.
    droppable: bool,
    /// It holds a place in `depth`. When not (a droppable event appended to
    /// a full outbox), the writer takes one freed since, or evicts.
    reserved: bool,
}

// === impl Outbox ===

impl Outbox {
    /// Opens (or creates) the outbox at `path` for `sinks` (names, in index
    /// order) and starts its writer thread; events left by a previous run
    /// are counted and delivered.
    pub fn open(path: &Path, sinks: &[String], limits: &Limits) -> Result<Outbox, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let db = Database::create(path)
            .map_err(|e| format!("cannot open the outbox {}: {e}", path.display()))?;
        let tables = Tables::new(sinks);
        let (depth, next) = count(&db, &tables)?;
        let db = Arc::new(db);
        let (writer, rx) = mpsc::channel(WRITER_QUEUE);
        let wake: Arc<[Notify]> = sinks.iter().map(|_| Notify::new()).collect();
        let tails: Arc<[Tail]> = next.iter().map(|&next| Tail::new(next)).collect();
        let depth = Arc::new(AtomicUsize::new(depth));
        let meters = Meters::default();
        let failing = Arc::new(AtomicBool::new(false));
        let thread = Writer {
            failing: failing.clone(),
            db: db.clone(),
            tables: tables.clone(),
            next,
            wake: wake.clone(),
            tails: tails.clone(),
            depth: depth.clone(),
            meters: meters.clone(),
            max_events: limits.max_events,
            flush_interval: limits.flush_interval,
        };
        let thread = std::thread::Builder::new()
            .name("outbox-writer".into())
            .spawn(move || thread.run(rx))
            .map_err(|e| format!("cannot start the outbox writer: {e}"))?;
        Ok(Outbox {
            db,
            tables,
            writer: Some(writer),
            thread: Some(thread),
            depth,
            meters,
            max_events: limits.max_events,
            max_event_size: limits.max_event_size,
            max_dead_letters: limits.max_dead_letters,
            wake,
            tails,
            failing,
        })
    }

    /// Opens an existing outbox to inspect it (`switchyard events`), without
    /// a writer: fails when the file does not exist or a running gateway
    /// holds it.
    pub fn inspect(path: &Path, sinks: &[String], max_events: usize) -> Result<Outbox, String> {
        let db = Database::open(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => format!(
                "{} is open in a running gateway: ask its admin listener instead",
                path.display()
            ),
            e => format!("cannot open the outbox {}: {e}", path.display()),
        })?;
        Ok(Outbox {
            db: Arc::new(db),
            wake: sinks.iter().map(|_| Notify::new()).collect(),
            tails: sinks.iter().map(|_| Tail::new(u64::MAX)).collect(),
            tables: Tables::new(sinks),
            writer: None,
            thread: None,
            depth: Arc::new(AtomicUsize::new(0)),
            meters: Meters::default(),
            max_events,
            max_event_size: 0,
            max_dead_letters: 0,
            failing: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Gives the sinks' meters (in index order), kept in step from now on;
    /// only the first call counts.
    pub fn meter(&self, meters: Vec<SinkMeters>) {
        let _ = self.meters.set(meters.into());
    }

    /// Whether one more event fits (checked before an upstream call whose
    /// event must not be lost).
    pub fn has_room(&self) -> bool {
        self.depth.load(Ordering::Acquire) < self.max_events
    }

    /// Whether appends are being committed: the writer runs and its last
    /// commit did not fail (readiness).
    pub fn is_writable(&self) -> bool {
        !self.failing.load(Ordering::Acquire)
            && self.writer.as_ref().is_some_and(|w| !w.is_closed())
    }

    /// Events waiting, all sinks.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Acquire)
    }

    /// Appends `event` for sink `sink`; committed within the flush interval.
    /// Refused when the outbox is full.
    pub fn append(&self, sink: usize, event: Outgoing) -> Result<(), AppendError> {
        self.push(sink, event, false)
    }

    /// Appends `event` for sink `sink` as one that may be lost (`when_full:
    /// drop`): when the outbox is full it is still accepted, and the writer
    /// evicts sink `sink`'s oldest such event to make room (or, when it has
    /// none, drops this one). Refused only when over the size limit or the
    /// writer has fallen behind.
    pub fn append_evicting(&self, sink: usize, event: Outgoing) -> Result<(), AppendError> {
        self.push(sink, event, true)
    }

    fn push(&self, sink: usize, event: Outgoing, droppable: bool) -> Result<(), AppendError> {
        let size = encoded_len(&event);
        if size > self.max_event_size {
            return Err(AppendError::TooLarge {
                size,
                max: self.max_event_size,
            });
        }
        let reserved = match reserve(&self.depth, self.max_events) {
            Ok(()) => true,
            Err(n) if !droppable => return Err(AppendError::Full(n)),
            Err(_) => false,
        };
        // Raised before the writer can evict for it (and lower the gauge).
        let gauge = self.meters(sink).map(|m| &m.depth);
        if let Some(gauge) = gauge {
            gauge.inc();
        }
        let pending = Pending {
            sink,
            event,
            appended_ms: now_ms(),
            droppable,
            reserved,
        };
        let sent = self
            .writer
            .as_ref()
            .is_some_and(|w| w.try_send(Op::Append(pending)).is_ok());
        if !sent {
            if reserved {
                self.depth.fetch_sub(1, Ordering::AcqRel);
            }
            if let Some(gauge) = gauge {
                gauge.dec();
            }
            return Err(AppendError::Full(self.depth()));
        }
        Ok(())
    }

    /// The most events the outbox holds (`max_events`).
    pub fn capacity(&self) -> usize {
        self.max_events
    }

    /// Hands the writer the sequence numbers of events sink `sink`
    /// delivered: it removes them in its next commit and takes them off the
    /// depth and the sink's gauge then (those no longer there, evicted while
    /// they were being delivered, are not counted twice). Waits only for
    /// room in the writer's queue.
    pub(super) async fn delivered(&self, sink: usize, seqs: Vec<u64>) {
        if let Some(writer) = &self.writer {
            let _ = writer.send(Op::Delivered { sink, seqs }).await;
        }
    }

    /// Returns once everything appended or delivered before is committed
    /// (or its commit failed).
    pub async fn flush(&self) {
        let Some(writer) = &self.writer else { return };
        let (done, committed) = oneshot::channel();
        if writer.send(Op::Flush(done)).await.is_ok() {
            let _ = committed.await;
        }
    }

    /// Up to `max` of sink `sink`'s events numbered above `cursor`, from the
    /// events its last commits added; [`Taken::Behind`] when some of those
    /// are only in the store (read them with [`Outbox::read_after`]).
    pub(super) fn take(&self, sink: usize, cursor: u64, max: usize) -> Taken {
        self.tails[sink].take(cursor, max)
    }

    /// Moves an event its sink refused for good (or that waited too long)
    /// to the sink's dead-letter table, kept for inspection with `reason`,
    /// out of the delivery queue (blocking). The table keeps the newest
    /// `max_dead_letters`; returns how many older ones were discarded. An
    /// event evicted meanwhile is left evicted (and not counted twice).
    pub(super) fn dead_letter(
        &self,
        sink: usize,
        stored: &Stored,
        reason: &str,
    ) -> Result<usize, String> {
        let txn = self.db.begin_write().map_err(|e| e.to_string())?;
        let mut discarded = 0;
        let waiting = {
            let (mut live, mut droppable) = self.tables.queue(&txn, sink)?;
            droppable.remove(stored.seq).map_err(|e| e.to_string())?;
            live.remove(stored.seq)
                .map_err(|e| e.to_string())?
                .is_some()
        };
        if waiting {
            let mut table = txn
                .open_table(table_def(&self.tables.dead[sink]))
                .map_err(|e| e.to_string())?;
            let record = encode(&stored.event, stored.appended_ms);
            let dead = encode_dead(&record, reason, now_ms());
            table
                .insert(stored.seq, dead.as_slice())
                .map_err(|e| e.to_string())?;
            while table.len().map_err(|e| e.to_string())? as usize > self.max_dead_letters {
                table.pop_first().map_err(|e| e.to_string())?;
                discarded += 1;
            }
        }
        txn.commit().map_err(|e| e.to_string())?;
        if waiting {
            self.depth.fetch_sub(1, Ordering::AcqRel);
            if let Some(meters) = self.meters(sink) {
                meters.depth.dec();
            }
        }
        Ok(discarded)
    }

    fn meters(&self, sink: usize) -> Option<&SinkMeters> {
        self.meters.get().and_then(|m| m.get(sink))
    }
}

impl Drop for Outbox {
    /// Commits what the writer holds and waits for it, so the file is closed
    /// (and can be opened again) when this returns.
    fn drop(&mut self) {
        self.writer.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn table_def(name: &str) -> TableDefinition<'_, u64, &'static [u8]> {
    TableDefinition::new(name)
}

/// Takes a place in `depth` if there is one below `max` (else: the depth).
fn reserve(depth: &AtomicUsize, max: usize) -> Result<(), usize> {
    depth
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .map(|_| ())
}

/// The events waiting (all sinks) and each sink's next sequence number:
/// past all its tables hold (dead letters and droppable entries too, so no
/// number is used again once its queue emptied); creates the tables.
fn count(db: &Database, tables: &Tables) -> Result<(usize, Vec<u64>), String> {
    let mut next = Vec::with_capacity(tables.sinks.len());
    let mut depth = 0;
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    let open = |name: &str| txn.open_table(table_def(name)).map_err(|e| e.to_string());
    for sink in 0..tables.sinks.len() {
        let live = open(&tables.live[sink])?;
        depth += live.len().map_err(|e| e.to_string())? as usize;
        let mut last = 0;
        for table in [
            live,
            open(&tables.droppable[sink])?,
            open(&tables.dead[sink])?,
        ] {
            let newest = table.last().map_err(|e| e.to_string())?;
            last = newest.map_or(last, |(k, _)| last.max(k.value()));
        }
        next.push(last + 1);
    }
    txn.commit().map_err(|e| e.to_string())?;
    Ok((depth, next))
}

#[cfg(test)]
mod tests;
