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
//! Removal after delivery is committed without its own fsync (the next
//! append's commit persists it): a crash can only make an event be
//! delivered again, never lost, and sinks deduplicate on the event id.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use tokio::sync::{Notify, mpsc};

use super::sinks::Outgoing;
pub use record::{DeadLetter, Stored, now_ms};
use record::{decode, decode_dead, encode, encode_dead};
use writer::Writer;

mod record;
mod writer;

/// Events handed to the writer but not yet committed, beyond which appends
/// are refused like a full outbox (the writer has fallen behind the disk).
const WRITER_QUEUE: usize = 65_536;

/// The outbox of one gateway process.
pub struct Outbox {
    db: Arc<Database>,
    /// Table names, by sink index.
    tables: Arc<[String]>,
    /// `None` once dropping (the writer thread then finishes and exits).
    writer: Option<mpsc::Sender<Pending>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Events appended and not yet removed, all sinks.
    depth: Arc<AtomicUsize>,
    max_events: usize,
    max_event_size: usize,
    max_dead_letters: usize,
    /// Woken when a sink's table gets events (by sink index).
    pub(super) wake: Arc<[Notify]>,
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

/// Why an event was not appended.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("the outbox is full ({0} events waiting)")]
    Full(usize),
    #[error("the event is {size} bytes, over events.outbox.max_event_size ({max})")]
    TooLarge { size: usize, max: usize },
}

struct Pending {
    pub(super) sink: usize,
    pub(super) record: Vec<u8>,
}

// === impl Outbox ===

impl Outbox {
    /// Opens (or creates) the outbox at `path` for `sinks` (names, in index
    /// order) and starts its writer thread; events left by a previous run
    /// are counted and delivered.
    pub fn open(path: &Path, sinks: &[String], limits: &Limits) -> Result<Outbox, String> {
        let Limits {
            max_events,
            max_event_size,
            max_dead_letters,
            flush_interval,
        } = *limits;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let db = Database::create(path)
            .map_err(|e| format!("cannot open the outbox {}: {e}", path.display()))?;
        let tables: Arc<[String]> = sinks.iter().map(|s| format!("sink/{s}")).collect();
        let mut next = Vec::with_capacity(tables.len());
        let mut depth = 0;
        {
            let txn = db.begin_write().map_err(|e| e.to_string())?;
            for name in tables.iter() {
                let table = txn.open_table(table_def(name)).map_err(|e| e.to_string())?;
                depth += table.len().map_err(|e| e.to_string())? as usize;
                let last = table
                    .last()
                    .map_err(|e| e.to_string())?
                    .map_or(0, |(k, _)| k.value());
                next.push(last + 1);
            }
            txn.commit().map_err(|e| e.to_string())?;
        }
        let db = Arc::new(db);
        let (writer, rx) = mpsc::channel(WRITER_QUEUE);
        let wake: Arc<[Notify]> = tables.iter().map(|_| Notify::new()).collect();
        let depth = Arc::new(AtomicUsize::new(depth));
        let thread = Writer {
            db: db.clone(),
            tables: tables.clone(),
            next,
            wake: wake.clone(),
            depth: depth.clone(),
            flush_interval,
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
            max_events,
            max_event_size,
            max_dead_letters,
            wake,
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
        let tables: Arc<[String]> = sinks.iter().map(|s| format!("sink/{s}")).collect();
        Ok(Outbox {
            db: Arc::new(db),
            wake: tables.iter().map(|_| Notify::new()).collect(),
            tables,
            writer: None,
            thread: None,
            depth: Arc::new(AtomicUsize::new(0)),
            max_events,
            max_event_size: 0,
            max_dead_letters: 0,
        })
    }

    /// The outbox's state as `/admin/events` shows it: depth and capacity,
    /// and per sink (`names`, in index order) the events waiting, how long
    /// the oldest has waited (seconds) and the dead letters kept (blocking).
    pub fn status(&self, names: &[&str]) -> serde_json::Value {
        let now = now_ms();
        let mut depth = 0;
        let sinks: Vec<serde_json::Value> = names
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let waiting = self.len(index).ok();
                depth += waiting.unwrap_or(0);
                let oldest = self.oldest_appended_ms(index).ok().flatten();
                serde_json::json!({
                    "name": name,
                    "waiting": waiting,
                    "oldest_age_seconds": oldest.map(|ms| now.saturating_sub(ms) as f64 / 1000.0),
                    "dead_lettered": self.dead_len(index).ok(),
                })
            })
            .collect();
        serde_json::json!({
            "outbox": {"depth": depth, "max_events": self.max_events},
            "sinks": sinks,
        })
    }

    /// Whether one more event fits (checked before an upstream call whose
    /// event must not be lost).
    pub fn has_room(&self) -> bool {
        self.depth.load(Ordering::Acquire) < self.max_events
    }

    /// Events waiting, all sinks.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Acquire)
    }

    /// Appends `event` for sink `sink`; committed within the flush interval.
    pub fn append(&self, sink: usize, event: &Outgoing) -> Result<(), AppendError> {
        let record = encode(event, now_ms());
        if record.len() > self.max_event_size {
            return Err(AppendError::TooLarge {
                size: record.len(),
                max: self.max_event_size,
            });
        }
        let max = self.max_events;
        self.depth
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(AppendError::Full)?;
        let sent = self
            .writer
            .as_ref()
            .is_some_and(|w| w.try_send(Pending { sink, record }).is_ok());
        if !sent {
            self.depth.fetch_sub(1, Ordering::AcqRel);
            return Err(AppendError::Full(self.depth()));
        }
        Ok(())
    }

    /// Up to `max` of sink `sink`'s oldest events, oldest first (blocking:
    /// call from a blocking context).
    pub(super) fn oldest(&self, sink: usize, max: usize) -> Result<Vec<Stored>, String> {
        let txn = self.db.begin_read().map_err(|e| e.to_string())?;
        let table = match txn.open_table(table_def(&self.tables[sink])) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.to_string()),
        };
        let mut out = Vec::new();
        for item in table.iter().map_err(|e| e.to_string())?.take(max) {
            let (key, value) = item.map_err(|e| e.to_string())?;
            match decode(value.value()) {
                Some((appended_ms, event)) => out.push(Stored {
                    seq: key.value(),
                    appended_ms,
                    event,
                }),
                None => {
                    tracing::error!(sink = %self.tables[sink], seq = key.value(), "unreadable outbox record skipped")
                }
            }
        }
        Ok(out)
    }

    /// Events waiting for sink `sink` (blocking, but quick: a count).
    pub fn len(&self, sink: usize) -> Result<usize, String> {
        self.count(&self.tables[sink])
    }

    /// Events sink `sink` refused for good, kept in its dead-letter table
    /// (blocking, a count).
    pub fn dead_len(&self, sink: usize) -> Result<usize, String> {
        self.count(&self.dead_table(sink))
    }

    /// The entries of table `name` (none when it was never created).
    fn count(&self, name: &str) -> Result<usize, String> {
        let txn = self.db.begin_read().map_err(|e| e.to_string())?;
        match txn.open_table(table_def(name)) {
            Ok(table) => Ok(table.len().map_err(|e| e.to_string())? as usize),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Sink `sink`'s dead-letter table.
    fn dead_table(&self, sink: usize) -> String {
        format!("dead/{}", &self.tables[sink]["sink/".len()..])
    }

    /// The most events the outbox holds (`max_events`).
    pub fn capacity(&self) -> usize {
        self.max_events
    }

    /// Removes delivered events (blocking).
    pub(super) fn remove(&self, sink: usize, seqs: &[u64]) -> Result<(), String> {
        let mut txn = self.db.begin_write().map_err(|e| e.to_string())?;
        // Persisted by the next append's commit: a crash before it only
        // redelivers (deduplicated by id), never loses.
        let _ = txn.set_durability(Durability::None);
        {
            let mut table = txn
                .open_table(table_def(&self.tables[sink]))
                .map_err(|e| e.to_string())?;
            for seq in seqs {
                table.remove(seq).map_err(|e| e.to_string())?;
            }
        }
        txn.commit().map_err(|e| e.to_string())?;
        self.depth.fetch_sub(seqs.len(), Ordering::AcqRel);
        Ok(())
    }

    /// Moves an event its sink refused for good (or that waited too long)
    /// to the sink's dead-letter table, kept for inspection with `reason`,
    /// out of the delivery queue (blocking). The table keeps the newest
    /// `max_dead_letters`; returns how many older ones were discarded.
    pub(super) fn dead_letter(
        &self,
        sink: usize,
        stored: &Stored,
        reason: &str,
    ) -> Result<usize, String> {
        let dead = self.dead_table(sink);
        let txn = self.db.begin_write().map_err(|e| e.to_string())?;
        let mut discarded = 0;
        {
            let mut table = txn
                .open_table(table_def(&dead))
                .map_err(|e| e.to_string())?;
            let record = encode(&stored.event, stored.appended_ms);
            table
                .insert(
                    stored.seq,
                    encode_dead(&record, reason, now_ms()).as_slice(),
                )
                .map_err(|e| e.to_string())?;
            while table.len().map_err(|e| e.to_string())? as usize > self.max_dead_letters {
                table.pop_first().map_err(|e| e.to_string())?;
                discarded += 1;
            }
            let mut live = txn
                .open_table(table_def(&self.tables[sink]))
                .map_err(|e| e.to_string())?;
            live.remove(stored.seq).map_err(|e| e.to_string())?;
        }
        txn.commit().map_err(|e| e.to_string())?;
        self.depth.fetch_sub(1, Ordering::AcqRel);
        Ok(discarded)
    }

    /// Up to `max` of sink `sink`'s newest dead letters, newest first
    /// (blocking).
    pub fn dead_letters(&self, sink: usize, max: usize) -> Result<Vec<DeadLetter>, String> {
        let txn = self.db.begin_read().map_err(|e| e.to_string())?;
        let table = match txn.open_table(table_def(&self.dead_table(sink))) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.to_string()),
        };
        let mut out = Vec::new();
        for item in table.iter().map_err(|e| e.to_string())?.rev().take(max) {
            let (key, value) = item.map_err(|e| e.to_string())?;
            if let Some(dead) = decode_dead(key.value(), value.value()) {
                out.push(dead);
            }
        }
        Ok(out)
    }

    /// When sink `sink`'s oldest waiting event was appended, ms since the
    /// Unix epoch (`None`: nothing waits, or its time is unknown).
    pub fn oldest_appended_ms(&self, sink: usize) -> Result<Option<u64>, String> {
        let txn = self.db.begin_read().map_err(|e| e.to_string())?;
        let table = match txn.open_table(table_def(&self.tables[sink])) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let first = table.first().map_err(|e| e.to_string())?;
        Ok(first
            .and_then(|(_, value)| decode(value.value()))
            .map(|(appended, _)| appended)
            .filter(|&ms| ms > 0))
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

#[cfg(test)]
mod tests;
